package mediaclient

// This file holds the per-hop timeouts (rule 10 of the design): getting a connection, and waiting
// for the response headers. They are timers on the hop's own context, armed and stopped by
// net/http/httptrace events, so they hold whatever transport the Client uses. The body's stall and
// low-speed checks are in resume.go.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/netip"
	"time"
)

// exchange sends one hop's request through the transport. wait is extra time the server was allowed
// before it answers (timeout_ms on the homeserver). The body of the response it returns is tied to
// the hop's context, which Close releases; a stall detected while reading it cancels that context.
func (c *Client) exchange(req *http.Request, wait time.Duration) (*http.Response, error) {
	ctx, cancel := context.WithCancelCause(req.Context())
	var timers []*time.Timer
	arm := func(d time.Duration, what string) *time.Timer {
		if d <= 0 {
			return nil
		}
		t := time.AfterFunc(time.Hour, func() {
			cancel(fmt.Errorf("%w: %s within %v", ErrStalled, what, d))
		})
		t.Stop()
		timers = append(timers, t)
		return t
	}
	connectAfter, headersAfter := c.opts.ConnectTimeout, time.Duration(0)
	if c.opts.HeaderTimeout > 0 {
		headersAfter = c.opts.HeaderTimeout + wait
	}
	// The hop is marked as one, so that a MediaTransport below passes it on as it is (transport.go).
	ctx = context.WithValue(ctx, hopKey{}, struct{}{})
	conn := arm(connectAfter, "no connection")
	headers := arm(headersAfter, "no response headers")
	policy, _ := ctx.Value(policyKey{}).(*hopPolicy)
	if conn != nil || headers != nil || policy != nil {
		ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
			GetConn: func(string) {
				if conn != nil {
					conn.Reset(connectAfter)
				}
			},
			GotConn: func(info httptrace.GotConnInfo) {
				if conn != nil {
					conn.Stop()
				}
				// The dialer checked a new connection; a reused one is checked here, against this
				// chain (a connection's address may be fine for one chain and not for another).
				if policy != nil && info.Reused && info.Conn != nil {
					if ap, err := netip.ParseAddrPort(info.Conn.RemoteAddr().String()); err == nil {
						if err := policy.check(ctx, ap); err != nil {
							cancel(err)
						}
					}
				}
			},
			WroteRequest: func(httptrace.WroteRequestInfo) {
				if headers != nil {
					headers.Reset(headersAfter)
				}
			},
			GotFirstResponseByte: func() {
				if headers != nil {
					headers.Stop()
				}
			},
		})
	}
	resp, err := c.transport.RoundTrip(req.WithContext(ctx))
	for _, t := range timers {
		t.Stop()
	}
	if err != nil {
		if cause := context.Cause(ctx); errors.Is(cause, ErrStalled) || errors.Is(cause, ErrPrivateAddress) {
			err = cause
		}
		cancel(nil)
		return nil, err
	}
	if resp.StatusCode < 200 || resp.StatusCode >= 300 {
		// A redirect or an error answer is small, and its body is read at once (for its errcode,
		// or to reuse the connection): under the stall timeout too, so that a body that never
		// comes does not hold the call.
		return resp, c.bufferSmallBody(ctx, cancel, resp)
	}
	resp.Body = &hopBody{ReadCloser: resp.Body, ctx: ctx, cancel: cancel}
	return resp, nil
}

// bufferSmallBody reads the body of a redirect or error answer into memory (bounded), within the
// stall timeout (or else the header timeout), and releases the hop. A body that stalls is an
// ErrStalled error for a 4xx/5xx answer, whose body says what went wrong; a redirect keeps its
// headers and loses only its body.
func (c *Client) bufferSmallBody(ctx context.Context, cancel context.CancelCauseFunc, resp *http.Response) error {
	limit := c.opts.StallTimeout
	if limit <= 0 {
		limit = c.opts.HeaderTimeout
	}
	var t *time.Timer
	if limit > 0 {
		t = time.AfterFunc(limit, func() { cancel(fmt.Errorf("%w: no data for %v", ErrStalled, limit)) })
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	if t != nil {
		t.Stop()
	}
	resp.Body.Close()
	cause := context.Cause(ctx)
	cancel(nil)
	resp.Body = &bufferedBody{Reader: bytes.NewReader(data), data: data}
	if err != nil && errors.Is(cause, ErrStalled) && resp.StatusCode >= 400 {
		return cause
	}
	return nil
}

// hopBody is a response body tied to its hop's context.
type hopBody struct {
	io.ReadCloser
	ctx    context.Context
	cancel context.CancelCauseFunc
}

// Close closes the body and releases the hop's context.
func (b *hopBody) Close() error {
	err := b.ReadCloser.Close()
	b.cancel(nil)
	return err
}

// abort ends a read in progress with cause (a stall, say): the transport drops the connection.
func (b *hopBody) abort(cause error) { b.cancel(cause) }

// cause returns why the body was aborted, or nil.
func (b *hopBody) cause() error {
	if b.ctx.Err() == nil {
		return nil
	}
	return context.Cause(b.ctx)
}
