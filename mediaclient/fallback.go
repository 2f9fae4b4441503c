package mediaclient

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
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
	// the whole media with the same validator, which is then skipped), 0 when it sent the media anew.
	Offset int64
	// IfRange is the validator (ETag or Last-Modified) of the partial copy: the server resumes only
	// if the media still has it. Without it a resumed body cannot be told from a changed one, so a
	// 200 answer counts as a new body.
	IfRange string
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
}

// maxThumbnailSide bounds the thumbnail size a caller may ask for.
const maxThumbnailSide = 1 << 16

// Download fetches a media item. At most one DownloadOptions may be given. The caller must Close the
// returned Media.
func (c *Client) Download(ctx context.Context, uri id.ContentURI, opts ...DownloadOptions) (*Media, error) {
	r, limit, err := c.downloadRequest(uri, opts)
	if err != nil {
		return nil, err
	}
	return c.fetch(ctx, r, limit)
}

// Thumbnail fetches a thumbnail of a media item. The caller must Close the returned Media.
func (c *Client) Thumbnail(ctx context.Context, uri id.ContentURI, opts ThumbnailOptions) (*Media, error) {
	r, limit, err := c.thumbnailRequest(uri, opts)
	if err != nil {
		return nil, err
	}
	return c.fetch(ctx, r, limit)
}

// DownloadURL returns the URL that Download would request first (with the endpoint family chosen as
// Download would choose it), for a browser or a player. It carries no access token; on client v1 the
// request needs one.
func (c *Client) DownloadURL(ctx context.Context, uri id.ContentURI, opts ...DownloadOptions) (string, error) {
	r, _, err := c.downloadRequest(uri, opts)
	if err != nil {
		return "", err
	}
	api := c.api(ctx)
	return c.buildURL(r, api, c.sendParam(api), c.timeoutMS(time.Time{})).String(), nil
}

// ThumbnailURL returns the URL that Thumbnail would request first.
func (c *Client) ThumbnailURL(ctx context.Context, uri id.ContentURI, opts ThumbnailOptions) (string, error) {
	r, _, err := c.thumbnailRequest(uri, opts)
	if err != nil {
		return "", err
	}
	api := c.api(ctx)
	return c.buildURL(r, api, c.sendParam(api), c.timeoutMS(time.Time{})).String(), nil
}

func (c *Client) downloadRequest(uri id.ContentURI, opts []DownloadOptions) (*request, int64, error) {
	r := &request{uri: uri}
	fail := func(err error) (*request, int64, error) {
		return nil, 0, &Error{Op: "download", URI: uri.String(), Err: err}
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
	r.fileName, r.offset, r.ifRange = o.FileName, o.Offset, o.IfRange
	return r, c.limit(o.MaxSize), nil
}

func (c *Client) thumbnailRequest(uri id.ContentURI, o ThumbnailOptions) (*request, int64, error) {
	fail := func(err error) (*request, int64, error) {
		return nil, 0, &Error{Op: "thumbnail", URI: uri.String(), Err: err}
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
	return &request{uri: uri, thumbnail: &o}, c.limit(o.MaxSize), nil
}

func (c *Client) limit(override int64) int64 {
	if override > 0 {
		return override
	}
	return c.opts.MaxSize
}

// sendParam reports whether allow_redirect=true goes on a request to the given family.
func (c *Client) sendParam(api API) bool {
	switch {
	case c.opts.NoRedirectParam, c.state.paramRejected.Load():
		return false
	case api == APIV1:
		return !c.opts.NoRedirectParamV1
	}
	return true
}

// timeoutMS is the timeout_ms to send, bounded by the upload-wait deadline when there is one.
func (c *Client) timeoutMS(deadline time.Time) int64 {
	if c.opts.ServerTimeout < 0 {
		return 0
	}
	d := c.opts.ServerTimeout
	if !deadline.IsZero() {
		d = min(d, max(time.Until(deadline), time.Millisecond))
	}
	return max(d.Milliseconds(), 1)
}

// rejectsParam reports whether an answer is a homeserver refusing allow_redirect.
func rejectsParam(status int, code string) bool {
	return status == http.StatusBadRequest && (code == "M_INVALID_PARAM" || code == "M_UNKNOWN" || code == "M_UNRECOGNIZED")
}

// fetch runs a request with its fallbacks:
//   - v1 answered 404/405 M_UNRECOGNIZED (APIAuto only): v3, remembered for the homeserver;
//   - the homeserver rejected allow_redirect: the same request once without it, remembered when the
//     request without it is not rejected in the same way;
//   - a redirect refused by policy on v3: a plain request without allow_redirect;
//   - 504 M_NOT_YET_UPLOADED: asked again until Options.UploadWait has passed.
func (c *Client) fetch(ctx context.Context, r *request, limit int64) (*Media, error) {
	api := c.api(ctx) // before the trace: /versions is not a hop of this download
	ctx, tr := withTrace(ctx)
	fail := func(err error) (*Media, error) {
		return nil, &Error{Op: r.op(), URI: r.uri.String(), Err: err, Hops: tr.hops}
	}
	param := c.sendParam(api)
	var fallbacks []string
	var deadline time.Time
	if c.opts.UploadWait > 0 {
		deadline = time.Now().Add(c.opts.UploadWait)
	}
	home := originOf(c.base)
	probing := false // allow_redirect was just dropped after a rejection
	for {
		u := c.buildURL(r, api, param, c.timeoutMS(deadline))
		req, err := retryablehttp.NewRequestWithContext(withCacheKey(ctx, string(api)+" "+u.String()), http.MethodGet, u.String(), nil)
		if err != nil {
			return fail(err)
		}
		c.setHeaders(req.Header)
		if r.offset > 0 {
			req.Header.Set("Range", "bytes="+strconv.FormatInt(r.offset, 10)+"-")
			if r.ifRange != "" {
				req.Header.Set("If-Range", r.ifRange)
			}
		}
		resp, err := c.retry.Do(req)
		if err != nil {
			var ue *url.Error
			if errors.As(err, &ue) {
				err = ue.Err
			}
			if errors.Is(err, ErrRedirectRefused) && api == APIV3 && param {
				c.debug(ctx, "redirect refused; asking for the bytes directly", "error", err)
				param = false
				fallbacks = append(fallbacks, "redirect refused")
				continue
			}
			return fail(err)
		}
		status := resp.StatusCode
		if status >= 200 && status < 300 {
			if probing {
				c.state.paramRejected.Store(true)
			}
			if limit > 0 && resp.ContentLength > limit {
				resp.Body.Close()
				return fail(fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, resp.ContentLength, limit))
			}
			m := newMedia(r, resp, limit)
			m.Hops, m.API, m.Fallback = tr.hops, api, strings.Join(fallbacks, "; ")
			if r.offset > 0 {
				if err := m.seekStart(r); err != nil {
					resp.Body.Close()
					return fail(err)
				}
			}
			if !c.opts.NoResume {
				m.resume = newResumer(ctx, c, r, resp.Header)
			}
			return m, nil
		}
		code := errcode(resp)
		fromHome := tr.final == home
		if probing && !rejectsParam(status, code) {
			c.state.paramRejected.Store(true)
		}
		switch {
		case api == APIV1 && c.opts.API == APIAuto && fromHome && (status == http.StatusNotFound || status == http.StatusMethodNotAllowed) && code == "M_UNRECOGNIZED":
			c.debug(ctx, "client v1 media unrecognized; using media v3")
			c.state.noV1.Store(true)
			api, param = APIV3, c.sendParam(APIV3)
			fallbacks = append(fallbacks, "v1 unrecognized")
			continue
		case param && fromHome && rejectsParam(status, code):
			c.debug(ctx, "allow_redirect rejected; asking again without it", "errcode", code)
			param, probing = false, true
			fallbacks = append(fallbacks, "parameter rejected")
			continue
		case status == http.StatusGatewayTimeout && code == MNotYetUploaded.ErrCode && time.Now().Before(deadline):
			if err := sleep(ctx, min(time.Second, time.Until(deadline))); err != nil {
				return fail(err)
			}
			continue
		}
		herr := httpError(resp)
		if status >= 300 && status < 400 {
			return fail(fmt.Errorf("%w %d: %w", ErrUnexpectedStatus, status, herr))
		}
		return fail(herr)
	}
}

func (c *Client) setHeaders(h http.Header) {
	for k, v := range c.opts.Header {
		h[k] = append([]string(nil), v...)
	}
	h.Set("User-Agent", c.opts.UserAgent)
	if c.opts.AccessToken != "" {
		h.Set("Authorization", "Bearer "+c.opts.AccessToken)
	}
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
