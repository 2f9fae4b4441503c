package mediaclient

// This file holds the Client, its options and the choice of endpoint family. The redirect loop is in
// redirect.go, the fallbacks in fallback.go, retries in retry.go and the streamed result in media.go.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-retryablehttp"
	"github.com/rs/zerolog"
	"maunium.net/go/mautrix"
)

// Version is the library's version, sent in the default User-Agent.
const Version = "0.1.0"

// Defaults for the zero values of Options.
const (
	DefaultMaxRedirects  = 5
	DefaultRetryMax      = 4
	DefaultRetryWaitMin  = 500 * time.Millisecond
	DefaultRetryWaitMax  = 10 * time.Second
	DefaultMaxRetryAfter = 60 * time.Second
	DefaultServerTimeout = 20 * time.Second
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
	// NoRedirectParam stops allow_redirect=true from being sent at all.
	NoRedirectParam bool
	// NoRedirectParamV1 stops allow_redirect=true from being sent on client v1, where the spec does
	// not define it (it is still sent on v3).
	NoRedirectParamV1 bool
	// MaxRedirects bounds the redirects followed: MaxRedirects succeed, one more fails with
	// ErrTooManyRedirects. 0 means DefaultMaxRedirects; a negative value follows none.
	MaxRedirects int
	// AllowInsecureRedirects allows a redirect from https to http. Credentials never follow it.
	AllowInsecureRedirects bool
	// AllowPrivateRedirects turns off the private-address guard: by default a redirect may not lead
	// from the homeserver's address class (public, private, loopback, link-local) to a loopback,
	// private, link-local or other special-purpose address of another class. The address is checked
	// when the connection is dialled by a transport from NewTransport; with another transport, or
	// through a proxy, the target's name is resolved and checked before the request.
	AllowPrivateRedirects bool
	// RetryMax is how many times a transient failure (connection error, 5xx but 501, 429) is retried.
	// 0 means DefaultRetryMax; a negative value means no retries.
	RetryMax int
	// RetryWaitMin and RetryWaitMax bound the exponential backoff between retries. Zero means
	// DefaultRetryWaitMin and DefaultRetryWaitMax.
	RetryWaitMin, RetryWaitMax time.Duration
	// MaxRetryAfter caps a wait the server asks for with Retry-After or retry_after_ms. 0 means
	// DefaultMaxRetryAfter.
	MaxRetryAfter time.Duration
	// MaxSize refuses media larger than this many bytes with ErrTooLarge. 0 means no limit.
	MaxSize int64
	// NoResume stops a body that breaks off from being resumed with a Range request.
	NoResume bool
	// RedirectCacheSize is how many 308 (permanent) redirect targets are remembered, per media item,
	// so that a repeated download skips the homeserver hop. 0 means DefaultRedirectCacheSize; a
	// negative value turns the cache off.
	RedirectCacheSize int
	// ServerTimeout is sent as timeout_ms: how long the server may wait for media that is not
	// uploaded yet. 0 means DefaultServerTimeout; a negative value sends no timeout_ms.
	ServerTimeout time.Duration
	// UploadWait is how long, in all, a download waits out 504 M_NOT_YET_UPLOADED by asking again.
	// 0 means the first such answer is returned as an error.
	UploadWait time.Duration
	// Header holds extra headers sent with every request. Those named in CredentialHeaders are sent
	// to the homeserver's origin only.
	Header http.Header
	// CredentialHeaders names more headers to treat as credentials, beside Authorization, Cookie and
	// Proxy-Authorization.
	CredentialHeaders []string
	// Transport performs single HTTP exchanges. nil means a transport like http.DefaultTransport with
	// a connection pool sized for parallel downloads (64 idle connections per host), HTTP/2 when TLS
	// offers it and no transparent decompression. Its own redirect handling, if any, is never used.
	Transport http.RoundTripper
	// Logger receives debug lines for decisions a caller cannot see (a redirect, a retry, a fallback),
	// without tokens or signed query strings. As in mautrix, a logger in the call's context
	// (zerolog.Ctx) comes first; nil here and none in the context logs nothing.
	Logger *zerolog.Logger
}

// Client downloads Matrix media. It is safe for concurrent use; every call shares one connection
// pool. Create it with New.
type Client struct {
	opts              Options
	base              *url.URL
	maxRedirects      int
	credentialHeaders []string
	transport         http.RoundTripper
	retry             *retryablehttp.Client
	state             *state
	ownTransport      bool                        // the transport is NewTransport's, made by New
	classify          func(netip.AddrPort) string // address classes, replaceable in tests
	cache             *redirectCache              // nil when off
}

// state is what the Client learns about its homeserver.
type state struct {
	paramRejected atomic.Bool  // the homeserver refuses allow_redirect
	noV1          atomic.Bool  // the homeserver lacks client v1 media
	homeClass     atomic.Value // string: the class of the homeserver's address

	versionsMu sync.Mutex
	versions   *mautrix.RespVersions // nil until fetched successfully
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
	if strings.ContainsAny(opts.AccessToken, "\r\n") {
		return fail("access token holds a line break")
	}
	if opts.MaxSize < 0 {
		return fail("negative size limit")
	}
	if opts.UploadWait < 0 || opts.RetryWaitMin < 0 || opts.RetryWaitMax < 0 || opts.MaxRetryAfter < 0 {
		return fail("negative duration")
	}
	if opts.UserAgent == "" {
		opts.UserAgent = "mxfetch/" + Version
	}
	if opts.RetryWaitMin == 0 {
		opts.RetryWaitMin = DefaultRetryWaitMin
	}
	if opts.RetryWaitMax == 0 {
		opts.RetryWaitMax = DefaultRetryWaitMax
	}
	if opts.MaxRetryAfter == 0 {
		opts.MaxRetryAfter = DefaultMaxRetryAfter
	}
	if opts.ServerTimeout == 0 {
		opts.ServerTimeout = DefaultServerTimeout
	}
	opts.Header = opts.Header.Clone()
	c := &Client{
		opts:              opts,
		base:              base,
		maxRedirects:      opts.MaxRedirects,
		credentialHeaders: []string{"Authorization", "Cookie", "Proxy-Authorization"},
		transport:         opts.Transport,
		state:             &state{},
		classify:          classify,
		cache:             newRedirectCache(opts.RedirectCacheSize),
	}
	for _, h := range opts.CredentialHeaders {
		c.credentialHeaders = append(c.credentialHeaders, http.CanonicalHeaderKey(h))
	}
	switch {
	case c.maxRedirects == 0:
		c.maxRedirects = DefaultMaxRedirects
	case c.maxRedirects < 0:
		c.maxRedirects = 0
	}
	if c.transport == nil {
		c.transport, c.ownTransport = NewTransport(), true
	}
	retryMax := opts.RetryMax
	switch {
	case retryMax == 0:
		retryMax = DefaultRetryMax
	case retryMax < 0:
		retryMax = 0
	}
	c.retry = &retryablehttp.Client{
		HTTPClient: &http.Client{
			Transport: chain{c},
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		},
		RetryWaitMin:   opts.RetryWaitMin,
		RetryWaitMax:   opts.RetryWaitMax,
		RetryMax:       retryMax,
		CheckRetry:     c.checkRetry,
		Backoff:        c.backoff,
		ErrorHandler:   retryablehttp.PassthroughErrorHandler,
		RequestLogHook: c.logAttempt,
	}
	return c, nil
}

// NewTransport returns the transport a Client uses when Options.Transport is nil: a clone of
// http.DefaultTransport sized for many parallel downloads (64 idle connections per host), speaking
// HTTP/1.1 (a connection per download in flight: measured against Go's HTTP/2 over TLS it moved a
// large file 2.3 times as fast and small files 1.7 times as fast, see BENCHMARKS.md), without
// transparent decompression (media is stored compressed or not, and its length must stay exact), and
// with a dialer that enforces the private-address guard on the address it connects to. Call
// Protocols.SetHTTP2(true) on the result to allow HTTP/2.
func NewTransport() *http.Transport {
	t := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second, ControlContext: guardControl}).DialContext,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true,
		Protocols:             new(http.Protocols),
	}
	t.Protocols.SetHTTP1(true)
	return t
}

// HomeserverURL returns the homeserver base URL the Client uses.
func (c *Client) HomeserverURL() string { return c.base.String() }

// logger returns the logger for a call.
func (c *Client) logger(ctx context.Context) *zerolog.Logger {
	l := zerolog.Ctx(ctx)
	if (l.GetLevel() == zerolog.Disabled || l == zerolog.DefaultContextLogger) && c.opts.Logger != nil {
		return c.opts.Logger
	}
	return l
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
	case c.opts.AccessToken == "" || c.state.noV1.Load():
		return APIV3
	}
	v := c.serverVersions(ctx)
	if v != nil && (v.ContainsGreaterOrEqual(mautrix.SpecV111) || v.Supports(mautrix.FeatureAuthenticatedMedia)) {
		return APIV1
	}
	return APIV3
}

// serverVersions fetches /_matrix/client/versions once; a failure is not remembered.
func (c *Client) serverVersions(ctx context.Context) *mautrix.RespVersions {
	s := c.state
	s.versionsMu.Lock()
	defer s.versionsMu.Unlock()
	if s.versions != nil {
		return s.versions
	}
	u := *c.base
	u.Path += "/_matrix/client/versions"
	u.RawPath = ""
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil
	}
	req.Header.Set("User-Agent", c.opts.UserAgent)
	resp, err := c.retry.Do(req)
	if err != nil {
		c.debug(ctx, "fetching /versions failed; using media v3", "error", err)
		return nil
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		c.debug(ctx, "fetching /versions failed; using media v3", "status", resp.StatusCode)
		return nil
	}
	var v mautrix.RespVersions
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&v); err != nil {
		return nil
	}
	s.versions = &v
	return &v
}

func withTrace(ctx context.Context) (context.Context, *trace) {
	tr := &trace{}
	return context.WithValue(ctx, traceKey{}, tr), tr
}
