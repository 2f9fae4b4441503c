package mediaclient

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// MautrixClient offers the download methods of a *mautrix.Client, with the same shapes, through a Client:
// allow_redirect, credentials that never leave the homeserver's origin, fallbacks and retries.
// Switching a bridge over is one line:
//
//	media, _ := mediaclient.Wrap(cli) // then media.Download(ctx, uri) where cli.Download(ctx, uri) was
//
// It is safe for concurrent use. Errors are *Error values that still match mautrix's:
// errors.Is(err, mautrix.MNotFound), and errors.As into a mautrix.HTTPError value.
type MautrixClient struct {
	cli *mautrix.Client
	c   *Client
}

// Wrap returns a MautrixClient for cli. It reuses cli's homeserver URL, access token, user agent and
// HTTP transport (so a custom RoundTripper or proxy keeps working), and its logger when the context
// carries none, as mautrix does. A cli without a transport uses http.DefaultTransport for everything
// else, so media goes through NewTransport() with http.DefaultTransport's TLS configuration and
// proxy (a certificate trusted there is trusted here) and the guard's dialer. A *MediaTransport
// installed on cli is not used as such (each hop would be a second download): the Client sends its
// hops where the MediaTransport sends its own (see New). An appservice client's masquerading
// parameters (user_id with SetAppServiceUserID, device_id with SetAppServiceDeviceID) go on every
// homeserver request, as mautrix sends them; like the token, they stay on the homeserver's origin
// (they are in the query of the first request only). It does not use cli's redirect handling. cli's
// whole-request timeout (http.Client.Timeout, 180 s in mautrix) would cut long streams, so it
// becomes the stall and header timeouts instead: a download may take as long as it keeps moving, and
// a server that says nothing for that long is given up on (after the resumes and retries). opts may
// set anything else; its HomeserverURL, AccessToken, UserAgent, Transport, StallTimeout and
// HeaderTimeout are taken from cli when zero. cli's fields are read once: a later change of token
// needs a new Wrap.
func Wrap(cli *mautrix.Client, opts ...Options) (*MautrixClient, error) {
	if cli == nil || cli.HomeserverURL == nil {
		return nil, &Error{Op: "new", Err: fmt.Errorf("%w: nil mautrix client or homeserver URL", ErrInvalidArgument)}
	}
	if len(opts) > 1 {
		return nil, &Error{Op: "new", Err: fmt.Errorf("%w: more than one Options", ErrInvalidArgument)}
	}
	var o Options
	if len(opts) == 1 {
		o = opts[0]
	}
	if o.HomeserverURL == "" {
		o.HomeserverURL = cli.HomeserverURL.String()
	}
	if o.AccessToken == "" {
		o.AccessToken = cli.AccessToken
	}
	if o.UserAgent == "" {
		o.UserAgent = cli.UserAgent
	}
	defaultTransport := false
	if o.Transport == nil {
		if cli.Client != nil && cli.Client.Transport != nil {
			o.Transport = cli.Client.Transport
		} else {
			o.Transport, defaultTransport = newDefaultTransport(), true
		}
	}
	if o.Logger == nil {
		o.Logger = &cli.Log
	}
	if cli.Client != nil && cli.Client.Timeout > 0 {
		if o.StallTimeout == 0 {
			o.StallTimeout = cli.Client.Timeout
		}
		if o.HeaderTimeout == 0 {
			o.HeaderTimeout = cli.Client.Timeout
		}
	}
	c, err := New(o)
	if err != nil {
		return nil, err
	}
	c.ownTransport = c.ownTransport || defaultTransport // its dialer enforces the guard
	q := url.Values{}
	if cli.SetAppServiceUserID {
		q.Set("user_id", string(cli.UserID))
	}
	if cli.SetAppServiceDeviceID && cli.DeviceID != "" {
		q.Set("device_id", string(cli.DeviceID))
		q.Set("org.matrix.msc3202.device_id", string(cli.DeviceID))
	}
	if len(q) > 0 {
		c.query = q
	}
	return &MautrixClient{cli: cli, c: c}, nil
}

// Client returns the underlying Client, for the streaming API with metadata.
func (m *MautrixClient) Client() *Client { return m.c }

// Download is mautrix.Client.Download. The response's Body streams and must be closed; reading it
// returns an *Error on a truncated body. The response's Request is the request to the homeserver,
// without its query and credential headers.
func (m *MautrixClient) Download(ctx context.Context, uri id.ContentURI) (*http.Response, error) {
	return m.DownloadWithParams(ctx, uri, mautrix.DownloadExtra{})
}

// DownloadWithParams is mautrix.Client.DownloadWithParams: params.Query is added to the first
// request (timeout_ms stays the Client's to set, and allow_redirect too but for "false", which is
// sent as asked: see DownloadOptions.Query).
func (m *MautrixClient) DownloadWithParams(ctx context.Context, uri id.ContentURI, params mautrix.DownloadExtra) (*http.Response, error) {
	var q url.Values
	if len(params.Query) > 0 {
		q = make(url.Values, len(params.Query))
		for k, v := range params.Query {
			q.Set(k, v)
		}
	}
	media, err := m.c.Download(ctx, uri, DownloadOptions{Query: q})
	if err != nil {
		return nil, err
	}
	return media.response(), nil
}

// DownloadThumbnail is mautrix.Client.DownloadThumbnail (note the height-then-width order).
func (m *MautrixClient) DownloadThumbnail(ctx context.Context, uri id.ContentURI, height, width int, extras ...mautrix.DownloadThumbnailExtra) (*http.Response, error) {
	if len(extras) > 1 {
		return nil, &Error{Op: "thumbnail", URI: uri.String(), Err: fmt.Errorf("%w: more than one DownloadThumbnailExtra", ErrInvalidArgument)}
	}
	o := ThumbnailOptions{Width: width, Height: height}
	if len(extras) == 1 {
		o.Method, o.Animated = extras[0].Method, extras[0].Animated
	}
	media, err := m.c.Thumbnail(ctx, uri, o)
	if err != nil {
		return nil, err
	}
	return media.response(), nil
}

// DownloadBytes is mautrix.Client.DownloadBytes: the whole body, or an error (never a short body).
func (m *MautrixClient) DownloadBytes(ctx context.Context, uri id.ContentURI) ([]byte, error) {
	media, err := m.c.Download(ctx, uri)
	if err != nil {
		return nil, err
	}
	return readAll(media)
}

// DownloadEncrypted downloads and decrypts an encrypted attachment as a stream; see
// Client.DownloadEncrypted for when the hash is checked.
func (m *MautrixClient) DownloadEncrypted(ctx context.Context, file *event.EncryptedFileInfo) (*Media, error) {
	return m.c.DownloadEncrypted(ctx, file)
}

// DownloadEncryptedBytes downloads and decrypts an encrypted attachment. It returns the plaintext
// only once the SHA-256 of the whole ciphertext has matched: never unverified bytes.
func (m *MautrixClient) DownloadEncryptedBytes(ctx context.Context, file *event.EncryptedFileInfo) ([]byte, error) {
	media, err := m.c.DownloadEncrypted(ctx, file)
	if err != nil {
		return nil, err
	}
	return readAll(media)
}

// readAll reads a Media whole and closes it. It sizes its buffer by the Content-Length only up to
// maxPrealloc, and grows with what arrives beyond: a server's word is no reason to allocate.
func readAll(media *Media) ([]byte, error) {
	defer media.Close()
	var buf bytes.Buffer
	if n := media.ContentLength; n > 0 {
		buf.Grow(int(min(n+1, maxPrealloc)))
	}
	if _, err := buf.ReadFrom(media); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// maxPrealloc bounds what readAll allocates before the bytes arrive.
const maxPrealloc = 4 << 20

// response presents a Media as the *http.Response mautrix's methods return. Its Request is the
// download's request to the homeserver, redacted (no query, no credential header): mautrix's
// carries the token, which a response that is logged or kept should not.
func (media *Media) response() *http.Response {
	h := media.Header.Clone()
	d := media.d
	u := d.c.buildURL(d.r, d.api, false, 0)
	rh := d.r.header
	if rh == nil {
		rh = d.c.header()
	}
	req := d.c.redactRequest(&http.Request{Method: http.MethodGet, URL: u, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Header: rh, Host: u.Host})
	return &http.Response{
		Status:        strconv.Itoa(http.StatusOK) + " " + http.StatusText(http.StatusOK),
		StatusCode:    http.StatusOK,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        h,
		Body:          media,
		ContentLength: media.ContentLength,
		Request:       req,
	}
}
