package testserver

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Request is one entry of the request log: what one origin received.
type Request struct {
	Time time.Time
	// Origin is scheme://host:port as the client addressed it (the Host header), e.g.
	// "http://localhost:41234".
	Origin   string
	Role     Role
	Method   string
	Path     string
	RawQuery string
	// Header holds every request header as received (a copy).
	Header http.Header
	// Status is the status code answered, or 0 when the connection was reset without an answer.
	Status int
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

// record appends an entry and returns a function that sets its status.
func (s *Server) record(r *http.Request, scheme string, role Role) func(int) {
	e := Request{
		Time:     time.Now(),
		Origin:   scheme + "://" + r.Host,
		Role:     role,
		Method:   r.Method,
		Path:     r.URL.Path,
		RawQuery: r.URL.RawQuery,
		Header:   r.Header.Clone(),
	}
	s.mu.Lock()
	s.log = append(s.log, e)
	i, gen := len(s.log)-1, s.logGen
	s.mu.Unlock()
	return func(status int) {
		s.mu.Lock()
		// The log may have been reset meanwhile; only touch the entry if it is still there.
		if gen == s.logGen {
			s.log[i].Status = status
		}
		s.mu.Unlock()
		if s.cfg.Logf != nil {
			s.cfg.Logf("%s %s %s%s -> %d%s", e.Origin, e.Method, e.Path, redactQuery(e.RawQuery), status, credentialNote(e.Header))
		}
	}
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

// statusWriter records the status code as soon as it is written, before the client can see it.
type statusWriter struct {
	http.ResponseWriter
	done   func(int)
	status int
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
	return w.ResponseWriter.Write(p)
}

// ReadFrom keeps the sendfile/splice fast path of the underlying writer.
func (w *statusWriter) ReadFrom(r io.Reader) (int64, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(w.ResponseWriter, r)
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
