package mediaclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"

	"maunium.net/go/mautrix"
)

// contextFree is the context of redacted requests kept in errors: not the call's, which may hold
// values a caller would not expect to outlive it.
var contextFree = context.Background()

// All errors returned by Client methods, and by reads from a Media body, are *Error values. Their
// causes stay reachable with errors.Is and errors.As:
//
//   - the sentinels below for the outcomes of the client's own policy;
//   - mautrix.RespError values (mautrix.MNotFound, mautrix.MLimitExceeded, MNotYetUploaded, …) for
//     Matrix error answers, and a mautrix.HTTPError value (match it with errors.As into a
//     mautrix.HTTPError, not a pointer) for every non-success HTTP answer;
//   - context.Canceled and context.DeadlineExceeded when the context ended;
//   - network errors as the standard library returns them.
//
// The sentinels' texts carry no "mediaclient:" prefix: they reach a caller inside an *Error, whose
// text has it once.
var (
	// ErrTooManyRedirects: the chain was longer than Options.MaxRedirects (a loop ends here too).
	// It is never retried.
	ErrTooManyRedirects = errors.New("too many redirects")
	// ErrRedirectRefused: a redirect broke the policy (bad Location, scheme, userinfo, https→http).
	// The *RedirectError that wraps it says why. It is never retried.
	ErrRedirectRefused = errors.New("redirect refused")
	// ErrTruncated: the body ended before the media's length, and resuming it did not help.
	ErrTruncated = errors.New("truncated body")
	// ErrStalled: no response headers within Options.HeaderTimeout, no body bytes within
	// Options.StallTimeout, or no connection within Options.ConnectTimeout. A stall is a transient
	// fault: it is retried or resumed first, and returned only when that did not help.
	ErrStalled = errors.New("stalled")
	// ErrTooSlow: the body arrived more slowly than Options.LowSpeedLimit for Options.LowSpeedTime
	// (and resuming did not help).
	ErrTooSlow = errors.New("transfer too slow")
	// ErrChanged: the media is not the one whose bytes were already delivered (its validator or its
	// total length differs). Bytes of two versions are never mixed.
	ErrChanged = errors.New("media changed while resuming")
	// ErrRangeMismatch: an answer to a range request does not fit what was asked for: a 206 that
	// starts elsewhere, overruns the total, or whose lengths disagree. Its bytes are never used.
	ErrRangeMismatch = errors.New("range answer does not fit")
	// ErrTooLarge: the media is larger than the size limit.
	ErrTooLarge = errors.New("media too large")
	// ErrInvalidURI: the content URI is not a valid mxc:// URI.
	ErrInvalidURI = errors.New("invalid content URI")
	// ErrInvalidArgument: an option or argument is out of range.
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrUnexpectedStatus: the server answered with a status the client cannot use (such as 300,
	// 304, or 206 to a request without Range). The mautrix.HTTPError in the chain has the response.
	ErrUnexpectedStatus = errors.New("unexpected status")
	// ErrBadMultipart: a federation media answer is not the multipart/mixed the spec describes (no
	// or an invalid boundary, a metadata part that is not a JSON object or is longer than 64 KiB, no
	// media part). It is never retried.
	ErrBadMultipart = errors.New("malformed multipart answer")
)

// MNotYetUploaded is the Matrix error for media that was created but whose bytes have not arrived
// (spec v1.7, asynchronous uploads). Match it with errors.Is.
var MNotYetUploaded = mautrix.RespError{ErrCode: "M_NOT_YET_UPLOADED", StatusCode: http.StatusGatewayTimeout}

// Error is the error type of every Client method.
type Error struct {
	// Op is the operation: "download", "thumbnail" or "new" (reads from a Media name their call).
	Op string
	// URI is the content URI the operation was for ("" for "new").
	URI string
	// Err is the cause.
	Err error
	// Hops lists the responses received before the failure, if any.
	Hops []Hop
}

func (e *Error) Error() string {
	if e.URI == "" {
		return "mediaclient: " + e.Op + ": " + e.Err.Error()
	}
	return "mediaclient: " + e.Op + " " + e.URI + ": " + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// RedirectError says why a redirect was refused. It matches ErrRedirectRefused with errors.Is.
type RedirectError struct {
	// Reason is a short lower-case explanation, e.g. "https to http downgrade".
	Reason string
	// Location is the refused target with its query and userinfo removed, when it could be parsed.
	Location string
}

func (e *RedirectError) Error() string {
	if e.Location == "" {
		return "redirect refused: " + e.Reason
	}
	return "redirect refused: " + e.Reason + " (" + e.Location + ")"
}

// Is makes errors.Is(err, ErrRedirectRefused) true.
func (e *RedirectError) Is(target error) bool { return target == ErrRedirectRefused }

// maxErrorBody bounds how much of an error answer is read.
const maxErrorBody = 64 << 10

// bufferedBody is a response body read into memory (error answers only), so that the retry policy,
// the backoff and the error builder can all look at it.
type bufferedBody struct {
	*bytes.Reader
	data []byte
}

func (b *bufferedBody) Close() error { return nil }

// bufferBody reads a (small) error body into memory once and puts it back on the response.
func bufferBody(resp *http.Response) []byte {
	if b, ok := resp.Body.(*bufferedBody); ok {
		return b.data
	}
	data, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	resp.Body.Close()
	resp.Body = &bufferedBody{Reader: bytes.NewReader(data), data: data}
	return data
}

// parseRespError parses a Matrix error body whatever its Content-Type (some servers label JSON
// errors text/plain). It returns nil when the body has no errcode.
func parseRespError(status int, body []byte) *mautrix.RespError {
	var e mautrix.RespError
	if len(body) == 0 || body[0] != '{' || json.Unmarshal(body, &e) != nil || e.ErrCode == "" {
		return nil
	}
	e.StatusCode = status
	return &e
}

// httpError turns a non-success response into a mautrix.HTTPError value and closes its body. The
// response it keeps is a copy whose request has no credential header and a URL without its query (a
// CDN's signed URL carries its signature there), so that the error can be logged whole.
func (c *Client) httpError(resp *http.Response) mautrix.HTTPError {
	body := bufferBody(resp)
	safe := *resp
	safe.Body = http.NoBody
	safe.Request = c.redactRequest(resp.Request)
	safe.Header = redactHeader(resp.Header)
	e := mautrix.HTTPError{
		Request:      safe.Request,
		Response:     &safe,
		ResponseBody: string(body),
		RespError:    parseRespError(resp.StatusCode, body),
	}
	if e.RespError == nil {
		// A CDN's own error body (S3 XML, say) may echo the signed request: keep it out of the
		// error text, which then reads "HTTP 403".
		e.ResponseBody = ""
	}
	return e
}

// redactHeader returns a copy of an answer's header without what may carry a secret: a Location
// (a signed URL, for an unfollowed redirect) loses its query, and cookies the server set are dropped.
func redactHeader(h http.Header) http.Header {
	h = h.Clone()
	for _, k := range []string{"Location", "Content-Location"} {
		for i, v := range h[k] {
			if u, err := url.Parse(v); err == nil {
				h[k][i] = (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path, RawPath: u.RawPath}).String()
			} else {
				h[k][i] = "…"
			}
		}
	}
	delete(h, "Set-Cookie")
	return h
}

// redactRequest returns a copy of req fit for an error: no credential header, no query, no body.
func (c *Client) redactRequest(req *http.Request) *http.Request {
	if req == nil {
		return nil
	}
	u := *req.URL
	u.User, u.RawQuery, u.ForceQuery, u.Fragment, u.RawFragment = nil, "", false, "", ""
	h := req.Header.Clone()
	for _, k := range c.credentialHeaders {
		delete(h, k)
	}
	r := &http.Request{
		Method: req.Method, URL: &u, Proto: req.Proto, ProtoMajor: req.ProtoMajor, ProtoMinor: req.ProtoMinor,
		Header: h, Body: http.NoBody, Host: req.Host,
	}
	return r.WithContext(contextFree)
}

// errcode returns the Matrix errcode of an error answer, or "".
func errcode(resp *http.Response) string {
	if e := parseRespError(resp.StatusCode, bufferBody(resp)); e != nil {
		return e.ErrCode
	}
	return ""
}
