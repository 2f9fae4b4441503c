package testserver

// Serving the bytes of a media item: Range, validators and the quirks of real servers.

import (
	"io"
	"mime"
	"net/http"
	"strings"
)

// serve writes the content (or thumbnail) of m with Range, ETag and Last-Modified support.
func (s *Server) serve(w http.ResponseWriter, r *http.Request, m *Media, b *behaviorState, f *Fault, kind, fileName string) {
	s.mu.Lock()
	content, size, etag, modTime, contentType := m.content, m.size, m.etag, m.modTime, m.ContentType
	s.mu.Unlock()
	if kind == "thumbnail" && m.thumbnail != nil {
		content, size = bytesReaderAt(m.thumbnail), int64(len(m.thumbnail))
	}
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("ETag", etag)
	if kind == "thumbnail" {
		h.Set("ETag", strings.TrimSuffix(etag, `"`)+`-thumb"`)
	}
	h.Set("Accept-Ranges", "bytes")
	if fileName != "" {
		h.Set("Content-Disposition", mime.FormatMediaType("inline", map[string]string{"filename": fileName}))
	} else {
		h.Set("Content-Disposition", "inline")
	}
	body := io.NewSectionReader(content, 0, size)
	if f != nil && f.Truncate {
		at := f.TruncateAt
		if at == 0 {
			at = size / 2
		}
		w = &cutWriter{ResponseWriter: w, left: at, reset: f.Reset}
	}
	if b.SlowBody > 0 {
		w = &slowWriter{ResponseWriter: w, ctx: r.Context(), delay: b.SlowBody}
	}
	if b.NoContentLength {
		h.Del("Accept-Ranges")
		w.WriteHeader(http.StatusOK)
		// Flushing the headers first stops the server from computing a Content-Length.
		http.NewResponseController(w).Flush()
		if r.Method != http.MethodHead {
			io.Copy(w, body)
		}
		return
	}
	http.ServeContent(w, r, "", modTime, body)
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
