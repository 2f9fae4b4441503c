package mediaclient

// This file holds the per-hop timeouts (rule 10 of the design): getting a connection, and waiting
// for the response headers. They cancel the hop's own context, and are set and stopped by
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
	"sync"
	"time"
)

// exchange sends one hop's request through the transport. wait is extra time the server was allowed
// before it answers (timeout_ms on the homeserver). The body of the response it returns is tied to
// the hop's context, which Close releases; a stall detected while reading it cancels that context.
func (c *Client) exchange(req *http.Request, wait time.Duration) (*http.Response, error) {
	return c.exchangeWith(req, false, req.Context(), wait, new(hopTimer))
}

// exchangeWith is exchange with ctx (the hop's context from the guard) under the request and h
// timing its waits: a download's hops, which come one after the other, share one. When own is set,
// req is the hop's own copy (the chain's), and takes the hop's context in place.
func (c *Client) exchangeWith(req *http.Request, own bool, ctx context.Context, wait time.Duration, h *hopTimer) (*http.Response, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	connectAfter, headersAfter := c.opts.ConnectTimeout, time.Duration(0)
	if c.opts.HeaderTimeout > 0 {
		headersAfter = c.opts.HeaderTimeout + wait
	}
	// The hop is marked as one, so that a MediaTransport below passes it on as it is (transport.go).
	ctx = context.WithValue(ctx, hopKey{}, struct{}{})
	policy, _ := ctx.Value(policyKey{}).(*hopPolicy)
	h.begin(ctx, cancel, connectAfter, headersAfter, policy)
	if connectAfter > 0 || headersAfter > 0 || policy != nil {
		ctx = httptrace.WithClientTrace(ctx, h.trace(ctx))
	}
	if own {
		*req = *req.WithContext(ctx) // a copy on the stack, not a third Request on the heap
	} else {
		req = req.WithContext(ctx)
	}
	resp, err := c.transport.RoundTrip(req)
	h.end()
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
		return resp, c.bufferSmallBody(ctx, cancel, resp, h)
	}
	resp.Body = &hopBody{ReadCloser: resp.Body, ctx: ctx, cancel: cancel}
	return resp, nil
}

// hopTimer times the waits of a hop: for a connection (from GetConn to GotConn), for the response
// headers (from WroteRequest to the first byte) and for the small body of a redirect or an error.
// When one runs out it cancels the hop with ErrStalled. It also checks a reused connection against
// the hop's guard. A download's hops come one after the other and share one hopTimer, its timer and
// its hooks: begin and end frame each hop.
type hopTimer struct {
	mu       sync.Mutex
	t        *time.Timer
	hooks    *httptrace.ClientTrace // the hooks trace copies, made once
	ctx      context.Context        // the running hop's, nil between hops
	cancel   context.CancelCauseFunc
	policy   *hopPolicy
	connect  time.Duration // the running hop's limits; ≤ 0 for none
	headers  time.Duration
	what     string // what is awaited, "" when the timer is not set
	limit    time.Duration
	deadline time.Time
}

// What a hop awaits.
const (
	awaitConn    = "no connection"
	awaitHeaders = "no response headers"
	awaitBody    = "no data"
)

// begin starts a hop.
func (h *hopTimer) begin(ctx context.Context, cancel context.CancelCauseFunc, connect, headers time.Duration, policy *hopPolicy) {
	h.mu.Lock()
	h.ctx, h.cancel, h.connect, h.headers, h.policy, h.what = ctx, cancel, connect, headers, policy, ""
	h.mu.Unlock()
}

// end ends the running hop's waits for the transport: later hooks of its request do nothing.
func (h *hopTimer) end() {
	h.mu.Lock()
	h.ctx, h.policy, h.what = nil, nil, ""
	if h.t != nil {
		h.t.Stop()
	}
	h.mu.Unlock()
}

// set starts the wait for what, for limit (none when limit ≤ 0), on the hop cancel cancels (none
// when nil: the hop ended).
func (h *hopTimer) set(what string, limit time.Duration, cancel context.CancelCauseFunc) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if cancel == nil || limit <= 0 {
		return
	}
	h.cancel, h.what, h.limit, h.deadline = cancel, what, limit, time.Now().Add(limit)
	if h.t == nil {
		h.t = time.AfterFunc(limit, h.expire)
	} else {
		h.t.Reset(limit)
	}
}

// clear ends the wait for what.
func (h *hopTimer) clear(what string) {
	h.mu.Lock()
	if h.what == what {
		h.what = ""
		h.t.Stop()
	}
	h.mu.Unlock()
}

// expire cancels the hop when what it awaits did not come in time. An expiry that was overtaken
// (the wait ended, or a later one began) does nothing.
func (h *hopTimer) expire() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.what == "" || h.cancel == nil || time.Now().Before(h.deadline) {
		return
	}
	if h.what == awaitBody {
		h.cancel(fmt.Errorf("%w: no data for %v", ErrStalled, h.limit))
	} else {
		h.cancel(fmt.Errorf("%w: %s within %v", ErrStalled, h.what, h.limit))
	}
	h.what = ""
}

// running returns the running hop's cancel, or nil between hops.
func (h *hopTimer) running() (context.Context, context.CancelCauseFunc, *hopPolicy) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ctx == nil {
		return nil, nil, nil
	}
	return h.ctx, h.cancel, h.policy
}

// trace returns hooks that drive h, for the hop context ctx. httptrace composes them with hooks
// already in ctx by changing the struct it is given (never the functions it holds): then it gets a
// copy.
func (h *hopTimer) trace(ctx context.Context) *httptrace.ClientTrace {
	if h.hooks == nil {
		h.hooks = &httptrace.ClientTrace{
			GetConn: func(string) {
				h.mu.Lock()
				limit := h.connect
				h.mu.Unlock()
				_, cancel, _ := h.running()
				h.set(awaitConn, limit, cancel)
			},
			GotConn: func(info httptrace.GotConnInfo) {
				h.clear(awaitConn)
				// The dialer checked a new connection; a reused one is checked here, against this
				// chain (a connection's address may be fine for one chain and not for another).
				ctx, cancel, policy := h.running()
				if policy != nil && info.Reused && info.Conn != nil {
					if ap, err := netip.ParseAddrPort(info.Conn.RemoteAddr().String()); err == nil {
						if err := policy.check(ctx, ap); err != nil {
							cancel(err)
						}
					}
				}
			},
			WroteRequest: func(httptrace.WroteRequestInfo) {
				h.mu.Lock()
				limit := h.headers
				h.mu.Unlock()
				_, cancel, _ := h.running()
				h.set(awaitHeaders, limit, cancel)
			},
			GotFirstResponseByte: func() { h.clear(awaitHeaders) },
		}
	}
	if httptrace.ContextClientTrace(ctx) == nil {
		return h.hooks
	}
	t := *h.hooks
	return &t
}

// bufferSmallBody reads the body of a redirect or error answer into memory (bounded), within the
// stall timeout (or else the header timeout), and releases the hop. A body that stalls is an
// ErrStalled error for a 4xx/5xx answer, whose body says what went wrong; a redirect keeps its
// headers and loses only its body.
func (c *Client) bufferSmallBody(ctx context.Context, cancel context.CancelCauseFunc, resp *http.Response, h *hopTimer) error {
	limit := c.opts.StallTimeout
	if limit <= 0 {
		limit = c.opts.HeaderTimeout
	}
	h.set(awaitBody, limit, cancel)
	var data []byte
	var err error
	if n := resp.ContentLength; n >= 0 && n < maxErrorBody {
		// The length is known (a redirect's is): a buffer of that size, not io.ReadAll's growth.
		data = make([]byte, n)
		var m int
		m, err = io.ReadFull(resp.Body, data)
		data = data[:m]
		if err == io.ErrUnexpectedEOF || err == io.EOF {
			err = nil // io.ReadAll takes what came for the body, too
		}
	} else {
		data, err = io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	}
	h.clear(awaitBody)
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
