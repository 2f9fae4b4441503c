package mediaclient

import "context"

// Trace holds hooks that a download calls as it runs, for a caller that shows progress (a command
// line's -v, say). Each hook is called in the goroutine that runs the download: the one calling
// Download (or Thumbnail, DownloadEncrypted, …), and the one calling Read when a body is resumed or
// continued with another range. A nil hook is not called. Set a Trace on a call's context with
// WithTrace, as net/http/httptrace does for single requests.
type Trace struct {
	// Hop is called once per request, when its answer (or its failure) arrived: every redirect,
	// retry, re-resolve, fallback, next range and resume is a Hop whose Step says which.
	Hop func(Hop)
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
