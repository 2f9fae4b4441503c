package testserver

// Serving the bytes of a media item: Range, validators and the quirks of real servers.

import (
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// serve writes the content (or thumbnail) of m as an origin in role serves it: with Range, ETag and
// Last-Modified support as the behaviour's Serving for that role says, and with the body fault
// drawn for the request unless noFault is set.
func (s *Server) serve(w http.ResponseWriter, r *http.Request, m *Media, b *behaviorState, role Role, noFault bool, kind, fileName string) {
	s.mu.Lock()
	content, size, etag, modTime, contentType := m.content, m.size, m.etag, m.modTime, m.ContentType
	s.mu.Unlock()
	if kind == "thumbnail" && m.thumbnail != nil {
		content, size = bytesReaderAt(m.thumbnail), int64(len(m.thumbnail))
	}
	sv := b.serving(role)
	h := w.Header()
	h.Set("Content-Type", contentType)
	if sv.NoValidators {
		// ServeContent sends no Last-Modified for the zero time.
		modTime = time.Time{}
	} else {
		if kind == "thumbnail" {
			etag = strings.TrimSuffix(etag, `"`) + `-thumb"`
		}
		h.Set("ETag", etag)
	}
	if !sv.IgnoreRange && !b.NoContentLength {
		h.Set("Accept-Ranges", "bytes")
	}
	if fileName != "" {
		h.Set("Content-Disposition", mime.FormatMediaType("inline", map[string]string{"filename": fileName}))
	} else {
		h.Set("Content-Disposition", "inline")
	}

	rangeHeader, hasRange := r.Header["Range"]
	start, end, single := int64(0), int64(0), false
	if hasRange && len(rangeHeader) == 1 {
		start, end, single = singleRange(rangeHeader[0], size)
	}
	var f *Fault
	if !noFault {
		f = b.fault(role, true, func(f *Fault) bool {
			switch f.Range {
			case RangeNone:
				return true
			case RangeUnasked:
				return !hasRange
			}
			return single
		})
	}
	w = s.newBodyWriter(w, r, b, f, size)
	if f != nil && f.Range != RangeNone {
		writeHostileRange(w, f, content, size, start)
		return
	}

	body := io.NewSectionReader(content, 0, size)
	if b.NoContentLength {
		w.WriteHeader(http.StatusOK)
		// Flushing the headers first stops the server from computing a Content-Length.
		http.NewResponseController(w).Flush()
		if r.Method != http.MethodHead {
			io.Copy(w, body)
		}
		return
	}
	if sv.IgnoreRange || sv.IgnoreIfRange || (sv.RangeChunk > 0 && single) {
		r = r.Clone(r.Context())
		if sv.IgnoreRange {
			r.Header.Del("Range")
		}
		if sv.IgnoreIfRange {
			r.Header.Del("If-Range")
		}
		if sv.RangeChunk > 0 && single && end-start+1 > sv.RangeChunk {
			r.Header.Set("Range", "bytes="+strconv.FormatInt(start, 10)+"-"+strconv.FormatInt(start+sv.RangeChunk-1, 10))
		}
	}
	if sv.IgnoreRange {
		// ServeContent would announce Accept-Ranges.
		w = &dropHeader{ResponseWriter: w, name: "Accept-Ranges"}
	}
	http.ServeContent(w, r, "", modTime, body)
}

// dropHeader removes a header just before the status line is written.
type dropHeader struct {
	http.ResponseWriter
	name string
}

func (w *dropHeader) WriteHeader(code int) {
	w.Header().Del(w.name)
	w.ResponseWriter.WriteHeader(code)
}

func (w *dropHeader) Write(p []byte) (int, error) {
	w.Header().Del(w.name)
	return w.ResponseWriter.Write(p)
}

func (w *dropHeader) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// singleRange parses a Range header that asks for one satisfiable byte range of a body of the given
// size, and returns its first and last byte.
func singleRange(h string, size int64) (start, end int64, ok bool) {
	spec, found := strings.CutPrefix(h, "bytes=")
	if !found || strings.Contains(spec, ",") {
		return 0, 0, false
	}
	a, b, found := strings.Cut(strings.TrimSpace(spec), "-")
	if !found {
		return 0, 0, false
	}
	if a == "" {
		n, err := strconv.ParseInt(b, 10, 64)
		if err != nil || n <= 0 || size == 0 {
			return 0, 0, false
		}
		return max(size-n, 0), size - 1, true
	}
	start, err := strconv.ParseInt(a, 10, 64)
	if err != nil || start < 0 || start >= size {
		return 0, 0, false
	}
	end = size - 1
	if b != "" {
		e, err := strconv.ParseInt(b, 10, 64)
		if err != nil || e < start {
			return 0, 0, false
		}
		end = min(e, end)
	}
	return start, end, true
}

type bytesReaderAt []byte

func (b bytesReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off >= int64(len(b)) {
		return 0, io.EOF
	}
	n := copy(p, b[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}
