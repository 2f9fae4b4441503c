package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
)

// This file lets the command see each request the library makes for one download as it happens:
// the transport below mediaclient reports each exchange to the watch in the download's context, so
// that -v lines and notes on retries and resumes appear at once, not when the call returns (the
// library's hop records are complete only then).

// exchange is one request as the transport saw it.
type exchange struct {
	method      string
	origin      string // scheme://host[:port]
	path        string // escaped path, never the query
	credentials bool   // the request carried Authorization or Cookie
	rangeFrom   int64  // the start of its Range header, or -1
	status      int    // 0 when the request failed without an answer
	err         error  // why it failed without an answer
	bodyErr     error  // set on a later record: the body broke off
	bodyBytes   int64  // bytes of the body read before it broke
}

// transient reports whether a retry or a resume may follow this exchange.
func (x *exchange) transient() bool {
	switch {
	case x.bodyErr != nil:
		return true
	case x.err != nil:
		return !errors.Is(x.err, context.Canceled) && !errors.Is(x.err, context.DeadlineExceeded)
	}
	return x.status == http.StatusTooManyRequests || x.status >= 500
}

// outcome says in a few words how an exchange ended.
func (x *exchange) outcome() string {
	switch {
	case x.bodyErr != nil:
		return fmt.Sprintf("the body from %s broke off after %d bytes: %v", x.origin, x.bodyBytes, x.bodyErr)
	case x.err != nil:
		return fmt.Sprintf("%v (%s)", x.err, x.origin)
	}
	return fmt.Sprintf("%d %s from %s", x.status, http.StatusText(x.status), x.origin)
}

// watch follows the exchanges of one download. Its callbacks run on the goroutine of the request.
type watch struct {
	mu   sync.Mutex
	last *exchange // the last exchange that finished, or whose body broke

	// started is called before a request is sent, with the exchange that ended last (nil for
	// the first); finished when its answer (or failure) is there; broke when a body breaks off.
	started  func(x, prev *exchange)
	finished func(x *exchange)
	broke    func(x *exchange)
}

type watchKey struct{}

func withWatch(ctx context.Context, w *watch) context.Context {
	return context.WithValue(ctx, watchKey{}, w)
}

// watchingTransport reports each exchange to the watch of its request's context, if any.
type watchingTransport struct {
	next http.RoundTripper
}

func (t watchingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	w, _ := req.Context().Value(watchKey{}).(*watch)
	if w == nil {
		return t.next.RoundTrip(req)
	}
	x := &exchange{
		method:      req.Method,
		origin:      req.URL.Scheme + "://" + req.URL.Host,
		path:        req.URL.EscapedPath(),
		credentials: req.Header.Get("Authorization") != "" || req.Header.Get("Cookie") != "",
		rangeFrom:   -1,
	}
	if r, ok := strings.CutPrefix(req.Header.Get("Range"), "bytes="); ok {
		var n int64
		if _, err := fmt.Sscanf(r, "%d-", &n); err == nil {
			x.rangeFrom = n
		}
	}
	w.mu.Lock()
	prev := w.last
	w.mu.Unlock()
	if w.started != nil {
		w.started(x, prev)
	}
	resp, err := t.next.RoundTrip(req)
	w.mu.Lock()
	if resp != nil {
		x.status = resp.StatusCode
		resp.Body = &watchedBody{ReadCloser: resp.Body, w: w, x: x}
	} else {
		x.err = err
	}
	w.last = x
	w.mu.Unlock()
	if w.finished != nil {
		w.finished(x)
	}
	return resp, err
}

// watchedBody notes when a body breaks off.
type watchedBody struct {
	io.ReadCloser
	w      *watch
	x      *exchange
	n      int64
	closed bool
}

func (b *watchedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n += int64(n)
	if err != nil && err != io.EOF && !b.closed && !errors.Is(err, context.Canceled) {
		b.w.mu.Lock()
		first := b.x.bodyErr == nil
		if first {
			b.x.bodyErr, b.x.bodyBytes = err, b.n
			b.w.last = b.x
		}
		b.w.mu.Unlock()
		if first && b.w.broke != nil {
			b.w.broke(b.x)
		}
	}
	return n, err
}

func (b *watchedBody) Close() error {
	b.closed = true
	return b.ReadCloser.Close()
}
