package mediaclient

import (
	"context"
	"time"
)

// Trace holds hooks that a download calls as it runs, for a caller that shows progress (a command
// line's -v, say). Each hook is called in the goroutine that runs the download: the one calling
// Download (or Thumbnail, DownloadEncrypted, …), and the one calling Read when a body is resumed or
// continued with another range. A nil hook is not called. Set a Trace on a call's context with
// WithTrace, as net/http/httptrace does for single requests.
type Trace struct {
	// Hop is called once per request, when its answer (or its failure) arrived: every redirect,
	// retry, re-resolve, fallback, next range and resume is a Hop whose Step says which.
	Hop func(Hop)
	// Retry is called when a download is about to ask again after a failure, before it waits: a
	// retry of the chain (after a connection error, a stall before the headers, a 429 or a 5xx) or
	// the resume of a body that broke off or stalled. It comes before the Hop of the request it
	// announces, so that a caller can say why a request is sent while it is on its way.
	Retry func(Retry)
}

// Retry describes a request that a download is about to send again, and why.
type Retry struct {
	// Step is StepRetry (the chain starts again at the homeserver) or StepResume (the body is asked
	// for again from Offset).
	Step Step
	// Attempt counts them from 1: the nth retry of one request, or the nth resume of the body.
	Attempt int
	// Offset is where in the media the request asks from: 0 for the whole media.
	Offset int64
	// Wait is how long the download waits before it sends the request (the backoff, or what the
	// server asked for); zero for a resume, which is sent at once.
	Wait time.Duration
	// Status is the status of the answer that failed (429, 503, …), or 0 when there was none.
	Status int
	// Err is why the request failed without an answer (a connection error, a stall before the
	// headers) or why the body broke off (ErrStalled, ErrTooSlow, a reset, …); nil when Status says
	// it all.
	Err error
}

type traceKey struct{}

// WithTrace returns a context whose downloads call the hooks of t.
func WithTrace(ctx context.Context, t *Trace) context.Context {
	return context.WithValue(ctx, traceKey{}, t)
}

// traceFrom returns the Trace of a context, or nil.
func traceFrom(ctx context.Context) *Trace {
	t, _ := ctx.Value(traceKey{}).(*Trace)
	return t
}
