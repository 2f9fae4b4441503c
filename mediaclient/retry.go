package mediaclient

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
	"net/textproto"
	"strconv"
	"time"

	"github.com/hashicorp/go-retryablehttp"
	"maunium.net/go/mautrix"
)

// checkRetry is the retry policy: connection errors, 429 and 5xx (but 501, 502 or 413 M_TOO_LARGE
// and 504 M_NOT_YET_UPLOADED) are retried; policy refusals, TLS verification failures and an ended
// context are final.
func (c *Client) checkRetry(ctx context.Context, resp *http.Response, err error) (bool, error) {
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	if err != nil {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || isFinal(err) {
			return false, nil
		}
		return true, nil
	}
	switch s := resp.StatusCode; {
	case s == http.StatusTooManyRequests:
		bufferBody(resp)
		return true, nil
	case s == http.StatusNotImplemented:
		return false, nil
	case s == http.StatusGatewayTimeout && errcode(resp) == MNotYetUploaded.ErrCode:
		return false, nil
	case s >= 500 && errcode(resp) == mautrix.MTooLarge.ErrCode:
		return false, nil // the homeserver's final word on the media's size (spec: 413 or 502)
	case s >= 500 || s == 0:
		bufferBody(resp)
		return true, nil
	}
	return false, nil
}

// isFinal reports whether err is one that asking again cannot mend: a refusal of the Client's own
// policy (a loop or too many redirects, a refused redirect or private address, an invalid argument
// or URI, a size over the limit, an answer the Client cannot use, a malformed multipart answer), a
// TLS verification failure or a malformed answer. The retry policy never retries it, and a
// MediaTransport marks it as final for the http.Client's caller (finalError, transport.go).
func isFinal(err error) bool {
	var certErr *tls.CertificateVerificationError
	var unknownAuthority x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var invalid x509.CertificateInvalidError
	var protocol textproto.ProtocolError
	switch {
	case errors.Is(err, ErrTooManyRedirects), errors.Is(err, ErrRedirectRefused), // ErrPrivateAddress too
		errors.Is(err, ErrInvalidArgument), errors.Is(err, ErrInvalidURI), errors.Is(err, ErrTooLarge),
		errors.Is(err, ErrUnexpectedStatus), errors.Is(err, ErrBadMultipart),
		errors.As(err, &certErr), errors.As(err, &unknownAuthority), errors.As(err, &hostErr), errors.As(err, &invalid),
		errors.As(err, &protocol): // a malformed answer will not mend itself
		return true
	}
	return false
}

// backoff waits what the server asked for (Retry-After, or retry_after_ms in a Matrix error body),
// capped at Options.MaxRetryAfter, and otherwise backs off exponentially.
func (c *Client) backoff(min, max time.Duration, attempt int, resp *http.Response) time.Duration {
	if resp != nil {
		if d, ok := serverWait(resp); ok {
			return clamp(d, 0, c.opts.MaxRetryAfter)
		}
	}
	return retryablehttp.DefaultBackoff(min, max, attempt, nil)
}

func clamp(d, lo, hi time.Duration) time.Duration {
	return max(lo, min(d, hi))
}

// serverWait reads the wait a 429 or 503 answer asks for.
func serverWait(resp *http.Response) (time.Duration, bool) {
	if resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode != http.StatusServiceUnavailable {
		return 0, false
	}
	if v := resp.Header.Get("Retry-After"); v != "" {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil && n >= 0 {
			return time.Duration(min(n, 1<<30)) * time.Second, true
		}
		if t, err := http.ParseTime(v); err == nil {
			return max(time.Until(t), 0), true
		}
	}
	if b, ok := resp.Body.(*bufferedBody); ok {
		if e := parseRespError(resp.StatusCode, b.data); e != nil {
			if ms, ok := e.ExtraData["retry_after_ms"].(float64); ok && ms >= 0 {
				return time.Duration(min(ms, 1<<40)) * time.Millisecond, true
			}
		}
	}
	return 0, false
}
