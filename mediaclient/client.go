package mediaclient

// This file holds the Client, its options and the choice of endpoint family. The redirect loop is in
// redirect.go, the fallbacks in fallback.go, retries in retry.go and the streamed result in media.go.

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/net/http/httpguts"
	"maunium.net/go/mautrix"
)

// Defaults for the zero values of Options.
const (
	DefaultMaxRedirects     = 5
	DefaultMaxRetries       = 4
	DefaultRetryWaitMin     = 500 * time.Millisecond
	DefaultRetryWaitMax     = 10 * time.Second
	DefaultMaxRetryAfter    = 60 * time.Second
	DefaultServerUploadWait = 20 * time.Second
	// DefaultConnectTimeout bounds connecting (DNS, TCP, TLS) to one origin: Go's own dialer uses 30 s.
	DefaultConnectTimeout = 30 * time.Second
	// DefaultHeaderTimeout bounds the wait for response headers after a request was sent, per hop
	// (plus the timeout_ms the homeserver was allowed): aria2's --timeout and Synapse's own media
	// fetches both give up after about a minute of silence.
	DefaultHeaderTimeout = 60 * time.Second
	// DefaultStallTimeout is how long a body may deliver nothing before it counts as stalled and is
	// resumed: a minute, as aria2 (60 s) and Synapse do; rclone's 5 minutes and wget2's 15 hold a bot's
	// worker far longer than any live server pauses. A slow but moving body is never cut off.
	DefaultStallTimeout = 60 * time.Second
)

// API is an endpoint family.
type API string

// The endpoint families.
const (
	// APIAuto uses client v1 when a token is set and the server's /versions lists v1.11 or later (or
	// org.matrix.msc3916.stable), else media v3. A v1 answer of 404/405 M_UNRECOGNIZED falls back to
	// v3, and the Client remembers it.
	APIAuto API = "auto"
	// APIV1 is authenticated media, /_matrix/client/v1/media (spec v1.11). It never falls back.
	APIV1 API = "v1"
	// APIV3 is /_matrix/media/v3 (no authentication needed). It never moves to v1.
	APIV3 API = "v3"
)

// Options configures a Client. It is copied by New; every zero value has a documented default.
type Options struct {
	// HomeserverURL is the base URL of the homeserver's client-server API, e.g.
	// "https://matrix.example.org"; it may carry a path prefix. Required.
	HomeserverURL string
	// AccessToken is sent as "Authorization: Bearer" to the homeserver's origin only. "" sends none.
	AccessToken string
	// UserAgent is sent on every request. "" means "mxfetch/" + Version.
	UserAgent string
	// API picks the endpoint family. "" means APIAuto.
	API API
	// DisableRedirectParam stops allow_redirect=true from being sent at all.
	DisableRedirectParam bool
	// DisableRedirectParamV1 stops allow_redirect=true from being sent on client v1, where the spec
	// does not define it (it is still sent on v3).
	DisableRedirectParamV1 bool
	// MaxRedirects bounds the redirects followed: MaxRedirects succeed, one more fails with
	// ErrTooManyRedirects. 0 means DefaultMaxRedirects; a negative value follows none.
	MaxRedirects int
	// AllowInsecureRedirects allows a redirect from https to http. Credentials never follow it.
	AllowInsecureRedirects bool
	// AllowPrivateRedirects turns off the private-address guard: by default a redirect may not lead
	// from the homeserver's address class (public, private, loopback, link-local) to a loopback,
	// private, link-local or other special-purpose address of another class. The address is checked
	// when the connection is dialled by the transport New makes when Transport is nil; with another
	// transport, or through a proxy, the target's name is resolved and checked before the request,
	// and a name that does not resolve is refused (the proxy might resolve it to anything). Through a
	// proxy, a name that resolves differently for the proxy than here is the one gap left.
	AllowPrivateRedirects bool
	// MaxRetries is how many times a transient failure (connection error, stall, 5xx but 501, 429)
	// is retried; every retry starts the chain again at the homeserver. 0 means DefaultMaxRetries; a
	// negative value means no retries.
	MaxRetries int
	// RetryWaitMin and RetryWaitMax bound the exponential backoff between retries. Zero means
	// DefaultRetryWaitMin and DefaultRetryWaitMax.
	RetryWaitMin, RetryWaitMax time.Duration
	// MaxRetryAfter caps a wait the server asks for with Retry-After or retry_after_ms. 0 means
	// DefaultMaxRetryAfter.
	MaxRetryAfter time.Duration
	// MaxSize refuses media larger than this many bytes with ErrTooLarge. 0 means no limit.
	MaxSize int64
	// DisableResume stops a body that breaks off or stalls from being resumed with a Range request.
	// Answers cut into chunks (a short 206) are still followed to the end.
	DisableResume bool
	// RedirectCacheSize is how many 308 (permanent) redirect targets are remembered, per media item,
	// so that a repeated download skips the homeserver hop. 0 means DefaultRedirectCacheSize; a
	// negative value turns the cache off.
	RedirectCacheSize int
	// ServerUploadWait is sent as timeout_ms: how long the server may hold one request for media
	// that is not uploaded yet. It is not a client timeout. 0 means DefaultServerUploadWait; a
	// negative value sends no timeout_ms.
	ServerUploadWait time.Duration
	// UploadWait is how long, in all, a download waits out 504 M_NOT_YET_UPLOADED by asking again.
	// 0 means the first such answer is returned as an error.
	UploadWait time.Duration
	// Header holds extra headers sent with every request, whatever the case of their keys. Those
	// named in CredentialHeaders, and Authorization, Cookie and Proxy-Authorization, are sent to the
	// homeserver's origin only. Credentials for a proxy belong in the proxy's URL (or the transport's
	// ProxyConnectHeader), not here: through a CONNECT tunnel a request's Proxy-Authorization reaches
	// the homeserver itself.
	Header http.Header
	// CredentialHeaders names more headers to treat as credentials, beside Authorization, Cookie and
	// Proxy-Authorization.
	CredentialHeaders []string
	// ConnectTimeout bounds getting a connection to one origin (DNS, TCP and TLS). 0 means
	// DefaultConnectTimeout; a negative value sets none of the Client's own (the transport's stay).
	ConnectTimeout time.Duration
	// HeaderTimeout bounds the wait for the response headers of one hop once the request was sent
	// (on the homeserver, plus the timeout_ms it was allowed). A hop that stays silent is a stall,
	// retried like a connection error. 0 means DefaultHeaderTimeout; a negative value means none.
	HeaderTimeout time.Duration
	// StallTimeout is how long a body may deliver no byte while it is being read before it counts
	// as stalled: it is then resumed with a Range request (through a fresh chain), and ErrStalled is
	// returned only when the resumes are used up. Time the caller spends between reads does not
	// count. 0 means DefaultStallTimeout; a negative value means none.
	StallTimeout time.Duration
	// LowSpeedLimit and LowSpeedTime, when both positive, treat a body that delivers fewer than
	// LowSpeedLimit bytes per second over LowSpeedTime as stalled (ErrTooSlow), as curl's
	// --speed-limit and --speed-time do. Zero means no such check.
	LowSpeedLimit int64
	LowSpeedTime  time.Duration
	// Timeout, when positive, bounds a whole call: every request, retry and wait, and the reading of
	// the body. The error is then context.DeadlineExceeded. Zero means no cap: a large file on a slow
	// link finishes as long as it keeps moving.
	Timeout time.Duration
	// Transport performs single HTTP exchanges. nil means NewTransport(): HTTP/1.1 with a connection
	// pool sized for parallel downloads (64 idle connections per host), no transparent
	// decompression, and a dialer that enforces the private-address guard. Its own redirect
	// handling, if any, is never used. A *MediaTransport is not used as such: the Client sends its
	// hops through the transport the MediaTransport sends its own with.
	Transport http.RoundTripper
	// Logger receives debug lines for decisions a caller cannot see (a redirect, a retry, a fallback),
	// without tokens or signed query strings. As in mautrix, a logger in the call's context
	// (zerolog.Ctx) comes first; nil here and none in the context logs nothing.
	Logger *zerolog.Logger
}

// Client downloads Matrix media. It is safe for concurrent use; every call shares one connection
// pool. Create it with New; its options cannot change afterwards.
//
// A Client holds only what its calls share: the options, the transport, what it learned about the
// homeserver and the cache of permanent redirects. Everything about one call lives in that call's
// download (download.go).
type Client struct {
	opts              Options
	base              *url.URL
	home              origin // the homeserver's normalised origin
	maxRedirects      int
	maxRetries        int
	credentialHeaders []string // canonical names
	transport         http.RoundTripper
	ownTransport      bool                        // the transport is NewTransport's, made by New
	classify          func(netip.AddrPort) string // address classes, replaceable in tests
	learned           learned
	cache             *redirectCache // nil when off
	query             url.Values     // added to every homeserver request where the caller sets none (Wrap: user_id)
	stdTransport      bool           // the transport is net/http's, which never changes a request's headers
	baseHeader        http.Header    // what every request to the homeserver starts from (header)
	publicHeader      http.Header    // baseHeader as it goes to other origins (makePublicHeader)
}

// learned is what a Client learns about its homeserver, shared by every call.
type learned struct {
	paramRejected atomic.Bool  // the homeserver refuses allow_redirect
	noV1          atomic.Bool  // the homeserver lacks client v1 media
	homeClass     atomic.Value // string: the class of the homeserver's address
	versions      versionsCache
}

// New checks opts and returns a Client.
func New(opts Options) (*Client, error) {
	fail := func(format string, args ...any) (*Client, error) {
		return nil, &Error{Op: "new", Err: fmt.Errorf("%w: "+format, append([]any{ErrInvalidArgument}, args...)...)}
	}
	if strings.TrimSpace(opts.HomeserverURL) == "" {
		return fail("empty homeserver URL")
	}
	base, err := url.Parse(strings.TrimSpace(opts.HomeserverURL))
	if err != nil {
		return fail("homeserver URL: %v", err)
	}
	if base.Scheme != "http" && base.Scheme != "https" {
		return fail("homeserver URL %q: scheme must be http or https", redactURL(base))
	}
	if base.Hostname() == "" {
		return fail("homeserver URL %q: no host", redactURL(base))
	}
	if base.User != nil || base.RawQuery != "" || base.Fragment != "" {
		return fail("homeserver URL %q: must not carry userinfo, a query or a fragment", redactURL(base))
	}
	base.Path = strings.TrimRight(base.Path, "/")
	base.RawPath = strings.TrimRight(base.RawPath, "/")
	switch opts.API {
	case "":
		opts.API = APIAuto
	case APIAuto, APIV1, APIV3:
	default:
		return fail("unknown endpoint family %q (want auto, v1 or v3)", opts.API)
	}
	if !httpguts.ValidHeaderFieldValue(opts.AccessToken) {
		return fail("access token holds a character a header cannot carry")
	}
	if !httpguts.ValidHeaderFieldValue(opts.UserAgent) {
		return fail("user agent holds a character a header cannot carry")
	}
	if opts.MaxSize < 0 || opts.LowSpeedLimit < 0 {
		return fail("negative size limit or speed")
	}
	if opts.UploadWait < 0 || opts.RetryWaitMin < 0 || opts.RetryWaitMax < 0 || opts.MaxRetryAfter < 0 || opts.LowSpeedTime < 0 || opts.Timeout < 0 {
		return fail("negative duration")
	}
	if opts.UserAgent == "" {
		opts.UserAgent = "mxfetch/" + Version
	}
	opts.RetryWaitMin = orDefault(opts.RetryWaitMin, DefaultRetryWaitMin)
	opts.RetryWaitMax = orDefault(opts.RetryWaitMax, DefaultRetryWaitMax)
	opts.MaxRetryAfter = orDefault(opts.MaxRetryAfter, DefaultMaxRetryAfter)
	opts.ServerUploadWait = orDefault(opts.ServerUploadWait, DefaultServerUploadWait)
	opts.ConnectTimeout = orDefault(opts.ConnectTimeout, DefaultConnectTimeout)
	opts.HeaderTimeout = orDefault(opts.HeaderTimeout, DefaultHeaderTimeout)
	opts.StallTimeout = orDefault(opts.StallTimeout, DefaultStallTimeout)
	if opts.LowSpeedLimit == 0 || opts.LowSpeedTime == 0 {
		opts.LowSpeedLimit, opts.LowSpeedTime = 0, 0
	}
	// Header keys are made canonical, so that a literal http.Header{"authorization": …} is still
	// recognised as a credential and stripped off the hops that leave the homeserver.
	header := make(http.Header, len(opts.Header))
	for k, v := range opts.Header {
		if !httpguts.ValidHeaderFieldName(k) {
			return fail("header name %q is not valid", k)
		}
		for _, x := range v {
			if !httpguts.ValidHeaderFieldValue(x) {
				return fail("header %q holds a character a header cannot carry", k)
			}
		}
		ck := http.CanonicalHeaderKey(k)
		header[ck] = append(header[ck], v...)
	}
	opts.Header = header
	c := &Client{
		opts:              opts,
		base:              base,
		home:              originOf(base),
		maxRedirects:      opts.MaxRedirects,
		maxRetries:        opts.MaxRetries,
		credentialHeaders: []string{"Authorization", "Cookie", "Proxy-Authorization"},
		transport:         opts.Transport,
		classify:          classify,
		cache:             newRedirectCache(opts.RedirectCacheSize),
	}
	for _, h := range opts.CredentialHeaders {
		if !httpguts.ValidHeaderFieldName(strings.TrimSpace(h)) {
			return nil, &Error{Op: "new", Err: fmt.Errorf("%w: credential header name %q is not valid", ErrInvalidArgument, h)}
		}
		if ck := http.CanonicalHeaderKey(strings.TrimSpace(h)); ck != "" && !slices.Contains(c.credentialHeaders, ck) {
			c.credentialHeaders = append(c.credentialHeaders, ck)
		}
	}
	c.opts.CredentialHeaders = slices.Clone(c.credentialHeaders[3:])
	switch {
	case c.maxRedirects == 0:
		c.maxRedirects = DefaultMaxRedirects
	case c.maxRedirects < 0:
		c.maxRedirects = 0
	}
	switch {
	case c.maxRetries == 0:
		c.maxRetries = DefaultMaxRetries
	case c.maxRetries < 0:
		c.maxRetries = 0
	}
	if mt, ok := c.transport.(*MediaTransport); ok {
		// A MediaTransport runs a whole download for each media request: below a Client, each hop
		// would be a second download (Range dropped, retries multiplied). Hops go where its own do.
		c.transport, c.ownTransport = mt.media, mt.ownMedia
	}
	if c.transport == nil {
		c.transport, c.ownTransport = NewTransport(), true
	}
	_, c.stdTransport = c.transport.(*http.Transport)
	c.baseHeader = c.makeHeader()
	c.publicHeader = c.makePublicHeader()
	return c, nil
}

// orDefault returns d for a zero duration, and v otherwise (negative values mean "none" to the
// options that allow them).
func orDefault(v, d time.Duration) time.Duration {
	if v == 0 {
		return d
	}
	return v
}

// NewTransport returns the transport a Client uses when Options.Transport is nil: sized for many
// parallel downloads (64 idle connections per host), speaking HTTP/1.1 (a connection per download in
// flight: measured against Go's HTTP/2 over TLS it moved a large file 2.3 times as fast and small
// files 1.7 times as fast, see BENCHMARKS.md), without transparent decompression (media is stored
// compressed or not, and its length must stay exact), and with a dialer that enforces the
// private-address guard on the address it connects to. Call Protocols.SetHTTP2(true) on the result
// to allow HTTP/2. Timeouts are the Client's (Options.ConnectTimeout and the others), not the
// transport's, so that they hold whatever transport is used.
func NewTransport() *http.Transport {
	t := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{KeepAlive: 30 * time.Second, ControlContext: guardControl}).DialContext,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true,
		Protocols:             new(http.Protocols),
	}
	t.Protocols.SetHTTP1(true)
	return t
}

// HomeserverURL returns the homeserver base URL the Client uses.
func (c *Client) HomeserverURL() string { return c.base.String() }

// CloseIdleConnections closes the idle connections of the Client's transport, when it has such a
// method (NewTransport's does). Connections in use are not interrupted.
func (c *Client) CloseIdleConnections() {
	if t, ok := c.transport.(interface{ CloseIdleConnections() }); ok {
		t.CloseIdleConnections()
	}
}

// logger returns the logger for a call.
func (c *Client) logger(ctx context.Context) *zerolog.Logger {
	l := zerolog.Ctx(ctx)
	if (l.GetLevel() == zerolog.Disabled || l == zerolog.DefaultContextLogger) && c.opts.Logger != nil {
		return c.opts.Logger
	}
	return l
}

// debugging reports whether debug lines of a call are logged: callers check it before building
// costly arguments.
func (c *Client) debugging(ctx context.Context) bool {
	return c.logger(ctx).GetLevel() <= zerolog.DebugLevel
}

func (c *Client) debug(ctx context.Context, msg string, kv ...any) {
	l := c.logger(ctx)
	if l.GetLevel() > zerolog.DebugLevel {
		return
	}
	l.Debug().Fields(kv).Msg(msg)
}

// api returns the endpoint family for a call.
func (c *Client) api(ctx context.Context) API {
	switch {
	case c.opts.API != APIAuto:
		return c.opts.API
	case c.opts.AccessToken == "" || c.learned.noV1.Load():
		return APIV3
	}
	v := c.serverVersions(ctx)
	if v != nil && (v.ContainsGreaterOrEqual(mautrix.SpecV111) || v.Supports(mautrix.FeatureAuthenticatedMedia)) {
		return APIV1
	}
	return APIV3
}
