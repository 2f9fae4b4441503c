package testserver

// The federation media endpoints (spec v1.11): GET /_matrix/federation/v1/media/download/{mediaId}
// and /thumbnail/{mediaId}, authenticated with X-Matrix (checked by mautrix's federation code) and
// answered with multipart/mixed: a JSON metadata part, then the bytes or a part with a Location.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"sync"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/federation"
)

// FederationBehavior decides how the federation media endpoints answer. The zero value answers with
// the bytes inline. The media's own Behavior still applies where it can: its homeserver faults that
// replace an answer (a status, a reset, a stall before the headers) and its body faults (a truncated
// or stalled body, a drip) fire on the federation answer, and a Location part points at its redirect
// chain, whose CDN faults, expiring URLs and loops apply. Body fault positions (TruncateAt,
// StallAfter) count the whole answer, the multipart framing included.
type FederationBehavior struct {
	// Location answers with a Location part instead of the bytes: a signed URL on the first origin
	// of the media's Behavior.Chain (use OriginCDNTLS: a federation request is https, and a client
	// refuses a Location that downgrades to http).
	Location bool
	// LocationURL, when non-nil, is sent verbatim as the Location part (with Location or without):
	// an internal address, userinfo, another scheme…
	LocationURL *string
	// Unrecognized answers 404 M_UNRECOGNIZED, as a server without federation media (before spec
	// v1.11) does; the legacy /_matrix/media/v3 endpoints keep working.
	Unrecognized bool
	// Redirect answers with a 307 to the media's CDN URL, which the spec forbids on these endpoints.
	Redirect bool
	// MetadataSize pads the metadata part to at least this many bytes (a JSON object still).
	MetadataSize int
	// ContentType, when non-empty, is sent as the answer's Content-Type instead of
	// "multipart/mixed; boundary=…" (e.g. "multipart/mixed" with no boundary).
	ContentType string
	// PartContentLength sends the media part's length as Content-Length in its headers.
	PartContentLength bool
}

// fedState is the federation side of a Server: its behaviour and the keys it trusts.
type fedState struct {
	mu       sync.Mutex
	behavior FederationBehavior
	keys     *federation.InMemoryCache
	auth     *federation.ServerAuth
}

// SetFederation replaces how the federation media endpoints answer.
func (s *Server) SetFederation(b FederationBehavior) {
	s.fed.mu.Lock()
	s.fed.behavior = b
	s.fed.mu.Unlock()
}

// TrustServerKeys makes the federation endpoints accept requests signed by a key of keys.ServerName,
// as if its /_matrix/key/v2/server had answered with keys (which must be self-signed, as
// SigningKey.GenerateKeyResponse makes them). The server never fetches keys itself: a request from
// a server it was not told about is answered 401 M_UNAUTHORIZED.
func (s *Server) TrustServerKeys(keys *federation.ServerKeyResponse) error {
	raw, err := json.Marshal(keys)
	if err != nil {
		return fmt.Errorf("testserver: server keys: %w", err)
	}
	var parsed federation.ServerKeyResponse // with Raw set, which the self-signature check reads
	if err := json.Unmarshal(raw, &parsed); err != nil {
		return fmt.Errorf("testserver: server keys: %w", err)
	}
	if err := parsed.VerifySelfSignature(); err != nil {
		return fmt.Errorf("testserver: server keys of %q: %w", parsed.ServerName, err)
	}
	s.federationAuth() // makes the cache
	return s.fed.keys.StoreKeys(context.Background(), &parsed)
}

// federationAuth returns mautrix's request authenticator for this server, made on first use.
func (s *Server) federationAuth() *federation.ServerAuth {
	s.fed.mu.Lock()
	defer s.fed.mu.Unlock()
	if s.fed.auth == nil {
		s.fed.keys = federation.NewInMemoryCache()
		// A client that may ask no server: keys come from TrustServerKeys only.
		noFetch := &federation.Client{AllowServer: func(string) bool { return false }}
		s.fed.auth = federation.NewServerAuth(noFetch, keyCache{s.fed.keys}, func(federation.XMatrixAuth) string { return s.ServerName })
	}
	return s.fed.auth
}

// keyCache is mautrix's in-memory key cache, but StoreFetchError hands back the error it stores:
// mautrix's ServerAuth (v0.32.0) returns StoreFetchError's result in place of the fetch error, so
// with a nil there it went on without keys and panicked on the request of an unknown server.
type keyCache struct{ *federation.InMemoryCache }

func (k keyCache) StoreFetchError(ctx context.Context, serverName string, err error) error {
	k.InMemoryCache.StoreFetchError(ctx, serverName, err)
	return err
}

// federationRoutes adds the federation media endpoints to mux.
func (s *Server) federationRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /_matrix/federation/v1/media/download/{mediaID}", s.federationMedia(false))
	mux.HandleFunc("GET /_matrix/federation/v1/media/thumbnail/{mediaID}", s.federationMedia(true))
}

func (s *Server) federationMedia(thumbnail bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.fed.mu.Lock()
		fb := s.fed.behavior
		s.fed.mu.Unlock()
		if fb.Unrecognized {
			mautrix.MUnrecognized.WithMessage("Unrecognized request").Write(w)
			return
		}
		if _, rerr := s.federationAuth().Authenticate(r); rerr != nil {
			rerr.Write(w)
			return
		}
		m := s.lookup(r.PathValue("mediaID"))
		b := s.behaviorFor(m)
		q := r.URL.Query()
		kind := "download"
		if thumbnail {
			kind = "thumbnail"
		}
		_, f, ok := s.mediaReady(w, r, m, b, thumbnail)
		if !ok {
			return
		}
		if fb.Redirect {
			s.redirect(w, b, s.cdnURL(b, kind, m.ID, 0, thumbQuery(q)), false)
			return
		}
		var loc *string
		switch {
		case fb.LocationURL != nil:
			loc = fb.LocationURL
		case fb.Location:
			u := s.cdnURL(b, kind, m.ID, 0, thumbQuery(q))
			loc = &u
		}
		s.writeFederationAnswer(w, r, fb, m, b, f != nil, kind, loc)
	}
}

// writeFederationAnswer writes the multipart answer: the metadata part, then the Location part when
// loc is non-nil, else the bytes (with the media's body fault unless noFault is set).
func (s *Server) writeFederationAnswer(w http.ResponseWriter, r *http.Request, fb FederationBehavior, m *Media, b *behaviorState, noFault bool, kind string, loc *string) {
	s.mu.Lock()
	content, size, contentType := m.content, m.size, m.ContentType
	s.mu.Unlock()
	if kind == "thumbnail" && m.thumbnail != nil {
		content, size = bytesReaderAt(m.thumbnail), int64(len(m.thumbnail))
	}
	if loc == nil && !noFault {
		f := b.fault(RoleHomeserver, true, func(f *Fault) bool { return f.Range == RangeNone })
		w = s.newBodyWriter(w, r, b, f, size)
	}
	mw := multipart.NewWriter(w)
	ct := "multipart/mixed; boundary=" + mw.Boundary()
	if fb.ContentType != "" {
		ct = fb.ContentType
	}
	w.Header().Set("Content-Type", ct)
	w.WriteHeader(http.StatusOK)
	meta := []byte("{}")
	if pad := fb.MetadataSize - len(`{"pad":""}`); pad > 0 {
		meta = []byte(`{"pad":"` + strings.Repeat("x", pad) + `"}`)
	}
	part, err := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {"application/json"}})
	if err != nil {
		return
	}
	if _, err := part.Write(meta); err != nil {
		return
	}
	if loc != nil {
		if _, err := mw.CreatePart(textproto.MIMEHeader{"Location": {*loc}}); err != nil {
			return
		}
		mw.Close()
		return
	}
	h := textproto.MIMEHeader{"Content-Type": {contentType}}
	if name := s.fileName(m); name != "" {
		h.Set("Content-Disposition", mime.FormatMediaType("inline", map[string]string{"filename": name}))
	}
	if fb.PartContentLength {
		h.Set("Content-Length", strconv.FormatInt(size, 10))
	}
	part, err = mw.CreatePart(h)
	if err != nil {
		return
	}
	if _, err := io.Copy(part, io.NewSectionReader(content, 0, size)); err != nil {
		return
	}
	mw.Close()
}
