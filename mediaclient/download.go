package mediaclient

// This file holds the public download methods and the download: one object per call that owns
// everything about that call — the endpoint family and parameter decision, the fallbacks taken, the
// hops, the cache key, the deadline — and runs the fallback loop around go-retryablehttp. The
// redirect chain (one request per hop) is its RoundTrip, in chain.go; the resuming body is in
// resume.go; the decisions themselves are in fallback.go.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-retryablehttp"
	"maunium.net/go/mautrix/id"
)

// DownloadOptions are the optional arguments of Download.
type DownloadOptions struct {
	// FileName asks the server to name the file: the /{fileName} form of the download endpoint.
	FileName string
	// MaxSize overrides Options.MaxSize for this call when non-zero.
	MaxSize int64
	// Offset asks for the media from this byte on (a Range request), to finish a partial copy.
	// Media.Offset says where the body really starts: Offset when the server resumed there (or sent
	// the whole media with the IfRange validator, which is then skipped), 0 when it sent the media
	// anew.
	Offset int64
	// IfRange is the validator (ETag or Last-Modified) of the partial copy: the server resumes only
	// if the media still has it. Without it, a 206 that starts at Offset is taken (the bytes behind an
	// mxc URI never change), and a 200 counts as the whole media anew.
	IfRange string
	// Query holds extra query parameters for the homeserver request. timeout_ms is the Client's to
	// set and is ignored here, and so is allow_redirect but for "false": a caller that asks the
	// homeserver not to redirect (a CDN it cannot reach, say) has allow_redirect=false sent as
	// asked, and the Client never sends allow_redirect=true for that call.
	Query url.Values
}

// ThumbnailOptions are the arguments of Thumbnail.
type ThumbnailOptions struct {
	// Width and Height are the desired size in pixels; both must be positive.
	Width, Height int
	// Method is "crop", "scale" or "" (none sent).
	Method string
	// Animated asks for an animated thumbnail (spec v1.11).
	Animated bool
	// MaxSize overrides Options.MaxSize for this call when non-zero.
	MaxSize int64
	// Query holds extra query parameters, as in DownloadOptions.
	Query url.Values
}

// maxThumbnailSide bounds the thumbnail size a caller may ask for.
const maxThumbnailSide = 1 << 16

// Download fetches a media item. At most one DownloadOptions may be given. The caller must Close the
// returned Media.
func (c *Client) Download(ctx context.Context, uri id.ContentURI, opts ...DownloadOptions) (*Media, error) {
	r, err := c.downloadRequest(uri, opts)
	if err != nil {
		return nil, err
	}
	return c.start(ctx, r)
}

// Thumbnail fetches a thumbnail of a media item. The caller must Close the returned Media.
func (c *Client) Thumbnail(ctx context.Context, uri id.ContentURI, opts ThumbnailOptions) (*Media, error) {
	r, err := c.thumbnailRequest(uri, opts)
	if err != nil {
		return nil, err
	}
	return c.start(ctx, r)
}

// DownloadURL returns the URL that Download would request first (with the endpoint family chosen as
// Download would choose it), for a browser or a player. It carries no access token; on client v1 the
// request needs one.
func (c *Client) DownloadURL(ctx context.Context, uri id.ContentURI, opts ...DownloadOptions) (string, error) {
	r, err := c.downloadRequest(uri, opts)
	if err != nil {
		return "", err
	}
	api := c.api(ctx)
	return c.buildURL(r, api, c.sendParam(r, api), c.timeoutMS(time.Time{})).String(), nil
}

// ThumbnailURL returns the URL that Thumbnail would request first.
func (c *Client) ThumbnailURL(ctx context.Context, uri id.ContentURI, opts ThumbnailOptions) (string, error) {
	r, err := c.thumbnailRequest(uri, opts)
	if err != nil {
		return "", err
	}
	api := c.api(ctx)
	return c.buildURL(r, api, c.sendParam(r, api), c.timeoutMS(time.Time{})).String(), nil
}

func (c *Client) downloadRequest(uri id.ContentURI, opts []DownloadOptions) (*request, error) {
	fail := func(err error) (*request, error) {
		return nil, &Error{Op: "download", URI: uri.String(), Err: err}
	}
	if len(opts) > 1 {
		return fail(fmt.Errorf("%w: more than one DownloadOptions", ErrInvalidArgument))
	}
	var o DownloadOptions
	if len(opts) == 1 {
		o = opts[0]
	}
	if err := ValidateURI(uri); err != nil {
		return fail(err)
	}
	if o.FileName == "." || o.FileName == ".." || strings.ContainsAny(o.FileName, "/\x00") {
		return fail(fmt.Errorf("%w: file name %q", ErrInvalidArgument, o.FileName))
	}
	if o.MaxSize < 0 {
		return fail(fmt.Errorf("%w: negative size limit", ErrInvalidArgument))
	}
	if o.Offset < 0 {
		return fail(fmt.Errorf("%w: negative offset", ErrInvalidArgument))
	}
	if strings.ContainsAny(o.IfRange, "\r\n") {
		return fail(fmt.Errorf("%w: If-Range holds a line break", ErrInvalidArgument))
	}
	return &request{uri: uri, fileName: o.FileName, query: c.withQuery(o.Query), noParam: callerNoParam(o.Query), offset: o.Offset, ifRange: o.IfRange, limit: c.limit(o.MaxSize)}, nil
}

func (c *Client) thumbnailRequest(uri id.ContentURI, o ThumbnailOptions) (*request, error) {
	fail := func(err error) (*request, error) {
		return nil, &Error{Op: "thumbnail", URI: uri.String(), Err: err}
	}
	if err := ValidateURI(uri); err != nil {
		return fail(err)
	}
	if o.Width <= 0 || o.Height <= 0 || o.Width > maxThumbnailSide || o.Height > maxThumbnailSide {
		return fail(fmt.Errorf("%w: thumbnail size %dx%d", ErrInvalidArgument, o.Width, o.Height))
	}
	if o.Method != "" && o.Method != "crop" && o.Method != "scale" {
		return fail(fmt.Errorf("%w: thumbnail method %q (want crop or scale)", ErrInvalidArgument, o.Method))
	}
	if o.MaxSize < 0 {
		return fail(fmt.Errorf("%w: negative size limit", ErrInvalidArgument))
	}
	return &request{uri: uri, thumbnail: &o, query: c.withQuery(o.Query), noParam: callerNoParam(o.Query), limit: c.limit(o.MaxSize)}, nil
}

func (c *Client) limit(override int64) int64 {
	if override > 0 {
		return override
	}
	return c.opts.MaxSize
}

// download is one call: it owns every piece of that call's state. Nothing of it is shared with other
// calls; the Client it points to is read-only but for what it learns about the homeserver.
type download struct {
	c      *Client
	r      *request
	ctx    context.Context // the call's context, bounded by Options.Timeout; the body reads under it
	cancel context.CancelFunc

	// The plan, and how it changed.
	api       API
	param     bool // allow_redirect=true is sent
	probing   bool // the parameter was just dropped after a rejection
	fallbacks []Fallback

	// The request on its way.
	home       origin        // the origin credentials may go to: the homeserver's (or the remote server's)
	rules      chainRules    // how the chain treats its hops
	baseHeader bool          // the request's headers are the Client's own (header), unchanged
	cacheKey   string        // key of the 308 cache for the current request ("": not cached), or
	keyURL     *url.URL      // the request's first URL, while its key is not made (redirectKey)
	serverWait time.Duration // the timeout_ms the homeserver was given
	step       Step          // why the next request goes out
	attempt    int           // which try of the chain is running (0 the first)
	from       int64         // where in the media the request on its way asks from
	failed     Retry         // why the last try failed, when it is retried

	// What happened.
	hopsMu      sync.Mutex // hops may be read (Media.Hops) while a Read resumes the body
	hops        []Hop
	trace       *Trace // the caller's hooks, or nil
	final       origin // the origin of the last response
	fromHome    bool   // the last response came from the homeserver's origin, before the chain left it
	disposition string // the file name a redirect answer gave, if any

	// homeCookies are the Set-Cookie lines of a final error answer from the homeserver's origin.
	homeCookies []string

	fed *fedCall // the federation plan; nil for a client download (federation.go)

	retry *retryablehttp.Client // &retryClient
	// The download's go-retryablehttp client and its http.Client, and the timer of its hops, are
	// part of it: no allocation of their own.
	retryClient retryablehttp.Client
	httpClient  http.Client
	timer       hopTimer
}

// newDownload returns a download for r. Its context is ctx bounded by Options.Timeout; the caller
// must call d.cancel when done with it.
func (c *Client) newDownload(ctx context.Context, r *request) *download {
	d := &download{c: c, r: r, step: StepRequest, trace: traceFrom(ctx), home: c.home, rules: c.chainRules(), hops: make([]Hop, 0, 2)}
	if c.opts.Timeout > 0 {
		d.ctx, d.cancel = context.WithTimeout(ctx, c.opts.Timeout)
	} else {
		d.ctx, d.cancel = context.WithCancel(ctx)
	}
	d.httpClient = http.Client{Transport: d, CheckRedirect: noRedirects}
	d.retryClient = retryablehttp.Client{
		HTTPClient:     &d.httpClient,
		RetryWaitMin:   c.opts.RetryWaitMin,
		RetryWaitMax:   c.opts.RetryWaitMax,
		RetryMax:       c.maxRetries,
		CheckRetry:     d.checkRetry,
		Backoff:        d.backoff,
		ErrorHandler:   retryablehttp.PassthroughErrorHandler,
		RequestLogHook: d.logAttempt,
	}
	d.retry = &d.retryClient
	return d
}

// noRedirects leaves redirects to the chain.
func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// redirectKey returns the key of the 308 cache for the current request, "" when it is not cached.
// It is made when first needed: a Client whose cache is empty makes none.
func (d *download) redirectKey() string {
	if d.keyURL != nil {
		d.cacheKey = string(d.api) + " " + d.keyURL.String() + d.r.scope
		d.keyURL = nil
	}
	return d.cacheKey
}

// start runs a call up to its first successful answer and returns the Media that streams it.
func (c *Client) start(ctx context.Context, r *request) (*Media, error) {
	return c.plan(ctx, r).open()
}

// plan returns the download for r with its endpoint family and parameter chosen. The caller must
// open it, or call its cancel.
func (c *Client) plan(ctx context.Context, r *request) *download {
	d := c.newDownload(ctx, r)
	api := r.api
	if api == "" {
		api = c.api(d.ctx) // within the call's deadline; /versions is not a hop of the download
	}
	d.api, d.param = api, c.sendParam(r, api)
	return d
}

// open runs a download up to its first successful answer and returns the Media that streams it; on
// failure it releases the download and returns the call's *Error.
func (d *download) open() (*Media, error) {
	resp, err := d.do(d.r.offset, d.r.ifRange)
	if err == nil {
		var m *Media
		if m, err = newMedia(d, resp); err == nil {
			return m, nil
		}
	}
	d.cancel()
	return nil, d.fail(err)
}

// fail wraps a cause in the call's *Error.
func (d *download) fail(err error) error {
	if ctx := d.ctx; ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		err = context.Cause(ctx)
		if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("%w: %w", ctx.Err(), err)
		}
	}
	return &Error{Op: d.r.op(), URI: d.r.uri.String(), Err: err, Hops: d.hopsCopy()}
}

func (d *download) hopsCopy() []Hop {
	d.hopsMu.Lock()
	defer d.hopsMu.Unlock()
	if len(d.hops) == 0 {
		return nil
	}
	return append([]Hop(nil), d.hops...)
}

// addHop records a hop and tells the caller's trace.
func (d *download) addHop(h Hop) {
	d.hopsMu.Lock()
	d.hops = append(d.hops, h)
	d.hopsMu.Unlock()
	if d.trace != nil && d.trace.Hop != nil {
		d.trace.Hop(h)
	}
}

// do asks for the media from offset on (a Range request when offset > 0, with If-Range when
// ifRange is set) and runs the fallbacks until an answer of 2xx or a final error:
//   - v1 answered 404/405 M_UNRECOGNIZED (APIAuto only): v3, remembered for the homeserver;
//   - the homeserver rejected allow_redirect: the same request once without it, remembered when the
//     request without it is not rejected in the same way;
//   - a redirect refused by policy on v3: a plain request without allow_redirect;
//   - the redirect target refused or kept failing on v3: a plain request without allow_redirect,
//     which the spec obliges the homeserver to answer with the bytes;
//   - 504 M_NOT_YET_UPLOADED: asked again until Options.UploadWait has passed.
//
// A federation download runs its own plan instead (fedDo, in federation.go).
//
// The error it returns is the bare cause; callers wrap it.
func (d *download) do(offset int64, ifRange string) (*http.Response, error) {
	if d.fed != nil {
		return d.fedDo(offset, ifRange)
	}
	c := d.c
	configured := c.opts.API
	if d.r.api != "" {
		configured = d.r.api // a family fixed by the caller never falls back
	}
	var deadline time.Time
	if c.opts.UploadWait > 0 {
		deadline = time.Now().Add(c.opts.UploadWait)
	}
	for {
		ms := c.timeoutMS(deadline)
		d.serverWait = time.Duration(ms) * time.Millisecond
		target := c.buildURL(d.r, d.api, d.param, ms)
		var h http.Header
		if d.r.header != nil {
			h = d.r.header.Clone()
		} else {
			h = c.header()
		}
		d.baseHeader = d.r.header == nil && offset <= 0
		if offset > 0 {
			h.Set("Range", "bytes="+strconv.FormatInt(offset, 10)+"-")
			if ifRange != "" {
				h.Set("If-Range", ifRange)
			}
		}
		d.cacheKey, d.keyURL = "", target
		d.from = offset
		resp, err := d.sendURL(d.ctx, target, h)
		if err != nil {
			switch {
			case refusedRedirectFallback(d.api, d.param, err):
				d.fallback(FallbackRedirectRefused, err)
				d.param = false
				continue
			case unreachableTargetFallback(d.api, d.param, d.fromHome, err) && d.ctx.Err() == nil:
				d.fallback(FallbackTargetRefused, err)
				d.param = false
				continue
			}
			return nil, err
		}
		status := resp.StatusCode
		if isMedia(status) {
			if d.probing && d.r.thumbnail == nil {
				c.learned.paramRejected.Store(true)
			}
			d.probing = false
			return resp, nil
		}
		code := errcode(resp)
		fromHome := d.fromHome // only the homeserver's own answer speaks for it, not a target's
		if d.probing && !rejectsParam(status, code) && fromHome && d.r.thumbnail == nil {
			// Rejected with the parameter, not without it: the homeserver refuses the parameter.
			// A thumbnail's 400 M_UNKNOWN may mean a bad thumbnail request (or a passing fault)
			// instead, so thumbnails drop the parameter for their own call only.
			c.learned.paramRejected.Store(true)
		}
		d.probing = false
		switch next := decide(d.api, configured, d.param, fromHome, status, code); {
		case next == FallbackV1Unrecognized:
			c.learned.noV1.Store(true)
			d.api, d.param = APIV3, c.sendParam(d.r, APIV3)
			d.fallback(next, nil)
			drain(resp)
			continue
		case next == FallbackParamRejected:
			d.param, d.probing = false, true
			d.fallback(next, nil)
			drain(resp)
			continue
		case next == FallbackTargetRefused:
			d.param = false
			d.fallback(next, fmt.Errorf("%s answered %d", d.final, status))
			drain(resp)
			continue
		case status == http.StatusGatewayTimeout && code == MNotYetUploaded.ErrCode && time.Now().Before(deadline):
			drain(resp)
			// The server held the request for timeout_ms already: ask again soon, never later
			// than the deadline.
			if err := sleep(d.ctx, min(time.Second, max(c.opts.ServerUploadWait, 10*time.Millisecond), time.Until(deadline))); err != nil {
				return nil, err
			}
			continue
		}
		if fromHome {
			d.homeCookies = resp.Header.Values("Set-Cookie")
		}
		var final error = c.httpError(resp)
		if status < 300 || (status >= 300 && status < 400) {
			final = fmt.Errorf("%w %d: %w", ErrUnexpectedStatus, status, final)
		}
		if !fromHome {
			final = fmt.Errorf("redirect target %s: %w", d.final, final)
		}
		return nil, final
	}
}

// fallback records a step back from the plan.
func (d *download) fallback(f Fallback, cause error) {
	d.fallbacks = append(d.fallbacks, f)
	d.step = StepFallback
	if cause != nil {
		d.c.debug(d.ctx, "falling back", "fallback", string(f), "cause", cause.Error())
	} else {
		d.c.debug(d.ctx, "falling back", "fallback", string(f))
	}
}

// send runs one request, with retries, through the redirect chain. The error it returns is the
// bare cause.
func (d *download) send(u string, h http.Header) (*http.Response, error) {
	return d.sendContext(d.ctx, u, h)
}

// sendContext is send with a context derived from the download's (carrying a value for the
// transport, say).
func (d *download) sendContext(ctx context.Context, u string, h http.Header) (*http.Response, error) {
	req, err := retryablehttp.NewRequestWithContext(ctx, d.method(), u, nil)
	if err != nil {
		return nil, err
	}
	return d.sendRequest(req, h)
}

// sendURL is sendContext with the URL as built, not its text, which would only be parsed back into
// the same URL.
func (d *download) sendURL(ctx context.Context, u *url.URL, h http.Header) (*http.Response, error) {
	hreq, err := http.NewRequestWithContext(ctx, d.method(), "", nil)
	if err != nil {
		return nil, err
	}
	hreq.URL = u
	req, err := retryablehttp.FromRequest(hreq)
	if err != nil {
		return nil, err
	}
	return d.sendRequest(req, h)
}

// method is the method of the download's requests: GET, or the caller's (HEAD through a
// MediaTransport).
func (d *download) method() string {
	if d.r.method != "" {
		return d.r.method
	}
	return http.MethodGet
}

func (d *download) sendRequest(req *retryablehttp.Request, h http.Header) (*http.Response, error) {
	if h != nil {
		req.Header = h
	}
	d.attempt = 0
	resp, err := d.retry.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, err
	}
	return resp, nil
}

// checkRetry is the Client's retry policy; it notes why a try that is retried failed, for the trace.
func (d *download) checkRetry(ctx context.Context, resp *http.Response, err error) (bool, error) {
	retry, cerr := d.c.checkRetry(ctx, resp, err)
	if retry {
		d.failed = Retry{Step: StepRetry, Offset: d.from}
		if resp != nil {
			d.failed.Status = resp.StatusCode
		} else {
			var ue *url.Error
			if errors.As(err, &ue) {
				err = ue.Err
			}
			d.failed.Err = err
		}
	}
	return retry, cerr
}

// backoff is the Client's backoff; go-retryablehttp calls it only when a retry follows, which the
// trace then hears of.
func (d *download) backoff(min, max time.Duration, attempt int, resp *http.Response) time.Duration {
	wait := d.c.backoff(min, max, attempt, resp)
	if d.trace != nil && d.trace.Retry != nil {
		r := d.failed
		r.Attempt, r.Wait = attempt+1, wait
		d.trace.Retry(r)
	}
	return wait
}

// logAttempt is go-retryablehttp's hook before each attempt: it tells the chain which try it runs.
func (d *download) logAttempt(_ retryablehttp.Logger, req *http.Request, attempt int) {
	d.attempt = attempt
	if attempt > 0 && d.c.debugging(req.Context()) {
		d.c.debug(req.Context(), "retrying", "attempt", attempt, "url", redactURL(req.URL))
	}
}

// header returns the headers of a request to the homeserver: the caller's, the user agent and the
// token.
func (c *Client) header() http.Header { return c.baseHeader.Clone() }

// makePublicHeader is what of the homeserver's headers goes to other origins: no credential, no
// Referer. Hops share it, read only.
func (c *Client) makePublicHeader() http.Header {
	h := c.baseHeader.Clone()
	delete(h, "Referer")
	for _, k := range c.credentialHeaders {
		delete(h, k)
	}
	return h
}

// makeHeader builds the headers every request to the homeserver starts from (header clones them).
func (c *Client) makeHeader() http.Header {
	h := make(http.Header, len(c.opts.Header)+2)
	for k, v := range c.opts.Header {
		h[k] = append([]string(nil), v...)
	}
	h.Set("User-Agent", c.opts.UserAgent)
	if c.opts.AccessToken != "" {
		h.Set("Authorization", "Bearer "+c.opts.AccessToken)
	}
	return h
}

// sendParam reports whether allow_redirect=true goes on a request for r to the given family.
func (c *Client) sendParam(r *request, api API) bool {
	switch {
	case r.noParam, c.opts.DisableRedirectParam, c.learned.paramRejected.Load():
		return false
	case api == APIV1:
		return !c.opts.DisableRedirectParamV1
	}
	return true
}

// timeoutMS is the timeout_ms to send, bounded by the upload-wait deadline when there is one.
func (c *Client) timeoutMS(deadline time.Time) int64 {
	if c.opts.ServerUploadWait < 0 {
		return 0
	}
	d := c.opts.ServerUploadWait
	if !deadline.IsZero() {
		d = min(d, max(time.Until(deadline), time.Millisecond))
	}
	return max(d.Milliseconds(), 1)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
