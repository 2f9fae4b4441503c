package testserver

// The CDN origins: signed, expiring URLs, redirect chains between origins, and serving the objects.

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

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
	f, answered := s.answerFault(w, r, b, RoleCDN)
	if answered {
		return
	}
	hop, _ := strconv.Atoi(q.Get("hop"))
	if hop+1 < len(b.chain()) || b.Loop {
		extra := thumbQuery(q)
		s.redirect(w, b, s.cdnURL(b, kind, mediaID, (hop+1)%len(b.chain()), extra), false)
		return
	}
	s.serve(w, r, m, b, RoleCDN, f != nil, kind, s.fileName(m))
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
