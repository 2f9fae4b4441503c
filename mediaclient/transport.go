package mediaclient

// This file holds MediaTransport: an http.RoundTripper that runs the download policy below an
// *http.Client that someone else drives (mautrix's, most of all). It recognises the media requests,
// turns each into a download of the Client for its homeserver, and presents the download as one
// HTTP response. The policy itself is the download's (download.go, chain.go, resume.go).

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
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
// A GET or HEAD request for the media download or thumbnail endpoints — client v1
// (/_matrix/client/v1/media/download/… and …/thumbnail/…) or media v3 (/_matrix/media/v3/…),
// under any path prefix of the homeserver URL — is downloaded with the Client's whole policy: the
// origin it was sent to is the homeserver, and its own headers (Authorization with the user's or
// the appservice's token, any Cookie, the User-Agent) and query (an appservice's user_id and
// device_id) go to the homeserver only. allow_redirect=true is sent, and dropped when the homeserver
// rejects it (a caller's allow_redirect=false is sent as asked instead); the redirect chain is bounded; credentials never leave the homeserver's origin; https→http
// and steps into private address space are refused; transient faults are retried from the
// homeserver; the body is resumed when it breaks off or stalls, and checked against its length. The
// endpoint family is the one the request asked for: a v1 request is never turned into a v3 one.
//
// RoundTrip returns the final answer: status 200 with the headers of the answer that carried the
// bytes (Set-Cookie only when that was the homeserver, so that a cookie jar never files a CDN's
// cookie under the homeserver) and a body that streams the media, resumes and reports a short body as
// an *Error wrapping ErrTruncated; for a HEAD, that answer's status and headers with an empty body.
// Range and conditional headers are not forwarded: the answer is the whole media, as HTTP allows. An
// error answer (a Matrix error such as 404 M_NOT_FOUND, or a CDN's refusal) is returned as a response
// with its status, headers (Set-Cookie only from the homeserver) and Matrix error body, so that
// mautrix parses it as it always does; 502 M_TOO_LARGE is returned as 413 M_TOO_LARGE, the spec's
// other status for it, which mautrix does not retry (it retries 502, 503, 504 and 429). What has no
// answer — a refused redirect, too many redirects, a malformed media path, a network failure after
// the retries — is an error wrapping an *Error, which mautrix wraps in turn (errors.Is(err,
// ErrTooManyRedirects) holds through it). mautrix retries every error of its http.Client but a
// cancellation, so an error that asking again cannot mend (a policy refusal: too many redirects, a
// refused redirect or private address, an invalid argument or URI, an unusable answer; or a TLS
// verification failure) also matches context.Canceled, and mautrix returns it at once: through a
// MediaTransport, errors.Is(err, context.Canceled) alone does not tell that the caller's context
// ended (check the context itself, or the mediaclient sentinels first), and mautrix logs such a
// failure as a canceled request. The http.Client never sees a redirect.
//
// Every other request (another path, another method) is passed to the wrapped transport untouched:
// the very *http.Request, nothing added or removed, with one exception as defence in depth: a
// redirect the http.Client follows (req.Response is set) to an origin other than one of the
// requests before it loses its credential headers (Authorization, Cookie, Proxy-Authorization and
// Options.CredentialHeaders), which the http.Client would forward to another port of the same host.
// A request sent by a download of this package (a Client's or another MediaTransport's hop, marked
// in its context) is passed on as it is, so that a MediaTransport below a Client (Wrap over an
// installed transport, say) never runs a download inside a download; New and Wrap go further and use
// the transport a MediaTransport sends its own hops with.
//
// net/http asks that RoundTrip execute a single HTTP transaction and leave redirects,
// authentication and cookies to the http.Client. A MediaTransport departs from that for media on
// purpose: the http.Client's redirect handling is what leaks the token, and it cannot be fixed from
// above the transport — CheckRedirect can strip a header, but cannot add the parameter and fall back
// when it is rejected, retry the whole chain from the homeserver when a signed URL expires, resume a
// body through a fresh chain, or check where a redirect dials. Below the http.Client is the one
// place every mautrix call passes. Nothing of the http.Client's is bypassed that matters to the
// caller: its redirect policy never runs because no 3xx reaches it; its Jar adds its cookies to the
// homeserver request only (Cookie is a credential) and learns those of a final answer (media or
// error) from the homeserver (not those set on a redirect answer, which the chain reads and drains,
// nor any other origin's); its Timeout still bounds each whole exchange, body included (mautrix sets
// 180 s: a download longer than that is cut off, with or without the transport). mautrix's own
// retries (DefaultHTTPRetries, 4 in appservice.Create) run on top of the transport's for what is
// not final (a network failure, 429, 503, 504): set Options.MaxRetries to -1 to leave those to
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
	base        http.RoundTripper // every request that is not a media download, untouched
	media       http.RoundTripper // the hops of media downloads
	ownMedia    bool              // media is NewTransport's, made here: its dialer enforces the guard
	opts        Options
	credentials []string                    // canonical names of the credential headers
	classify    func(netip.AddrPort) string // address classes for the Clients, replaceable in tests
	clients     *lru.Cache[string, *Client] // by homeserver base URL
}

// NewMediaTransport returns a MediaTransport that passes every request but media downloads to base,
// and downloads media with the policy opts configures. A nil base means http.DefaultTransport for
// the other requests (what an http.Client with a nil Transport uses) and, for media, NewTransport()
// with the TLS configuration and proxy of http.DefaultTransport as they are when NewMediaTransport
// is called (so that a certificate trusted there is trusted for media too), and the guard's dialer.
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
		t.media, t.ownMedia = newDefaultTransport(), true
	}
	// The options are checked once here, as New checks them, with a placeholder homeserver (.invalid
	// is reserved, RFC 2606; New asks no network).
	c, err := t.newClient("http://homeserver.invalid")
	if err != nil {
		return nil, err
	}
	t.credentials = c.credentialHeaders
	t.clients, _ = lru.New[string, *Client](maxTransportHomeservers)
	return t, nil
}

// newDefaultTransport returns NewTransport() with the TLS configuration and the proxy of
// http.DefaultTransport, when it is an *http.Transport: what an http.Client with a nil Transport
// trusts and goes through, with the dialer that enforces the guard.
func newDefaultTransport() *http.Transport {
	t := NewTransport()
	if dt, ok := http.DefaultTransport.(*http.Transport); ok {
		t.TLSClientConfig = dt.TLSClientConfig.Clone() // nil stays nil
		t.Proxy = dt.Proxy
	}
	return t
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

// hopKey marks the context of a hop that a download sends (Client.exchange): a MediaTransport
// passes such a request on as it is.
type hopKey struct{}

// RoundTrip downloads a media request with the Client's policy and passes any other request to the
// wrapped transport. See MediaTransport for what it returns.
func (t *MediaTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Context().Value(hopKey{}) != nil {
		return t.media.RoundTrip(req) // a hop of a download above: its chain applies the policy
	}
	if leftOrigin(req) {
		req = t.withoutCredentials(req)
	}
	mr, ok := parseMediaRequest(req)
	if !ok {
		return t.base.RoundTrip(req)
	}
	if req.Body != nil {
		req.Body.Close() // a GET or HEAD sends none; the transport closes what it was given
	}
	if mr.err != nil {
		return nil, final(mr.err)
	}
	c, err := t.client(req.URL, mr.prefix)
	if err != nil {
		return nil, final(err)
	}
	r, err := c.transportRequest(mr, req.Header)
	if err != nil {
		return nil, final(err)
	}
	if req.Method == http.MethodHead {
		r.method = http.MethodHead
		r.scope += " HEAD" // a target learned for HEAD is not one for GET (a signed URL names its method)
		return c.head(req, c.plan(req.Context(), r))
	}
	d := c.plan(req.Context(), r)
	m, err := d.open()
	if err != nil {
		return c.failure(req, d, err)
	}
	resp := m.response()
	resp.Request = req
	if m.d.final != d.home {
		resp.Header.Del("Set-Cookie")
	}
	return resp, nil
}

// head runs the chain of a HEAD request and returns the final answer's status and headers with an
// empty body.
func (c *Client) head(req *http.Request, d *download) (*http.Response, error) {
	defer d.cancel()
	ans, err := d.do(0, "")
	if err != nil {
		return c.failure(req, d, d.fail(err))
	}
	ans.Body.Close()
	h := ans.Header.Clone()
	if d.final != d.home {
		h.Del("Set-Cookie")
	}
	return &http.Response{
		Status:        ans.Status,
		StatusCode:    ans.StatusCode,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        h,
		Body:          http.NoBody,
		ContentLength: ans.ContentLength,
		Request:       req,
	}, nil
}

// failure presents the error that ended the download d for req: the error answer as a response when
// there was one, else the error, marked final when asking again cannot mend it.
func (c *Client) failure(req *http.Request, d *download, err error) (*http.Response, error) {
	if resp := c.errorResponse(req, d, err); resp != nil {
		return resp, nil
	}
	return nil, final(err)
}

// finalError marks an error that asking again cannot mend (isFinal) as final for the http.Client's
// caller. mautrix retries every error its http.Client returns but one that matches
// context.Canceled (Client.executeCompiledRequest), so a finalError matches context.Canceled too;
// what it wraps stays reachable with errors.Is and errors.As.
type finalError struct{ err error }

func (e *finalError) Error() string        { return e.err.Error() }
func (e *finalError) Unwrap() error        { return e.err }
func (e *finalError) Is(target error) bool { return target == context.Canceled }

// final returns err, as a finalError when asking again cannot mend it.
func final(err error) error {
	if isFinal(err) {
		return &finalError{err}
	}
	return err
}

// maxRedirectFollowUps bounds how far back leftOrigin looks along a chain of redirects that an
// http.Client follows (its default policy stops after 10).
const maxRedirectFollowUps = 64

// leftOrigin reports whether req is a redirect that an http.Client follows (req.Response is set)
// and a request before it in the chain went to another origin than req's. A chain longer than
// maxRedirectFollowUps counts as one that left.
func leftOrigin(req *http.Request) bool {
	if req.Response == nil || req.URL == nil {
		return false
	}
	o := originOf(req.URL)
	r := req
	for range maxRedirectFollowUps {
		if r.Response == nil || r.Response.Request == nil {
			return false
		}
		r = r.Response.Request
		if r.URL == nil || originOf(r.URL) != o {
			return true
		}
	}
	return true
}

// withoutCredentials returns req, or a clone of it without its credential headers when it has any.
func (t *MediaTransport) withoutCredentials(req *http.Request) *http.Request {
	var clone *http.Request
	for k := range req.Header {
		if !slices.Contains(t.credentials, http.CanonicalHeaderKey(k)) {
			continue
		}
		if clone == nil {
			clone = req.Clone(req.Context())
		}
		delete(clone.Header, k)
	}
	if clone == nil {
		return req
	}
	return clone
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

// parseMediaRequest reports whether req is a GET or HEAD for a media download or thumbnail endpoint, and
// takes it apart. A request for such an endpoint that is malformed is still one (its err is set):
// it is refused rather than sent with the http.Client's redirect handling.
func parseMediaRequest(req *http.Request) (*mediaRequest, bool) {
	if (req.Method != http.MethodGet && req.Method != http.MethodHead) || req.URL == nil || req.URL.Host == "" {
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

// errorResponse presents the error answer that ended the download d as the response to req, or
// returns nil when the download ended without a usable answer (a policy refusal, a network error, an
// unexpected 3xx). The body is the Matrix error body, or empty when the answer had none (a CDN's own
// error page may echo a signed URL). The homeserver's Set-Cookie lines are kept for the
// http.Client's jar (a load balancer's affinity cookie, say); another origin's never are. A 502
// M_TOO_LARGE becomes 413 M_TOO_LARGE: both are the spec's, and mautrix retries 502.
func (c *Client) errorResponse(req *http.Request, d *download, err error) *http.Response {
	var he mautrix.HTTPError
	if !errors.As(err, &he) || he.Response == nil || he.Response.StatusCode < 400 || errors.Is(err, ErrUnexpectedStatus) {
		return nil // no 3xx ever reaches the http.Client
	}
	h := he.Response.Header.Clone()
	if h == nil {
		h = make(http.Header)
	}
	h.Del("Set-Cookie") // the redacted copy has none; the homeserver's are the download's
	if len(d.homeCookies) > 0 {
		h["Set-Cookie"] = slices.Clone(d.homeCookies)
	}
	body := he.ResponseBody
	h.Del("Content-Encoding") // the body below is the decoded one
	h.Set("Content-Length", strconv.Itoa(len(body)))
	code, status := he.Response.StatusCode, he.Response.Status
	if code == http.StatusBadGateway && he.RespError != nil && he.RespError.ErrCode == mautrix.MTooLarge.ErrCode {
		code, status = http.StatusRequestEntityTooLarge, ""
	}
	if status == "" {
		status = strconv.Itoa(code) + " " + http.StatusText(code)
	}
	return &http.Response{
		Status:        status,
		StatusCode:    code,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        h,
		Body:          io.NopCloser(strings.NewReader(body)),
		ContentLength: int64(len(body)),
		Request:       req,
	}
}
