package testserver

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Request is one entry of the request log: what one origin received.
type Request struct {
	Time time.Time
	// Origin is scheme://host:port as the client addressed it (the Host header), e.g.
	// "http://localhost:41234".
	Origin string
	Role   Role
	// Proto is the protocol the request came in: "HTTP/1.1" or "HTTP/2.0".
	Proto    string
	Method   string
	Path     string
	RawQuery string
	// Header holds every request header as received (a copy).
	Header http.Header
	// Status is the status code answered, or 0 when the connection was reset without an answer.
	Status int
	// Sent is how many body bytes the handler has written so far (a body cut short or stalled counts
	// what was written before). Bytes are counted as they are handed to the connection, before the
	// client can read them; Sent is final once Ended.
	Sent int64
	// Ended reports whether the answer is over, so that Sent is final.
	Ended bool
}

// Query parses RawQuery.
func (r Request) Query() url.Values {
	v, _ := url.ParseQuery(r.RawQuery)
	return v
}

// HasCredentials reports whether the request carried Authorization, Cookie or Proxy-Authorization.
func (r Request) HasCredentials() bool {
	return r.Header.Get("Authorization") != "" || r.Header.Get("Cookie") != "" || r.Header.Get("Proxy-Authorization") != ""
}

// Requests returns a copy of the request log, oldest first.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Request, len(s.log))
	copy(out, s.log)
	return out
}

// RequestsTo returns the logged requests that the named origin received.
func (s *Server) RequestsTo(name OriginName) []Request {
	var out []Request
	for _, r := range s.Requests() {
		if r.Origin == s.origins[name] {
			out = append(out, r)
		}
	}
	return out
}

// ResetLog empties the request log.
func (s *Server) ResetLog() {
	s.mu.Lock()
	s.log = nil
	s.logGen++
	s.mu.Unlock()
}

// record appends an entry and returns a function that sets its status, and one that sets the
// body bytes sent so far and, with ended, marks the answer over.
func (s *Server) record(r *http.Request, scheme string, role Role) (status func(int), sent func(n int64, ended bool)) {
	e := Request{
		Time:     time.Now(),
		Origin:   scheme + "://" + r.Host,
		Role:     role,
		Proto:    r.Proto,
		Method:   r.Method,
		Path:     r.URL.Path,
		RawQuery: r.URL.RawQuery,
		Header:   r.Header.Clone(),
	}
	s.mu.Lock()
	s.log = append(s.log, e)
	i, gen := len(s.log)-1, s.logGen
	s.mu.Unlock()
	// update changes the entry if the log has not been reset meanwhile.
	update := func(f func(*Request)) {
		s.mu.Lock()
		if gen == s.logGen {
			f(&s.log[i])
		}
		s.mu.Unlock()
	}
	status = func(code int) {
		update(func(r *Request) { r.Status = code })
		if s.cfg.Logf != nil {
			s.cfg.Logf("%s", e.line(code))
		}
	}
	sent = func(n int64, ended bool) { update(func(r *Request) { r.Sent, r.Ended = n, ended }) }
	return status, sent
}

// line describes a request and its status in one line, with credentials and signatures redacted.
func (r Request) line(status int) string {
	return fmt.Sprintf("%s %s %s%s -> %d%s", r.Origin, r.Method, r.Path, redactQuery(r.RawQuery), status, credentialNote(r.Header))
}

// String describes the request in one line, as the server logs it: with credentials and signatures
// redacted, its status, and the body bytes sent.
func (r Request) String() string {
	sent := fmt.Sprintf(" (%d bytes)", r.Sent)
	if !r.Ended {
		sent = " (still running)"
	}
	return r.Time.Format("15:04:05.000 ") + r.line(r.Status) + sent + rangeNote(r.Header)
}

func rangeNote(h http.Header) string {
	if v := h.Get("Range"); v != "" {
		return " Range: " + v
	}
	return ""
}

// redactQuery hides signatures and tokens in a query string for logging.
func redactQuery(raw string) string {
	if raw == "" {
		return ""
	}
	v, err := url.ParseQuery(raw)
	if err != nil {
		return "?<unparsable>"
	}
	for k := range v {
		switch strings.ToLower(k) {
		case "sig", "signature", "x-amz-signature", "access_token", "token":
			v[k] = []string{"REDACTED"}
		}
	}
	return "?" + v.Encode()
}

func credentialNote(h http.Header) string {
	var parts []string
	for _, k := range []string{"Authorization", "Cookie", "Proxy-Authorization"} {
		if h.Get(k) != "" {
			parts = append(parts, k+"=<redacted>")
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return " [" + strings.Join(parts, " ") + "]"
}

// statusWriter records the status code as soon as it is written, before the client can see it, and
// the body bytes as they are written: each write is counted before it is handed on (and corrected
// if it falls short), so that a client that has read the whole body never finds the log behind.
type statusWriter struct {
	http.ResponseWriter
	done     func(int)
	progress func(n int64, ended bool)
	status   int
	sent     int64
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
		w.done(code)
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	w.progress(w.sent+int64(len(p)), false)
	n, err := w.ResponseWriter.Write(p)
	w.sent += int64(n)
	if n < len(p) {
		w.progress(w.sent, false)
	}
	return n, err
}

// copyBufs holds the buffers of statusWriter.ReadFrom, so that serving a body allocates none: the
// in-process server's allocations fall into the client's benchmarks.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// writerOnly hides every method but Write, so that io.CopyBuffer uses the buffer it is given.
type writerOnly struct{ io.Writer }

// ReadFrom copies r to the response, counting the bytes as they are read from r.
func (w *statusWriter) ReadFrom(r io.Reader) (int64, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	src := &countingReader{r: r, base: w.sent, progress: w.progress}
	// Through a pooled buffer, not the connection's ReadFrom: with the counting reader in between it
	// could not use sendfile anyway, and its generic copy allocates 32 KiB a body, which would fall
	// into the benchmarks of the clients under test.
	bp := copyBufs.Get().(*[]byte)
	n, err := io.CopyBuffer(writerOnly{w.ResponseWriter}, src, *bp)
	copyBufs.Put(bp)
	w.sent += n
	w.progress(w.sent, false)
	return n, err
}

// countingReader reports base plus the bytes read so far after each Read.
type countingReader struct {
	r        io.Reader
	base     int64
	progress func(int64, bool)
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.base += int64(n)
	c.progress(c.base, false)
	return n, err
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return http.NewResponseController(w.ResponseWriter).Hijack()
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
