package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/mxfetch/mxfetch/mediaclient"
)

// This file lets the command see each request the library makes for one download as it happens,
// through the library's Trace: -v lines and the notes on retries and resumes appear at once, not
// when the call returns, and whatever the transport (through a proxy too).

// watch follows the requests of one download. The library calls its hooks from the goroutine that
// runs the download (the one that asks, then the one that reads the body), one at a time.
type watch struct {
	d   *downloader
	uri string

	mu   sync.Mutex
	n    int              // requests so far
	last *mediaclient.Hop // the last request, nil before the first
	body string           // the origin of the answer whose body is being read
}

// newWatch returns the watch of one download: notes on retries and resumes (unless -q) and, with -v,
// one line per request.
func (d *downloader) newWatch(uri string) *watch {
	return &watch{d: d, uri: uri}
}

// trace returns the hooks that report to w, for mediaclient.WithTrace.
func (w *watch) trace() *mediaclient.Trace {
	return &mediaclient.Trace{Hop: w.hop, Retry: w.retry}
}

func (w *watch) hop(h mediaclient.Hop) {
	w.mu.Lock()
	w.n++
	n := w.n
	w.last = &h
	if h.Status >= 200 && h.Status < 300 {
		w.body = h.Origin
	}
	w.mu.Unlock()
	if w.d.o.verbose {
		w.d.pr.println(fmt.Sprintf("mxfetch: %s: %s", w.uri, hopLine(n, h)))
	}
}

// hopLine describes the nth request of a download.
func hopLine(n int, h mediaclient.Hop) string {
	creds := "no credentials"
	if h.Credentials {
		creds = "credentials sent"
	}
	res := fmt.Sprintf("%d %s", h.Status, http.StatusText(h.Status))
	if h.Err != nil {
		res = h.Err.Error()
	}
	step := ""
	if h.Step != mediaclient.StepRequest {
		step = " (" + string(h.Step) + ")"
	}
	return fmt.Sprintf("request %d%s: %s %s%s → %s, %s", n, step, h.Method, h.Origin, h.Path, res, creds)
}

func (w *watch) retry(r mediaclient.Retry) {
	o := w.d.o
	if o.quiet && !o.verbose {
		return
	}
	w.mu.Lock()
	last, body := w.last, w.body
	w.mu.Unlock()
	origin := ""
	if last != nil {
		origin = last.Origin
	}
	var msg string
	switch r.Step {
	case mediaclient.StepResume:
		msg = fmt.Sprintf("resuming at byte %d after the body from %s %s (resume %d)", r.Offset, body, breakReason(r.Err, o), r.Attempt)
	default:
		why := fmt.Sprintf("%d %s from %s", r.Status, http.StatusText(r.Status), origin)
		if r.Err != nil {
			why = fmt.Sprintf("%v (%s)", r.Err, origin)
		}
		msg = fmt.Sprintf("retrying after %s (retry %d of %d", why, r.Attempt, o.retries)
		if r.Wait >= time.Millisecond {
			msg += ", in " + r.Wait.Round(time.Millisecond).String()
		}
		msg += ")"
	}
	w.d.pr.println(fmt.Sprintf("mxfetch: %s: %s", w.uri, msg))
}

// breakReason says why a body was cut: "stalled (no byte for 1m0s)", "broke off: unexpected EOF".
func breakReason(err error, o *options) string {
	switch {
	case errors.Is(err, mediaclient.ErrStalled):
		return fmt.Sprintf("stalled (no byte for %v)", o.stallTimeout())
	case errors.Is(err, mediaclient.ErrTooSlow):
		return fmt.Sprintf("was cut: %v", err)
	case errors.Is(err, context.Canceled):
		return "was cancelled"
	}
	return fmt.Sprintf("broke off: %v", err)
}
