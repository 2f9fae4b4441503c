package mediaclient

// This file holds MediaTransport: an http.RoundTripper that runs the download policy below an
// *http.Client that someone else drives (mautrix's, most of all). It recognises the media requests,
// turns each into a download of the Client for its homeserver, and presents the download as one
// HTTP response. The policy itself is the download's (download.go, chain.go, resume.go).

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"

	lru "github.com/hashicorp/golang-lru/v2"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"
)

// maxTransportHomeservers bounds how many homeservers a MediaTransport keeps a Client for. Evicting
// one forgets only what it learned (a rejected parameter, its address class, its 308 targets).
const maxTransportHomeservers = 64

// conditionalHeaders are not forwarded: the answer is always the whole media with 200, which HTTP
// allows for a request that carries them, and the download sets its own Range when it resumes.
var conditionalHeaders = []string{"Range", "If-Range", "If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since"}

// MediaTransport is an http.RoundTripper that makes every media download of a program built on
// mautrix safe, installed once on the *http.Client that mautrix uses. Bridges and bots rarely call a
// download method themselves: bridgev2's ASIntent.DownloadMedia and DownloadMediaToFile, mautrix's
// Client.DownloadBytes and helper libraries do, deep inside, and they follow redirects with Go's
// http.Client, which hands the access token to another port of the same host, to subdomains and over
// https→http. Installing the transport changes none of those call sites:
//
//	cli.Client.Transport, err = mediaclient.NewMediaTransport(cli.Client.Transport, mediaclient.Options{})
//
// For a bridgev2 (or any appservice) bridge, on the appservice's client that every intent shares,
// e.g. in BridgeMain.PostInit:
//
//	as := br.Matrix.AS
//	as.HTTPClient.Transport, err = mediaclient.NewMediaTransport(as.HTTPClient.Transport, mediaclient.Options{})
//
// A GET request for the media download or thumbnail endpoints — client v1
// (/_matrix/client/v1/media/download/… and …/thumbnail/…) or media v3 (/_matrix/media/v3/…),
// under any path prefix of the homeserver URL — is downloaded with the Client's whole policy: the
// origin it was sent to is the homeserver, and its own headers (Authorization with the user's or
// the appservice's token, any Cookie, the User-Agent) and query (an appservice's user_id and
// device_id) go to the homeserver only. allow_redirect=true is sent, and dropped when the homeserver
// rejects it; the redirect chain is bounded; credentials never leave the homeserver's origin; https→http
// and steps into private address space are refused; transient faults are retried from the
// homeserver; the body is resumed when it breaks off or stalls, and checked against its length. The
// endpoint family is the one the request asked for: a v1 request is never turned into a v3 one.
//
// RoundTrip returns the final answer: status 200 with the headers of the answer that carried the
// bytes (Set-Cookie only when that was the homeserver, so that a cookie jar never files a CDN's
// cookie under the homeserver) and a body that streams the media, resumes and reports a short body as
// an *Error wrapping ErrTruncated. Range and conditional headers are not forwarded: the answer is the
// whole media, as HTTP allows. An error answer (a Matrix error such as 404 M_NOT_FOUND, or a CDN's
// refusal) is returned as a response with its status, headers and Matrix error body, so that mautrix
// parses it as it always does. What has no answer — a refused redirect, too many redirects, a
// malformed media path, a network failure after the retries — is an error wrapping an *Error, which
// mautrix wraps in turn (errors.Is(err, ErrTooManyRedirects) holds through it). The http.Client never
// sees a redirect. Every other request (another path, another method, HEAD included) is passed to
// the wrapped transport untouched: the very *http.Request, nothing added or removed.
//
// net/http asks that RoundTrip execute a single HTTP transaction and leave redirects,
// authentication and cookies to the http.Client. A MediaTransport departs from that for media on
// purpose: the http.Client's redirect handling is what leaks the token, and it cannot be fixed from
// above the transport — CheckRedirect can strip a header, but cannot add the parameter and fall back
// when it is rejected, retry the whole chain from the homeserver when a signed URL expires, resume a
// body through a fresh chain, or check where a redirect dials. Below the http.Client is the one
// place every mautrix call passes. Nothing of the http.Client's is bypassed that matters to the
// caller: its redirect policy never runs because no 3xx reaches it; its Jar adds its cookies to the
// homeserver request only (Cookie is a credential) and learns those of a final answer from the
// homeserver (not those set on a redirect answer, which the chain reads and drains); its Timeout still
// bounds each whole exchange, body included (mautrix sets 180 s: a download longer than that is cut
// off, with or without the transport). mautrix's own retries (DefaultHTTPRetries, 4 in
// appservice.Create) run on top of the transport's: set Options.MaxRetries to -1 to leave them to
// mautrix alone.
//
// State has one owner each. The MediaTransport holds the wrapped transports and a bounded cache of
// Clients, one per homeserver base URL (scheme, host, port and path prefix), and nothing of any one
// request. Each Client holds what every download from its homeserver shares: what it learned (the
// parameter rejected, the homeserver's address class) and the 308 cache, whose entries are kept
// apart by the credentials they were made with. Each request's credentials live in its own download
// only. A Client per homeserver rather than one per request, so that what one download learns (a
// rejected parameter costs a round trip; a 308 target saves one) serves the next. A MediaTransport is
// safe for concurrent use.
type MediaTransport struct {
	base     http.RoundTripper // every request that is not a media download, untouched
	media    http.RoundTripper // the hops of media downloads
	ownMedia bool              // media is NewTransport's, made here: its dialer enforces the guard
	opts     Options
	classify func(netip.AddrPort) string // address classes for the Clients, replaceable in tests
	clients  *lru.Cache[string, *Client] // by homeserver base URL
}

// NewMediaTransport returns a MediaTransport that passes every request but media downloads to base,
// and downloads media with the policy opts configures. A nil base means http.DefaultTransport for
// the other requests (what an http.Client with a nil Transport uses) and NewTransport() for media.
// opts is checked as New checks it; HomeserverURL, AccessToken, UserAgent, Header, API and Transport
// come from each request and base, and must be zero.
func NewMediaTransport(base http.RoundTripper, opts Options) (*MediaTransport, error) {
	fail := func(format string, args ...any) (*MediaTransport, error) {
		return nil, &Error{Op: "new", Err: fmt.Errorf("%w: "+format, append([]any{ErrInvalidArgument}, args...)...)}
	}
	switch {
	case opts.HomeserverURL != "", opts.AccessToken != "", opts.UserAgent != "", opts.Header != nil:
		return fail("the homeserver, token, user agent and headers come from each request: leave HomeserverURL, AccessToken, UserAgent and Header empty")
	case opts.API != "" && opts.API != APIAuto:
		return fail("the endpoint family comes from each request: leave API empty")
	case opts.Transport != nil:
		return fail("pass the transport as base, not Options.Transport")
	}
	t := &MediaTransport{base: base, media: base, opts: opts, classify: classify}
	if base == nil {
		t.base = http.DefaultTransport
		t.media, t.ownMedia = NewTransport(), true
	}
	// The options are checked once here, as New checks them, with a placeholder homeserver (.invalid
	// is reserved, RFC 2606; New asks no network).
	if _, err := t.newClient("http://homeserver.invalid"); err != nil {
		return nil, err
	}
	t.clients, _ = lru.New[string, *Client](maxTransportHomeservers)
	return t, nil
}

// newClient returns a Client for one homeserver base URL with the transport's options.
func (t *MediaTransport) newClient(homeserver string) (*Client, error) {
	o := t.opts
	o.HomeserverURL, o.API, o.Transport = homeserver, APIAuto, t.media
	c, err := New(o)
	if err != nil {
		return nil, err
	}
	c.ownTransport, c.classify = t.ownMedia, t.classify
	return c, nil
}

// client returns the Client for the homeserver at u (its scheme and host) under the escaped path
// prefix, making it on first use.
func (t *MediaTransport) client(u *url.URL, prefix string) (*Client, error) {
	key := originOf(u).String() + prefix
	if c, ok := t.clients.Get(key); ok {
		return c, nil
	}
	path, err := url.PathUnescape(prefix)
	if err != nil {
		return nil, &Error{Op: "download", Err: fmt.Errorf("%w: path prefix %q", ErrInvalidURI, truncateForError(prefix))}
	}
	c, err := t.newClient((&url.URL{Scheme: u.Scheme, Host: u.Host, Path: path, RawPath: prefix}).String())
	if err != nil {
		return nil, err
	}
	if prev, found, _ := t.clients.PeekOrAdd(key, c); found {
		return prev, nil // made meanwhile by another request: one Client per homeserver
	}
	return c, nil
}

// RoundTrip downloads a media request with the Client's policy and passes any other request to the
// wrapped transport. See MediaTransport for what it returns.
func (t *MediaTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	mr, ok := parseMediaRequest(req)
	if !ok {
		return t.base.RoundTrip(req)
	}
	if req.Body != nil {
		req.Body.Close() // a GET sends none; the transport closes what it was given
	}
	if mr.err != nil {
		return nil, mr.err
	}
	c, err := t.client(req.URL, mr.prefix)
	if err != nil {
		return nil, err
	}
	r, err := c.transportRequest(mr, req.Header)
	if err != nil {
		return nil, err
	}
	m, err := c.start(req.Context(), r)
	if err != nil {
		if resp := c.errorResponse(req, err); resp != nil {
			return resp, nil
		}
		return nil, err
	}
	resp := m.response()
	resp.Request = req
	if m.d.final != c.home {
		resp.Header.Del("Set-Cookie")
	}
	return resp, nil
}

// CloseIdleConnections closes the idle connections of the wrapped transports that have such a
// method (http.Client.CloseIdleConnections calls it).
func (t *MediaTransport) CloseIdleConnections() {
	closeIdle(t.base)
	if t.ownMedia {
		closeIdle(t.media)
	}
}

func closeIdle(rt http.RoundTripper) {
	if ci, ok := rt.(interface{ CloseIdleConnections() }); ok {
		ci.CloseIdleConnections()
	}
}

// mediaRequest is a request for a media endpoint, taken apart.
type mediaRequest struct {
	prefix    string // the escaped path before /_matrix/
	api       API
	thumbnail bool
	uri       id.ContentURI
	fileName  string
	query     url.Values
	err       error // the request is for a media endpoint but cannot be downloaded as it is
}

// The media endpoints, as the escaped path continues after the homeserver's prefix.
var mediaEndpoints = []struct {
	marker    string
	api       API
	thumbnail bool
}{
	{"/_matrix/client/v1/media/download/", APIV1, false},
	{"/_matrix/client/v1/media/thumbnail/", APIV1, true},
	{"/_matrix/media/v3/download/", APIV3, false},
	{"/_matrix/media/v3/thumbnail/", APIV3, true},
}

// parseMediaRequest reports whether req is a GET for a media download or thumbnail endpoint, and
// takes it apart. A request for such an endpoint that is malformed is still one (its err is set):
// it is refused rather than sent with the http.Client's redirect handling.
func parseMediaRequest(req *http.Request) (*mediaRequest, bool) {
	if req.Method != http.MethodGet || req.URL == nil || req.URL.Host == "" {
		return nil, false
	}
	if s := strings.ToLower(req.URL.Scheme); s != "http" && s != "https" {
		return nil, false
	}
	path := req.URL.EscapedPath()
	for _, e := range mediaEndpoints {
		i := strings.Index(path, e.marker)
		if i < 0 {
			continue
		}
		mr := &mediaRequest{prefix: path[:i], api: e.api, thumbnail: e.thumbnail}
		op := "download"
		if e.thumbnail {
			op = "thumbnail"
		}
		invalid := func(why string) (*mediaRequest, bool) {
			mr.err = &Error{Op: op, Err: fmt.Errorf("%w: %s in %q", ErrInvalidURI, why, truncateForError(path))}
			return mr, true
		}
		segs := strings.Split(path[i+len(e.marker):], "/")
		if len(segs) < 2 || len(segs) > 3 || (e.thumbnail && len(segs) > 2) {
			return invalid("not server name and media ID")
		}
		var parts [3]string
		for j, s := range segs {
			p, err := url.PathUnescape(s)
			if err != nil {
				return invalid("bad escape")
			}
			parts[j] = p
		}
		mr.uri = id.ContentURI{Homeserver: parts[0], FileID: parts[1]}
		mr.fileName = parts[2]
		q, err := url.ParseQuery(req.URL.RawQuery)
		if err != nil {
			return invalid("malformed query")
		}
		mr.query = q
		return mr, true
	}
	return nil, false
}

// transportRequest makes the request of a download for a media request that arrived with header.
func (c *Client) transportRequest(mr *mediaRequest, header http.Header) (*request, error) {
	var r *request
	var err error
	if mr.thumbnail {
		o := ThumbnailOptions{Method: mr.query.Get("method"), Animated: mr.query.Get("animated") == "true", Query: mr.query}
		o.Width, _ = strconv.Atoi(mr.query.Get("width"))
		o.Height, _ = strconv.Atoi(mr.query.Get("height"))
		r, err = c.thumbnailRequest(mr.uri, o)
	} else {
		r, err = c.downloadRequest(mr.uri, []DownloadOptions{{FileName: mr.fileName, Query: mr.query}})
	}
	if err != nil {
		return nil, err
	}
	// The request's headers, with canonical keys, so that a credential set under any case is known
	// for one and stays on the homeserver.
	h := make(http.Header, len(header))
	for k, v := range header {
		ck := http.CanonicalHeaderKey(k)
		h[ck] = append(h[ck], v...)
	}
	for _, k := range conditionalHeaders {
		delete(h, k)
	}
	r.api, r.header = mr.api, h
	if c.hasCredentials(h) {
		sum := sha256.New()
		for _, k := range c.credentialHeaders {
			for _, v := range h[k] {
				io.WriteString(sum, k+"\x00"+v+"\x00")
			}
		}
		r.scope = " " + string(sum.Sum(nil))
	}
	return r, nil
}

// errorResponse presents the error answer that ended a download as the response to req, or returns
// nil when the download ended without a usable answer (a policy refusal, a network error, an
// unexpected 3xx). The body is the Matrix error body, or empty when the answer had none (a CDN's own
// error page may echo a signed URL).
func (c *Client) errorResponse(req *http.Request, err error) *http.Response {
	var he mautrix.HTTPError
	if !errors.As(err, &he) || he.Response == nil || he.Response.StatusCode < 400 || errors.Is(err, ErrUnexpectedStatus) {
		return nil // no 3xx ever reaches the http.Client
	}
	h := he.Response.Header.Clone()
	if h == nil {
		h = make(http.Header)
	}
	if he.Request == nil || he.Request.URL == nil || originOf(he.Request.URL) != c.home {
		h.Del("Set-Cookie")
	}
	body := he.ResponseBody
	h.Del("Content-Encoding") // the body below is the decoded one
	h.Set("Content-Length", strconv.Itoa(len(body)))
	status := he.Response.Status
	if status == "" {
		status = strconv.Itoa(he.Response.StatusCode) + " " + http.StatusText(he.Response.StatusCode)
	}
	return &http.Response{
		Status:        status,
		StatusCode:    he.Response.StatusCode,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        h,
		Body:          io.NopCloser(strings.NewReader(body)),
		ContentLength: int64(len(body)),
		Request:       req,
	}
}
