package testserver

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"
)

// Matrix errors the server writes that mautrix has no value for.
var (
	errNotYetUploaded   = mautrix.RespError{ErrCode: "M_NOT_YET_UPLOADED", StatusCode: http.StatusGatewayTimeout}
	errCannotOverwrite  = mautrix.RespError{ErrCode: "M_CANNOT_OVERWRITE_MEDIA", StatusCode: http.StatusConflict}
	errMaxThumbnailSide = 10000
	defaultTimeoutMS    = 20000
	maxTimeoutMS        = 120000
	defaultURLTTL       = 5 * time.Minute
	slowChunk           = 16 << 10
	cdnPrefix           = "/_cdn/"
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
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		mautrix.MUnrecognized.WithMessage("Unrecognized request").Write(w)
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		role := RoleHomeserver
		if strings.HasPrefix(r.URL.Path, cdnPrefix) {
			role = RoleCDN
		}
		done := s.record(r, scheme, role)
		sw := &statusWriter{ResponseWriter: w, done: done}
		defer func() {
			if sw.status == 0 {
				done(0)
			}
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

// thumbParams validates the thumbnail query and returns a key naming the size.
func thumbParams(q url.Values) (string, error) {
	var size [2]int
	for i, name := range []string{"width", "height"} {
		v := q.Get(name)
		if v == "" {
			return "", fmt.Errorf("missing %s", name)
		}
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 || n > errMaxThumbnailSide {
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
				mautrix.MInvalidParam.WithMessage("Unknown parameter allow_redirect").Write(w)
				return
			case b.Param == ParamBoolean && vals[0] != "true" && vals[0] != "false":
				mautrix.MUnknown.WithMessage("allow_redirect must be a boolean").WithStatus(http.StatusBadRequest).Write(w)
				return
			}
			asked = vals[0] == "true"
		}
		thumbKey := ""
		if thumbnail {
			var err error
			if thumbKey, err = thumbParams(q); err != nil {
				mautrix.MUnknown.WithMessage("Bad thumbnail request: %v", err).WithStatus(http.StatusBadRequest).Write(w)
				return
			}
		}
		timeout := defaultTimeoutMS
		if v := q.Get("timeout_ms"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				mautrix.MInvalidParam.WithMessage("Invalid timeout_ms").Write(w)
				return
			}
			timeout = min(n, maxTimeoutMS)
		}
		if m == nil {
			mautrix.MNotFound.WithMessage("Media not found").Write(w)
			return
		}
		f := b.fault(RoleHomeserver)
		if s.applyFault(w, r, f, RoleHomeserver) {
			return
		}
		if !waitReady(r.Context(), m, time.Duration(timeout)*time.Millisecond) {
			if r.Context().Err() == nil {
				errNotYetUploaded.WithMessage("Media has not been uploaded yet").Write(w)
			}
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
			if b.Location != nil {
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
		s.serve(w, r, m, b, f, kind, fileName)
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

func (b *behaviorState) chain() []OriginName {
	if len(b.Chain) == 0 {
		return []OriginName{OriginCDN}
	}
	return b.Chain
}

// cdnURL builds the signed URL of hop number hop of the redirect chain.
func (s *Server) cdnURL(b *behaviorState, kind, mediaID string, hop int, extra url.Values) string {
	chain := b.chain()
	origin := s.origins[chain[hop%len(chain)]]
	ttl := b.URLTTL
	if ttl == 0 {
		ttl = defaultURLTTL
	}
	exp := time.Now().Add(ttl)
	if b.expireNext() {
		exp = time.Now().Add(-time.Minute)
	}
	q := url.Values{}
	for k, v := range extra {
		q[k] = v
	}
	q.Set("hop", strconv.Itoa(hop))
	q.Set("exp", strconv.FormatInt(exp.Unix(), 10))
	q.Set("sig", s.sign(kind, mediaID, q.Get("hop"), q.Get("exp")))
	return origin + cdnPrefix + kind + "/" + url.PathEscape(s.ServerName) + "/" + url.PathEscape(mediaID) + "?" + q.Encode()
}

func (s *Server) sign(parts ...string) string {
	mac := hmac.New(sha256.New, s.secret)
	mac.Write([]byte(strings.Join(parts, "\x00")))
	return hex.EncodeToString(mac.Sum(nil)[:16])
}

func (s *Server) cdn(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	kind, mediaID := r.PathValue("kind"), r.PathValue("mediaID")
	if !hmac.Equal([]byte(q.Get("sig")), []byte(s.sign(kind, mediaID, q.Get("hop"), q.Get("exp")))) {
		writeXMLError(w, http.StatusForbidden, "SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided.")
		return
	}
	if exp, err := strconv.ParseInt(q.Get("exp"), 10, 64); err != nil || time.Now().Unix() > exp {
		writeXMLError(w, http.StatusForbidden, "AccessDenied", "Request has expired")
		return
	}
	m := s.lookup(mediaID)
	if m == nil || r.PathValue("serverName") != s.ServerName || (kind != "download" && kind != "thumbnail") {
		writeXMLError(w, http.StatusNotFound, "NoSuchKey", "The specified key does not exist.")
		return
	}
	b := s.behaviorFor(m)
	if b.CDNRejectsAuth && r.Header.Get("Authorization") != "" {
		writeXMLError(w, http.StatusBadRequest, "InvalidArgument", "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query string parameter or the Authorization header should be specified")
		return
	}
	f := b.fault(RoleCDN)
	if s.applyFault(w, r, f, RoleCDN) {
		return
	}
	hop, _ := strconv.Atoi(q.Get("hop"))
	if hop+1 < len(b.chain()) || b.Loop {
		extra := thumbQuery(q)
		s.redirect(w, b, s.cdnURL(b, kind, mediaID, (hop+1)%len(b.chain()), extra), false)
		return
	}
	s.serve(w, r, m, b, f, kind, s.fileName(m))
}

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

func (s *Server) fileName(m *Media) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return m.FileName
}

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

// SignedURL returns a fresh signed URL for the content of uri at the named origin, as the
// homeserver would redirect to it: for pointing another server (a media proxy, say) at the CDN.
func (s *Server) SignedURL(name OriginName, mediaID string) string {
	m := s.lookup(mediaID)
	b := s.behaviorFor(m)
	st := newBehaviorState(b.Behavior)
	st.Chain = []OriginName{name}
	return s.cdnURL(st, "download", mediaID, 0, nil)
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
