package testserver

// Fault injection: choosing the fault for a request and carrying it out.

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"time"

	"maunium.net/go/mautrix"
)

// applyFault answers with the fault when it is one that replaces the response, and reports whether it
// did. Truncation is left to serve.
func (s *Server) applyFault(w http.ResponseWriter, r *http.Request, f *Fault, role Role) bool {
	switch {
	case f == nil:
		return false
	case f.Reset && !f.Truncate:
		resetConnection(w)
		return true
	case f.Status != 0:
		if f.RetryAfter != "" {
			w.Header().Set("Retry-After", f.RetryAfter)
		}
		if role == RoleCDN {
			writeXMLError(w, f.Status, "ServiceUnavailable", "Injected fault")
			return true
		}
		e := mautrix.MUnknown.WithMessage("Injected fault").WithStatus(f.Status)
		if f.Status == http.StatusTooManyRequests {
			e = mautrix.MLimitExceeded.WithMessage("Too many requests")
		}
		if f.RetryAfterMS != 0 {
			e = e.WithExtraField("retry_after_ms", f.RetryAfterMS)
		}
		e.Write(w)
		return true
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

// cutWriter stops a body after a number of bytes: it drops the connection (with a TCP reset when
// reset is set) so that the client sees a body shorter than its Content-Length.
type cutWriter struct {
	http.ResponseWriter
	left  int64
	reset bool
}

func (w *cutWriter) Write(p []byte) (int, error) {
	if int64(len(p)) <= w.left {
		w.left -= int64(len(p))
		return w.ResponseWriter.Write(p)
	}
	w.ResponseWriter.Write(p[:w.left])
	w.left = 0
	// Headers and the partial body go out before the connection is dropped.
	http.NewResponseController(w.ResponseWriter).Flush()
	if w.reset {
		resetConnection(w.ResponseWriter)
	}
	panic(http.ErrAbortHandler)
}

// slowWriter pauses before each chunk it writes.
type slowWriter struct {
	http.ResponseWriter
	ctx   context.Context
	delay time.Duration
}

func (w *slowWriter) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		t := time.NewTimer(w.delay)
		select {
		case <-w.ctx.Done():
			t.Stop()
			return written, w.ctx.Err()
		case <-t.C:
		}
		n := min(len(p), slowChunk)
		n, err := w.ResponseWriter.Write(p[:n])
		written += n
		if err != nil {
			return written, err
		}
		if fl, ok := w.ResponseWriter.(http.Flusher); ok {
			fl.Flush()
		}
		p = p[n:]
	}
	return written, nil
}
