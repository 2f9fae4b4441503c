package testserver

// Uploads: the classic one-step upload, and the asynchronous create-then-PUT pair.

import (
	"errors"
	"io"
	"net/http"
	"time"

	"maunium.net/go/mautrix"
)

func (s *Server) readUpload(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	if r.ContentLength > s.cfg.MaxUploadSize {
		mautrix.MTooLarge.WithMessage("Upload is larger than %d bytes", s.cfg.MaxUploadSize).Write(w)
		return nil, false
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxUploadSize))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		mautrix.MTooLarge.WithMessage("Upload is larger than %d bytes", s.cfg.MaxUploadSize).Write(w)
		return nil, false
	} else if err != nil {
		mautrix.MUnknown.WithMessage("Failed to read upload").WithStatus(http.StatusBadRequest).Write(w)
		return nil, false
	}
	return data, true
}

func (s *Server) upload(w http.ResponseWriter, r *http.Request) {
	data, ok := s.readUpload(w, r)
	if !ok {
		return
	}
	uri := s.AddMedia(data, MediaOptions{ContentType: r.Header.Get("Content-Type"), FileName: r.URL.Query().Get("filename")})
	writeJSON(w, http.StatusOK, mautrix.RespMediaUpload{ContentURI: uri})
}

func (s *Server) create(w http.ResponseWriter, r *http.Request) {
	uri := s.CreateMedia(MediaOptions{})
	writeJSON(w, http.StatusOK, map[string]any{
		"content_uri":       uri.String(),
		"unused_expires_at": time.Now().Add(24 * time.Hour).UnixMilli(),
	})
}

func (s *Server) uploadTo(w http.ResponseWriter, r *http.Request) {
	m := s.lookup(r.PathValue("mediaID"))
	if m == nil || r.PathValue("serverName") != s.ServerName {
		mautrix.MNotFound.WithMessage("Unknown media").Write(w)
		return
	}
	data, ok := s.readUpload(w, r)
	if !ok {
		return
	}
	if fn := r.URL.Query().Get("filename"); fn != "" {
		s.mu.Lock()
		m.FileName = fn
		s.mu.Unlock()
	}
	if !s.Upload(m.ID, data, r.Header.Get("Content-Type")) {
		errCannotOverwrite.WithMessage("Media already uploaded").Write(w)
		return
	}
	writeJSON(w, http.StatusOK, struct{}{})
}
