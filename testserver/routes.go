package testserver

// Routing, authentication and the small endpoints (/versions, whoami, media config), and the
// helpers that write Matrix and S3-style error bodies.

import (
	"crypto/hmac"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"
)

// errCannotOverwrite is the Matrix error for a second upload to the same media ID; mautrix has no
// value for it and the client never reads it. M_NOT_YET_UPLOADED is written as
// mediaclient.MNotYetUploaded, the value the client matches with errors.Is.
var errCannotOverwrite = mautrix.RespError{ErrCode: "M_CANNOT_OVERWRITE_MEDIA", StatusCode: http.StatusConflict}

const (
	maxThumbnailSide = 10000
	defaultTimeoutMS = 20000
	maxTimeoutMS     = 120000
	defaultURLTTL    = 5 * time.Minute
	slowChunk        = 16 << 10
	cdnPrefix        = "/_cdn/"
)

func (s *Server) handler(useTLS bool) http.Handler {
	scheme := "http"
	if useTLS {
		scheme = "https"
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /_matrix/client/versions", s.versions)
	mux.HandleFunc("GET /_matrix/client/v3/account/whoami", s.authed(s.whoami))
	mux.HandleFunc("GET /_matrix/media/v3/config", s.authed(s.mediaConfig))
	mux.HandleFunc("GET /_matrix/client/v1/media/config", s.authed(s.mediaConfig))
	mux.HandleFunc("POST /_matrix/media/v3/upload", s.authed(s.upload))
	mux.HandleFunc("POST /_matrix/media/v1/create", s.authed(s.create))
	mux.HandleFunc("PUT /_matrix/media/v3/upload/{serverName}/{mediaID}", s.authed(s.uploadTo))
	for _, p := range []struct {
		prefix string
		v1     bool
	}{{"/_matrix/media/v3/", false}, {"/_matrix/client/v1/media/", true}} {
		mux.HandleFunc("GET "+p.prefix+"download/{serverName}/{mediaID}", s.download(p.v1, false))
		mux.HandleFunc("GET "+p.prefix+"download/{serverName}/{mediaID}/{fileName}", s.download(p.v1, false))
		mux.HandleFunc("GET "+p.prefix+"thumbnail/{serverName}/{mediaID}", s.download(p.v1, true))
	}
	mux.HandleFunc("GET "+cdnPrefix+"{kind}/{serverName}/{mediaID}", s.cdn)
	s.federationRoutes(mux)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		mautrix.MUnrecognized.WithMessage("Unrecognized request").Write(w)
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.enter() {
			panic(http.ErrAbortHandler)
		}
		defer s.inflight.Done()
		role := RoleHomeserver
		if strings.HasPrefix(r.URL.Path, cdnPrefix) {
			role = RoleCDN
		}
		done, sent := s.record(r, scheme, role)
		sw := &statusWriter{ResponseWriter: w, done: done, progress: sent}
		defer func() {
			if sw.status == 0 {
				done(0)
			}
			sent(sw.sent, true)
		}()
		mux.ServeHTTP(sw, r)
	})
}

func (s *Server) versions(w http.ResponseWriter, r *http.Request) {
	versions := []string{"r0.6.1", "v1.1", "v1.2", "v1.3", "v1.4", "v1.5", "v1.6", "v1.7", "v1.8", "v1.9", "v1.10"}
	if !s.behaviorFor(nil).NoV1 {
		versions = append(versions, "v1.11", "v1.12")
	}
	writeJSON(w, http.StatusOK, map[string]any{"versions": versions, "unstable_features": map[string]bool{}})
}

// authed wraps a handler that needs the access token.
func (s *Server) authed(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.checkToken(w, r) {
			h(w, r)
		}
	}
}

// checkToken answers 401 and reports false unless the request carries the access token.
func (s *Server) checkToken(w http.ResponseWriter, r *http.Request) bool {
	token := ""
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, t, _ := strings.Cut(h, " ")
		if strings.EqualFold(scheme, "Bearer") {
			token = strings.TrimSpace(t)
		} else {
			mautrix.MUnknownToken.WithMessage("Unsupported authorization scheme").Write(w)
			return false
		}
	} else {
		token = r.URL.Query().Get("access_token")
	}
	switch {
	case token == "":
		mautrix.MMissingToken.WithMessage("Missing access token").Write(w)
		return false
	case !hmac.Equal([]byte(token), []byte(s.AccessToken)):
		mautrix.MUnknownToken.WithMessage("Unrecognised access token").Write(w)
		return false
	}
	return true
}

func (s *Server) whoami(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, mautrix.RespWhoami{UserID: id.UserID("@mxfetch:" + s.ServerName), DeviceID: "MXFETCHTEST"})
}

func (s *Server) mediaConfig(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]int64{"m.upload.size": s.cfg.MaxUploadSize})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeXMLError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	fmt.Fprintf(w, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>%s</Code><Message>%s</Message></Error>\n", code, msg)
}
