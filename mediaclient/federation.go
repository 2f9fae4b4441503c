package mediaclient

// This file holds the FederationClient: a server fetching a remote server's media over federation,
// /_matrix/federation/v1/media/download and /thumbnail (spec v1.11). Its requests are signed with
// X-Matrix by mautrix's federation code, the remote server is found by Matrix server discovery, and
// one call is a download (download.go) whose plan is federation_download.go: the multipart answer
// (federation_multipart.go), its Location part followed through the same chain, guard, resuming
// body and limits as a client download, with the private-address guard strict.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/federation"
	"maunium.net/go/mautrix/id"
)

// APIFederation is the endpoint family of media fetched over federation (Media.API of a
// FederationClient download). It is not a value for Options.API.
const APIFederation API = "federation"

// federationBase is the base URL of a FederationClient's engine Client, which has no homeserver:
// every call sets the remote server's origin as its own home. The .invalid name never resolves, so
// nothing can reach it by mistake.
const federationBase = "https://federation.invalid"

// Bounds of the federation download.
const (
	// unrecognizedFor is how long a remote server that lacks the federation media endpoints is asked
	// on the legacy endpoint straight away.
	unrecognizedFor = time.Hour
	// unrecognizedServers bounds how many such servers are remembered.
	unrecognizedServers = 1024
	// discoveredServers bounds how many server discovery results are kept (the least recently used
	// goes first): server names come from mxc URIs, which anyone may send.
	discoveredServers = 1024
	// maxWellKnown bounds the body of a .well-known answer, as mautrix's discovery does.
	maxWellKnown = mautrix.WellKnownMaxSize
)

// FederationOptions configures a FederationClient. It is copied by NewFederationClient.
type FederationOptions struct {
	// ServerName is this server's name: the origin of the signed requests. Required.
	ServerName string
	// Key is this server's signing key (federation.ParseSynapseKey reads Synapse's signing.key
	// format). Required.
	Key *federation.SigningKey
	// ResolveServer finds a remote server from its name. It returns, as mautrix's
	// federation.ResolveServerName does, the Host to address (HostHeader, with or without a port)
	// and the addresses to connect to (IPPort, the first is used). Requests go to
	// https://<HostHeader's host>:<IPPort's port> with HostHeader as their Host header (the bare
	// host name where server discovery found no port in the name, as the spec says), and connect
	// to IPPort's host when it differs (an SRV target; see NewFederationTransport). nil means Matrix
	// server discovery (federation.ResolveServerName, with its .well-known request made under this
	// client's address guard and timeouts), its results kept until they expire, for the 1024 servers
	// last asked.
	ResolveServer func(ctx context.Context, serverName string) (*federation.ResolvedServerName, error)
	// AllowPrivateServers lets the remote server itself be on a loopback, private, link-local or
	// other special-purpose address. By default such a server is refused, as Synapse's
	// federation_ip_range_blacklist and mautrix's DefaultAllowIP do: a server name in an mxc URI is
	// chosen by whoever sent it. With it set, the remote server's connections are not reused.
	AllowPrivateServers bool
	// AllowPrivateLocations lets a Location part (and the redirects after it) lead to such an
	// address. By default a Location may only reach public addresses, whatever the class of the
	// remote server: on a server, a Location is a request the remote server makes this server send.
	AllowPrivateLocations bool
	// Options holds the transfer settings a FederationClient shares with Client: UserAgent,
	// MaxRedirects (for the chain after a Location), AllowInsecureRedirects, MaxRetries, the retry
	// waits, MaxSize, DisableResume, ServerUploadWait (sent as timeout_ms), the timeouts, Transport
	// and Logger. A nil Transport means NewFederationTransport(). A Transport that is not
	// NewFederationTransport's (or a Clone of it), or that goes through a proxy, connects to the
	// host in the URL rather than to the address server discovery found when the two differ: the
	// address guard then checks both, and refuses the request unless both are allowed.
	// HomeserverURL, AccessToken, API, AllowPrivateRedirects, Header, CredentialHeaders and
	// UploadWait have no meaning here and must be zero; the redirect parameter and cache settings
	// are ignored.
	Options Options
}

// FederationClient downloads media from other Matrix servers over federation, as a homeserver (or
// a media repository) does. It is safe for concurrent use.
//
// A download asks the remote server's federation media endpoint with a signed request and reads
// its multipart/mixed answer: a JSON metadata part (at most 64 KiB), then either the media's bytes,
// streamed as they arrive, or a part with a Location header. A Location is followed under the
// rules of a client redirect (http or https only, no userinfo, https→http refused, a bounded chain)
// without any credential, with the private-address guard strict (see AllowPrivateLocations); when
// it fails, the remote server is asked once more, since the spec says a Location must not be cached.
// A remote server that lacks the endpoint (404 M_UNRECOGNIZED) is asked on the legacy
// /_matrix/media/v3 endpoint with allow_remote=false instead. Bodies are resumed and stall-checked
// as a Client's are, and the size limit holds for both answer forms.
//
// Every error is an *Error, as a Client's.
//
// See https://spec.matrix.org/v1.11/server-server-api/#content-repository and, for the signed
// request, https://spec.matrix.org/v1.11/server-server-api/#request-authentication.
type FederationClient struct {
	c                   *Client // the engine: options, transport, retry policy, guard
	serverName          string
	key                 *federation.SigningKey
	resolve             func(ctx context.Context, serverName string) (*federation.ResolvedServerName, error)
	serverGuard         guard // the guard on the remote server's own origin
	locationGuard       guard // the guard on a Location and every origin after it
	closeServerConns    bool  // connections to remote servers are not reused (they may be private)
	unrecognized        *lru.Cache[string, time.Time]
	resolutions         *lru.Cache[string, *federation.ResolvedServerName] // discovery results, when ResolveServer is nil
	wellKnownHTTPClient *http.Client
}

// NewFederationClient checks opts and returns a FederationClient.
func NewFederationClient(opts FederationOptions) (*FederationClient, error) {
	fail := func(format string, args ...any) (*FederationClient, error) {
		return nil, &Error{Op: "new", Err: fmt.Errorf("%w: "+format, append([]any{ErrInvalidArgument}, args...)...)}
	}
	if err := validServerName(opts.ServerName); err != nil {
		return fail("server name %q: %v", truncateForError(opts.ServerName), err)
	}
	if opts.Key == nil || len(opts.Key.Priv) != 64 || opts.Key.ID == "" {
		return fail("no signing key")
	}
	o := opts.Options
	switch {
	case o.HomeserverURL != "", o.AccessToken != "", o.API != "":
		return fail("HomeserverURL, AccessToken and API do not apply to federation")
	case o.AllowPrivateRedirects:
		return fail("AllowPrivateRedirects does not apply to federation (see AllowPrivateLocations)")
	case o.Header != nil, o.CredentialHeaders != nil:
		return fail("Header and CredentialHeaders do not apply to federation")
	case o.UploadWait != 0:
		return fail("UploadWait does not apply to federation")
	}
	o.HomeserverURL = federationBase
	o.RedirectCacheSize = -1 // a Location is not to be cached, nor anything after it
	own := o.Transport == nil
	if own {
		o.Transport = NewFederationTransport()
	}
	c, err := New(o)
	if err != nil {
		return nil, err
	}
	// NewFederationTransport's dialer checks every address it connects to, as NewTransport's does.
	c.ownTransport = own
	f := &FederationClient{
		c:             c,
		serverName:    opts.ServerName,
		key:           opts.Key,
		resolve:       opts.ResolveServer,
		serverGuard:   guardStrict,
		locationGuard: guardStrict,
	}
	if opts.AllowPrivateServers {
		f.serverGuard, f.closeServerConns = guardNone, true
	}
	if opts.AllowPrivateLocations {
		f.locationGuard = guardNone
	}
	f.unrecognized, _ = lru.New[string, time.Time](unrecognizedServers)
	if f.resolve == nil {
		f.resolutions, _ = lru.New[string, *federation.ResolvedServerName](discoveredServers)
		f.wellKnownHTTPClient = &http.Client{Transport: wellKnownTransport{f}}
		f.resolve = f.discover
	}
	return f, nil
}

// NewFederationTransport returns the transport a FederationClient uses when Options.Transport is
// nil: NewTransport's (HTTP/1.1, a large pool, the guard in its dialer) without a proxy, whose
// dialer connects to the address server discovery found when it differs from the host in the URL
// (an SRV target). Set its TLSClientConfig to trust a private CA, and pass it (or a Clone of it)
// as Options.Transport. A transport whose dialer is replaced, or wrapped, is taken for one that
// connects to the host in the URL (see FederationOptions.Options).
func NewFederationTransport() *http.Transport {
	t := NewTransport()
	t.Proxy = nil
	t.DialContext = (&federationDialer{dial: t.DialContext}).DialContext
	return t
}

// federationDialer is the dialer of NewFederationTransport.
type federationDialer struct {
	dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// DialContext connects to addr, or to where the request's dial override says when it is for addr.
func (d *federationDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	if o, ok := ctx.Value(dialOverrideKey{}).(*dialOverride); ok && strings.EqualFold(addr, o.from) {
		addr = o.to
	}
	return d.dial(ctx, network, addr)
}

// federationDial is the code of federationDialer.DialContext's method values: the same for every
// dialer, and so for NewFederationTransport's transports and their Clones.
var federationDial = reflect.ValueOf((&federationDialer{}).DialContext).Pointer()

// appliesDialOverride reports whether rt connects where a dial override says, without a proxy: it
// is NewFederationTransport's (or a Clone of it) with its dialer in place.
func appliesDialOverride(rt http.RoundTripper, viaProxy bool) bool {
	t, ok := rt.(*http.Transport)
	return ok && !viaProxy && t.DialTLSContext == nil && t.DialTLS == nil && t.DialContext != nil &&
		reflect.ValueOf(t.DialContext).Pointer() == federationDial
}

// dialOverride tells NewFederationTransport's dialer to connect to another address than the URL's.
type dialOverride struct {
	from string // host:port as in the URL, the port always given
	to   string // host:port to connect to
}

type dialOverrideKey struct{}

// dialTarget returns the host and port a request to u connects to through NewFederationTransport:
// the URL's, or a dial override's, which overridden reports. The URL's host and port are compared
// as the transport gives them to its dialer (the scheme's port when u has none).
func dialTarget(ctx context.Context, u *url.URL) (host string, port uint16, overridden bool) {
	host, port = u.Hostname(), urlPort(u)
	o, ok := ctx.Value(dialOverrideKey{}).(*dialOverride)
	if !ok || !strings.EqualFold(net.JoinHostPort(host, strconv.Itoa(int(port))), o.from) {
		return host, port, false
	}
	th, tp, err := net.SplitHostPort(o.to)
	if err != nil {
		return host, port, false
	}
	n, err := strconv.ParseUint(tp, 10, 16)
	if err != nil {
		return host, port, false
	}
	return th, uint16(n), true
}

// Download fetches a media item of the remote server uri.Homeserver over federation. At most one
// DownloadOptions may be given; FileName does not apply (the federation endpoint has no such form).
// The caller must Close the returned Media.
func (f *FederationClient) Download(ctx context.Context, uri id.ContentURI, opts ...DownloadOptions) (*Media, error) {
	r, err := f.c.downloadRequest(uri, opts)
	if err != nil {
		return nil, err
	}
	if r.fileName != "" {
		return nil, &Error{Op: "download", URI: uri.String(), Err: fmt.Errorf("%w: federation downloads take no file name", ErrInvalidArgument)}
	}
	return f.start(ctx, r)
}

// Thumbnail fetches a thumbnail of a remote server's media item over federation. The caller must
// Close the returned Media.
func (f *FederationClient) Thumbnail(ctx context.Context, uri id.ContentURI, opts ThumbnailOptions) (*Media, error) {
	r, err := f.c.thumbnailRequest(uri, opts)
	if err != nil {
		return nil, err
	}
	return f.start(ctx, r)
}

// ServerName returns the name this client signs its requests with.
func (f *FederationClient) ServerName() string { return f.serverName }

// CloseIdleConnections closes the idle connections of the transport, when it has such a method.
func (f *FederationClient) CloseIdleConnections() { f.c.CloseIdleConnections() }

// FederationMetadata returns the JSON object of the metadata part of a federation answer (the spec
// defines no field in it yet), or nil for a client download or a legacy answer.
func (m *Media) FederationMetadata() json.RawMessage {
	if m.d.fed == nil || m.d.fed.meta == nil {
		return nil
	}
	return append(json.RawMessage(nil), m.d.fed.meta...)
}

// start runs a federation call up to its first successful answer.
func (f *FederationClient) start(ctx context.Context, r *request) (*Media, error) {
	d := f.c.newDownload(ctx, r)
	fc, err := f.plan(d.ctx, r.uri.Homeserver)
	if err != nil {
		d.cancel()
		return nil, d.fail(err)
	}
	d.fed, d.home, d.api = fc, originOf(fc.base), APIFederation
	if fc.legacy {
		d.api = APIV3
	}
	return d.open()
}

// plan finds the remote server and returns the federation plan of a call to it.
func (f *FederationClient) plan(ctx context.Context, serverName string) (*fedCall, error) {
	res, err := f.resolve(ctx, serverName)
	if err != nil {
		return nil, fmt.Errorf("finding server %q: %w", serverName, err)
	}
	base, host, dial, err := resolvedBase(res)
	if err != nil {
		return nil, fmt.Errorf("finding server %q: %w", serverName, err)
	}
	fc := &fedCall{f: f, dest: serverName, base: base, host: host, dial: dial}
	if t, ok := f.unrecognized.Get(serverName); ok {
		if time.Since(t) < unrecognizedFor {
			fc.legacy = true
		} else {
			f.unrecognized.Remove(serverName)
		}
	}
	return fc, nil
}

// resolvedBase turns a discovery result into the base URL of the remote server's federation API,
// the Host header of requests to it, and, when the address to connect to is on another host, the
// dial override that reaches it. The Host header is the result's HostHeader: the spec wants the
// port in it only where the server name (or the delegated name) gave one, so an SRV target's port
// or the default 8448 is left out, as mautrix's federation client does.
func resolvedBase(res *federation.ResolvedServerName) (base *url.URL, hostHeader string, dial *dialOverride, err error) {
	if res == nil || len(res.IPPort) == 0 {
		return nil, "", nil, fmt.Errorf("%w: server discovery gave no address", ErrInvalidArgument)
	}
	hh, err := url.Parse("https://" + res.HostHeader)
	if err != nil || validServerName(res.HostHeader) != nil || hh.Hostname() == "" {
		return nil, "", nil, fmt.Errorf("%w: server discovery gave the host %q", ErrInvalidArgument, truncateForError(res.HostHeader))
	}
	th, tp, err := net.SplitHostPort(res.IPPort[0])
	if err != nil || th == "" {
		return nil, "", nil, fmt.Errorf("%w: server discovery gave the address %q", ErrInvalidArgument, truncateForError(res.IPPort[0]))
	}
	if n, err := strconv.ParseUint(tp, 10, 16); err != nil || n == 0 {
		return nil, "", nil, fmt.Errorf("%w: server discovery gave the port %q", ErrInvalidArgument, tp)
	}
	host := strings.ToLower(hh.Hostname())
	base = &url.URL{Scheme: "https", Host: net.JoinHostPort(host, tp)}
	if !strings.EqualFold(strings.TrimSuffix(th, "."), strings.TrimSuffix(host, ".")) {
		dial = &dialOverride{from: base.Host, to: res.IPPort[0]}
	}
	return base, strings.ToLower(hh.Host), dial, nil
}

// discover is the default ResolveServer: Matrix server discovery, its results kept until they
// expire in a bounded cache.
func (f *FederationClient) discover(ctx context.Context, serverName string) (*federation.ResolvedServerName, error) {
	if res, ok := f.resolutions.Get(serverName); ok {
		if time.Now().Before(res.Expires) {
			return res, nil
		}
		f.resolutions.Remove(serverName)
	}
	res, err := federation.ResolveServerName(ctx, serverName, &federation.ResolveServerNameOpts{HTTPClient: f.wellKnownHTTPClient})
	if err != nil {
		return nil, err
	}
	if time.Now().Before(res.Expires) {
		f.resolutions.Add(serverName, res)
	}
	return res, nil
}

// wellKnownTransport carries the .well-known requests of server discovery: through the client's
// transport and timeouts, under the remote servers' address guard.
type wellKnownTransport struct{ f *FederationClient }

func (t wellKnownTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	c := t.f.c
	req = req.Clone(req.Context()) // a RoundTripper leaves the caller's request alone
	req, err := c.guardHop(req, t.f.serverGuard, &chainGuard{})
	if err != nil {
		return nil, err
	}
	req.Header.Set("User-Agent", c.opts.UserAgent)
	resp, err := c.exchange(req, 0)
	if err != nil || resp.StatusCode < 200 || resp.StatusCode >= 300 {
		return resp, err // an answer that is not 2xx comes buffered
	}
	if err := c.bufferWellKnown(resp); err != nil {
		return nil, err
	}
	return resp, nil
}

// errWellKnownTooLong is a .well-known answer longer than maxWellKnown.
var errWellKnownTooLong = errors.New("the .well-known answer is too long")

// bufferWellKnown reads the body of a 2xx .well-known answer into memory, as exchange does for
// error answers: at most maxWellKnown bytes, the whole within the stall timeout (or else the header
// timeout), so that server discovery decodes it from memory and a remote server that stops sending
// holds nothing. It releases the hop. An answer that stalls or is too long is an error, which
// server discovery takes for no .well-known (the spec's step 4 follows).
func (c *Client) bufferWellKnown(resp *http.Response) error {
	limit := c.opts.StallTimeout
	if limit <= 0 {
		limit = c.opts.HeaderTimeout
	}
	hb, ok := resp.Body.(*hopBody)
	if ok && limit > 0 {
		t := time.AfterFunc(limit, func() { hb.abort(fmt.Errorf("%w: no whole .well-known answer within %v", ErrStalled, limit)) })
		defer t.Stop()
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxWellKnown+1))
	if ok {
		if cause := hb.cause(); cause != nil {
			err = cause
		}
	}
	resp.Body.Close()
	switch {
	case err != nil:
		return err
	case len(data) > maxWellKnown:
		return fmt.Errorf("%w (more than %d bytes)", errWellKnownTooLong, maxWellKnown)
	}
	resp.Body = &bufferedBody{Reader: bytes.NewReader(data), data: data}
	resp.ContentLength = int64(len(data))
	return nil
}

// authorization returns the X-Matrix Authorization header of a GET for requestURI (path and query)
// on the server dest, signed with mautrix's canonical JSON signing as the spec's request
// authentication describes.
func (f *FederationClient) authorization(dest, requestURI string) (string, error) {
	sig, err := f.key.SignJSON(signedRequest{Method: http.MethodGet, URI: requestURI, Origin: f.serverName, Destination: dest})
	if err != nil {
		return "", fmt.Errorf("signing the request: %w", err)
	}
	return federation.XMatrixAuth{Origin: f.serverName, Destination: dest, KeyID: f.key.ID, Signature: sig}.String(), nil
}

// signedRequest is the JSON object an X-Matrix signature covers (a GET has no content).
type signedRequest struct {
	Method      string `json:"method"`
	URI         string `json:"uri"`
	Origin      string `json:"origin"`
	Destination string `json:"destination"`
}

// rememberUnrecognized notes that a remote server lacks the federation media endpoints.
func (f *FederationClient) rememberUnrecognized(serverName string) {
	f.unrecognized.Add(serverName, time.Now())
}
