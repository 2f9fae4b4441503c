package testserver

// The homeserver's download and thumbnail endpoints: parameter checks, waiting for asynchronous
// uploads, and the decision to redirect or to serve the bytes itself.

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"maunium.net/go/mautrix"

	"github.com/mxfetch/mxfetch/mediaclient"
)

// thumbParams validates the thumbnail query and returns a key naming the size.
func thumbParams(q url.Values) (string, error) {
	var size [2]int
	for i, name := range []string{"width", "height"} {
		v := q.Get(name)
		if v == "" {
			return "", fmt.Errorf("missing %s", name)
		}
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 || n > maxThumbnailSide {
			return "", fmt.Errorf("invalid %s %q", name, v)
		}
		size[i] = n
	}
	method := q.Get("method")
	switch method {
	case "", "crop", "scale":
	default:
		return "", fmt.Errorf("invalid method %q", method)
	}
	if a := q.Get("animated"); a != "" && a != "true" && a != "false" {
		return "", fmt.Errorf("invalid animated %q", a)
	}
	return fmt.Sprintf("%dx%d-%s", size[0], size[1], method), nil
}

func (s *Server) download(v1, thumbnail bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var m *Media
		if r.PathValue("serverName") == s.ServerName {
			m = s.lookup(r.PathValue("mediaID"))
		}
		b := s.behaviorFor(m)
		if (v1 && b.NoV1) || (!v1 && b.NoV3) {
			mautrix.MUnrecognized.WithMessage("Unrecognized request").Write(w)
			return
		}
		if v1 && !s.checkToken(w, r) {
			return
		}
		q := r.URL.Query()
		asked := false
		if vals, ok := q["allow_redirect"]; ok {
			switch {
			case b.Param == ParamReject:
				e := mautrix.MInvalidParam
				if b.ParamErrCode != "" {
					e = mautrix.RespError{ErrCode: b.ParamErrCode}
				}
				e.WithMessage("Unknown parameter allow_redirect").WithStatus(http.StatusBadRequest).Write(w)
				return
			case b.Param == ParamBoolean && vals[0] != "true" && vals[0] != "false":
				mautrix.MUnknown.WithMessage("allow_redirect must be a boolean").WithStatus(http.StatusBadRequest).Write(w)
				return
			}
			asked = vals[0] == "true"
		}
		thumbKey, f, ok := s.mediaReady(w, r, m, b, thumbnail)
		if !ok {
			return
		}
		when := b.V3Redirect
		if v1 {
			when = b.V1Redirect
		}
		redirect := when == Always || (when == WhenAsked && asked)
		if redirect && thumbnail && b.ThumbnailFirstDirect {
			s.mu.Lock()
			m.thumbs[thumbKey]++
			redirect = m.thumbs[thumbKey] > 1
			s.mu.Unlock()
		}
		kind := "download"
		if thumbnail {
			kind = "thumbnail"
		}
		if redirect {
			loc := ""
			if m.locate != nil {
				loc = m.locate()
			} else if b.Location != nil {
				loc = *b.Location
			} else {
				loc = s.cdnURL(b, kind, m.ID, 0, thumbQuery(q))
			}
			s.redirect(w, b, loc, b.NoLocation)
			return
		}
		fileName := r.PathValue("fileName")
		if fileName == "" {
			fileName = s.fileName(m)
		}
		s.serve(w, r, m, b, RoleHomeserver, f != nil, kind, fileName)
	}
}

func thumbQuery(q url.Values) url.Values {
	out := url.Values{}
	for _, k := range []string{"width", "height", "method", "animated"} {
		if v := q.Get(k); v != "" {
			out.Set(k, v)
		}
	}
	return out
}

func waitReady(ctx context.Context, m *Media, timeout time.Duration) bool {
	select {
	case <-m.ready:
		return true
	default:
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-m.ready:
		return true
	case <-t.C:
	case <-ctx.Done():
	}
	return false
}

func (s *Server) redirect(w http.ResponseWriter, b *behaviorState, loc string, omit bool) {
	if !omit {
		// Set the map directly so that any value, even an empty one, is sent as it is.
		w.Header()["Location"] = []string{loc}
	}
	if b.CacheControl != "" {
		w.Header().Set("Cache-Control", b.CacheControl)
	}
	w.Header().Set("Content-Length", "0")
	status := b.Redirect
	if status == 0 {
		status = http.StatusTemporaryRedirect
	}
	w.WriteHeader(status)
}

func (s *Server) fileName(m *Media) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return m.FileName
}

// mediaReady runs what every endpoint that serves a media item does before it answers: it checks
// the thumbnail parameters and timeout_ms, answers 404 for an unknown item, lets a homeserver fault
// answer, and waits (up to timeout_ms) for an item that is not uploaded yet. It returns the
// thumbnail's key (for a thumbnail), the fault that is left to act on the body, and whether the
// request goes on; when it does not, the answer was written.
func (s *Server) mediaReady(w http.ResponseWriter, r *http.Request, m *Media, b *behaviorState, thumbnail bool) (string, *Fault, bool) {
	q := r.URL.Query()
	thumbKey := ""
	if thumbnail {
		var err error
		if thumbKey, err = thumbParams(q); err != nil {
			mautrix.MUnknown.WithMessage("Bad thumbnail request: %v", err).WithStatus(http.StatusBadRequest).Write(w)
			return "", nil, false
		}
	}
	timeout := defaultTimeoutMS
	if v := q.Get("timeout_ms"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			mautrix.MInvalidParam.WithMessage("Invalid timeout_ms").Write(w)
			return "", nil, false
		}
		timeout = min(n, maxTimeoutMS)
	}
	if m == nil {
		mautrix.MNotFound.WithMessage("Media not found").Write(w)
		return "", nil, false
	}
	f, answered := s.answerFault(w, r, b, RoleHomeserver)
	if answered {
		return "", nil, false
	}
	if !waitReady(r.Context(), m, time.Duration(timeout)*time.Millisecond) {
		if r.Context().Err() == nil {
			mediaclient.MNotYetUploaded.WithMessage("Media has not been uploaded yet").Write(w)
		}
		return "", nil, false
	}
	return thumbKey, f, true
}
