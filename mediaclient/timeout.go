package mediaclient

// This file holds the per-hop timeouts (rule 10 of the design): getting a connection, and waiting
// for the response headers. They are timers on the hop's own context, armed and stopped by
// net/http/httptrace events, so they hold whatever transport the Client uses. The body's stall and
// low-speed checks are in resume.go.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
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
	conn := arm(c.opts.ConnectTimeout, "no connection")
	headers := arm(c.opts.HeaderTimeout+wait, "no response headers")
	if conn != nil || headers != nil {
		ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
			GetConn: func(string) {
				if conn != nil {
					conn.Reset(c.opts.ConnectTimeout)
				}
			},
			GotConn: func(httptrace.GotConnInfo) {
				if conn != nil {
					conn.Stop()
				}
			},
			WroteRequest: func(httptrace.WroteRequestInfo) {
				if headers != nil {
					headers.Reset(c.opts.HeaderTimeout + wait)
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
		if cause := context.Cause(ctx); errors.Is(cause, ErrStalled) {
			err = cause
		}
		cancel(nil)
		return nil, err
	}
	resp.Body = &hopBody{ReadCloser: resp.Body, ctx: ctx, cancel: cancel}
	return resp, nil
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
