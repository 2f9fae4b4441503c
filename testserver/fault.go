package testserver

// Fault injection: choosing the fault for a request and carrying it out, stalls included.

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"maunium.net/go/mautrix"
)

// defaultDripEvery is the pause between the pieces of a dripped body when Fault.DripEvery is zero.
const defaultDripEvery = 10 * time.Millisecond

// replacesAnswer reports whether the fault replaces the whole answer (and so may fire on a redirect)
// rather than acting on a body.
func (f *Fault) replacesAnswer() bool {
	return f.Status != 0 || (f.Reset && !f.Truncate) || f.Stall == StallHeaders
}

// fault returns the first fault for a request in role r that has uses left and fires at this point of
// the answer (before it, or on a body), and uses it. ok, when non-nil, further decides whether a
// body fault can fire on this request.
func (b *behaviorState) fault(r Role, body bool, ok func(*Fault) bool) *Fault {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i := range b.Faults {
		f := &b.Faults[i]
		if f.At != RoleAny && f.At != r {
			continue
		}
		if f.Count > 0 && b.used[i] >= f.Count {
			continue
		}
		if f.replacesAnswer() == body || (ok != nil && !ok(f)) {
			continue
		}
		b.used[i]++
		return f
	}
	return nil
}

// answerFault draws and carries out a fault that replaces the answer, for a request in the given
// role. It reports whether the request is answered; false with a non-nil fault means a stall ended
// and the answer goes on, with no body fault.
func (s *Server) answerFault(w http.ResponseWriter, r *http.Request, b *behaviorState, role Role) (*Fault, bool) {
	f := b.fault(role, false, nil)
	switch {
	case f == nil:
		return nil, false
	case f.Stall == StallHeaders:
		if !s.pause(r.Context(), f.StallFor) {
			panic(http.ErrAbortHandler)
		}
		return f, false
	case f.Reset:
		resetConnection(w)
		return f, true
	}
	if f.RetryAfter != "" {
		w.Header().Set("Retry-After", f.RetryAfter)
	}
	if role == RoleCDN {
		writeXMLError(w, f.Status, "ServiceUnavailable", "Injected fault")
		return f, true
	}
	e := mautrix.MUnknown.WithMessage("Injected fault").WithStatus(f.Status)
	switch {
	case f.ErrCode != "":
		e = mautrix.RespError{ErrCode: f.ErrCode, Err: "Injected fault", StatusCode: f.Status}
	case f.Status == http.StatusTooManyRequests:
		e = mautrix.MLimitExceeded.WithMessage("Too many requests")
	}
	if f.RetryAfterMS != 0 {
		e = e.WithExtraField("retry_after_ms", f.RetryAfterMS)
	}
	e.Write(w)
	return f, true
}

// pause waits for d, or, when d is zero, until the request ends or the server closes. It reports
// whether the whole time passed.
func (s *Server) pause(ctx context.Context, d time.Duration) bool {
	var timeout <-chan time.Time
	if d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-timeout:
		return true
	case <-ctx.Done():
	case <-s.done:
	}
	return false
}

// resetConnection drops the connection with a TCP reset and no answer.
func resetConnection(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if tc, ok := conn.(*tls.Conn); ok {
		conn = tc.NetConn()
	}
	if tcp, ok := conn.(*net.TCPConn); ok {
		tcp.SetLinger(0)
	}
	conn.Close()
}

// bodyWriter carries out the faults that act on a body, and SlowBody: it sends the body in pieces
// with pauses (drip), stops for a while after some bytes (stall) or drops the connection after some
// bytes (cut, with a TCP reset when reset is set) so that the client sees a body shorter than its
// Content-Length. Negative positions are off.
type bodyWriter struct {
	http.ResponseWriter
	s       *Server
	ctx     context.Context
	written int64

	cutAt int64
	reset bool

	stallAt  int64
	stallFor time.Duration

	drip      int64
	dripEvery time.Duration
}

func (w *bodyWriter) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		if w.written == w.stallAt {
			w.stallAt = -1
			w.flush()
			if !w.s.pause(w.ctx, w.stallFor) {
				panic(http.ErrAbortHandler)
			}
		}
		if w.written == w.cutAt {
			// Headers and the partial body go out before the connection is dropped.
			w.flush()
			if w.reset {
				resetConnection(w.ResponseWriter)
			}
			panic(http.ErrAbortHandler)
		}
		n := int64(len(p))
		if w.drip > 0 {
			if w.written > 0 && !w.s.pause(w.ctx, w.dripEvery) {
				panic(http.ErrAbortHandler)
			}
			n = min(n, w.drip)
		}
		for _, at := range []int64{w.stallAt, w.cutAt} {
			if at > w.written {
				n = min(n, at-w.written)
			}
		}
		m, err := w.ResponseWriter.Write(p[:n])
		written += m
		w.written += int64(m)
		if err != nil {
			return written, err
		}
		if w.drip > 0 {
			w.flush()
		}
		p = p[n:]
	}
	return written, nil
}

func (w *bodyWriter) flush() { http.NewResponseController(w.ResponseWriter).Flush() }

// newBodyWriter wraps w for the body fault f (nil: none) and the behaviour's SlowBody, or returns w
// itself when there is nothing to do.
func (s *Server) newBodyWriter(w http.ResponseWriter, r *http.Request, b *behaviorState, f *Fault, size int64) http.ResponseWriter {
	bw := &bodyWriter{ResponseWriter: w, s: s, ctx: r.Context(), cutAt: -1, stallAt: -1}
	if b.SlowBody > 0 {
		bw.drip, bw.dripEvery = int64(slowChunk), b.SlowBody
	}
	if f != nil {
		if f.Truncate {
			bw.cutAt, bw.reset = f.TruncateAt, f.Reset
			if bw.cutAt == 0 {
				bw.cutAt = size / 2
			}
		}
		if f.Stall == StallBody {
			bw.stallAt, bw.stallFor = f.StallAfter, f.StallFor
		}
		if f.Drip > 0 {
			bw.drip, bw.dripEvery = f.Drip, f.DripEvery
			if bw.dripEvery == 0 {
				bw.dripEvery = defaultDripEvery
			}
		}
	}
	if bw.cutAt < 0 && bw.stallAt < 0 && bw.drip == 0 {
		return w
	}
	return bw
}

// writeHostileRange answers with the 206 of a Range fault. start is the first byte the request
// asked for (ignored by RangeUnasked).
func writeHostileRange(w http.ResponseWriter, f *Fault, content io.ReaderAt, size, start int64) {
	first, last, total := start, size-1, strconv.FormatInt(size, 10)
	switch f.Range {
	case RangeUnasked:
		first, last = 0, max(size/2, 1)-1
	case RangeWrongStart:
		first = start / 2
		if start == 0 {
			first = 1
		}
	case RangeBadTotal:
		total = "x"
	case RangeStarTotal:
		total = "*"
	}
	body := io.NewSectionReader(content, first, last-first+1)
	var junk io.Reader = bytes.NewReader(nil)
	if f.Range == RangeTooLong || f.Range == RangeWrongTotal {
		last += RangeJunk
		junk = bytes.NewReader(bytes.Repeat([]byte{0xee}, RangeJunk))
		if f.Range == RangeWrongTotal {
			total = strconv.FormatInt(size+RangeJunk, 10)
		}
	}
	w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%s", first, last, total))
	w.Header().Set("Content-Length", strconv.FormatInt(last-first+1, 10))
	w.WriteHeader(http.StatusPartialContent)
	io.Copy(w, io.MultiReader(body, junk))
}
