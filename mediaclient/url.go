package mediaclient

import (
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"maunium.net/go/mautrix/id"
)

// ParseURI parses and validates an mxc:// content URI. Server names must follow the spec's grammar
// (a DNS name, an IPv4 address or a bracketed IPv6 address, with an optional port) and media IDs may
// only hold A-Z, a-z, 0-9, '_' and '-'; anything else, a '/', '..' or an empty part included, is an
// error wrapping ErrInvalidURI.
//
// See https://spec.matrix.org/v1.11/client-server-api/#matrix-content-mxc-uris
func ParseURI(s string) (id.ContentURI, error) {
	rest, ok := strings.CutPrefix(s, "mxc://")
	if !ok {
		return id.ContentURI{}, fmt.Errorf("%w %q: not an mxc:// URI", ErrInvalidURI, truncateForError(s))
	}
	server, media, ok := strings.Cut(rest, "/")
	if !ok {
		return id.ContentURI{}, fmt.Errorf("%w %q: no media ID", ErrInvalidURI, truncateForError(s))
	}
	uri := id.ContentURI{Homeserver: server, FileID: media}
	if err := ValidateURI(uri); err != nil {
		return id.ContentURI{}, err
	}
	return uri, nil
}

// ValidateURI checks a content URI as ParseURI does.
func ValidateURI(uri id.ContentURI) error {
	if err := validServerName(uri.Homeserver); err != nil {
		return fmt.Errorf("%w %q: %s", ErrInvalidURI, truncateForError(uri.String()), err)
	}
	if uri.FileID == "" {
		return fmt.Errorf("%w %q: empty media ID", ErrInvalidURI, truncateForError(uri.String()))
	}
	if len(uri.FileID) > 255 {
		return fmt.Errorf("%w: media ID longer than 255 bytes", ErrInvalidURI)
	}
	for _, c := range []byte(uri.FileID) {
		if !isMediaIDByte(c) {
			return fmt.Errorf("%w %q: media ID has the character %q", ErrInvalidURI, truncateForError(uri.String()), c)
		}
	}
	return nil
}

func isMediaIDByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-'
}

// validServerName checks the spec's server name grammar: host [":" port].
func validServerName(s string) error {
	if s == "" {
		return fmt.Errorf("empty server name")
	}
	if len(s) > 255 {
		return fmt.Errorf("server name longer than 255 bytes")
	}
	host, port := s, ""
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return fmt.Errorf("unterminated IPv6 literal")
		}
		host, port = s[1:end], s[end+1:]
		if ip := net.ParseIP(host); ip == nil || !strings.Contains(host, ":") {
			return fmt.Errorf("bad IPv6 literal")
		}
		if port != "" && port[0] != ':' {
			return fmt.Errorf("garbage after IPv6 literal")
		}
		port = strings.TrimPrefix(port, ":")
		if strings.HasPrefix(s[end+1:], ":") && port == "" {
			return fmt.Errorf("empty port")
		}
	} else {
		if i := strings.LastIndexByte(s, ':'); i >= 0 {
			host, port = s[:i], s[i+1:]
			if port == "" {
				return fmt.Errorf("empty port")
			}
		}
		if host == "" {
			return fmt.Errorf("empty host")
		}
		for _, label := range strings.Split(host, ".") {
			if label == "" {
				return fmt.Errorf("empty label in host")
			}
		}
		for _, c := range []byte(host) {
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.') {
				return fmt.Errorf("host has the character %q", c)
			}
		}
	}
	if port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 || len(port) > 5 {
			return fmt.Errorf("bad port %q", port)
		}
	}
	return nil
}

func truncateForError(s string) string {
	if len(s) > 100 {
		return s[:100] + "…"
	}
	return s
}

// request is what one call asks for, before the endpoint family is chosen.
type request struct {
	uri       id.ContentURI
	thumbnail *ThumbnailOptions
	fileName  string
	query     url.Values // extra query parameters
	offset    int64      // start the body here (Range)
	ifRange   string     // only if the media still has this validator (If-Range)
	limit     int64      // the size limit, 0 for none
	noParam   bool       // the caller asked for allow_redirect=false: it is sent as asked, never true

	// Set by MediaTransport, which downloads for requests it was given; zero for the Client's own
	// calls.
	api    API         // the endpoint family, fixed: it never falls back ("" lets the Client choose)
	header http.Header // the headers of the homeserver request, credentials included (nil: the Client's)
	scope  string      // keeps apart the 308 cache entries of calls made with different credentials
	method string      // HEAD for a HEAD request; "" is GET
}

// op names the operation for errors.
func (r *request) op() string {
	if r.thumbnail != nil {
		return "thumbnail"
	}
	return "download"
}

// buildURL returns the URL of the first request for r on the given endpoint family.
func (c *Client) buildURL(r *request, api API, allowRedirect bool, timeoutMS int64) *url.URL {
	u := *c.base
	prefix := "/_matrix/media/v3/"
	if api == APIV1 {
		prefix = "/_matrix/client/v1/media/"
	}
	kind := "download/"
	if r.thumbnail != nil {
		kind = "thumbnail/"
	}
	raw := c.base.EscapedPath() + prefix + kind + url.PathEscape(r.uri.Homeserver) + "/" + url.PathEscape(r.uri.FileID)
	if r.thumbnail == nil && r.fileName != "" {
		raw += "/" + url.PathEscape(r.fileName)
	}
	u.Path, _ = url.PathUnescape(raw)
	u.RawPath = raw
	q := r.params()
	if allowRedirect {
		q = append(q, "allow_redirect=true")
	} else if r.noParam {
		q = append(q, "allow_redirect=false")
	}
	if timeoutMS > 0 {
		q = append(q, "timeout_ms="+strconv.FormatInt(timeoutMS, 10))
	}
	u.RawQuery = strings.Join(q, "&")
	return &u
}

// withQuery returns q with the Client's own query parameters (an appservice's user_id and device_id,
// set by Wrap) added where q does not set them, as mautrix adds them before the caller's.
func (c *Client) withQuery(q url.Values) url.Values {
	if len(c.query) == 0 {
		return q
	}
	m := make(url.Values, len(q)+len(c.query))
	for k, v := range c.query {
		m[k] = v
	}
	for k, v := range q {
		m[k] = v
	}
	return m
}

// callerNoParam reports whether a caller's query asks for allow_redirect=false.
func callerNoParam(q url.Values) bool {
	v, ok := q["allow_redirect"]
	return ok && len(v) > 0 && v[0] == "false"
}

// params returns the query parameters of r that every endpoint shares, escaped: the thumbnail's
// size, method and animation, then the caller's extra ones but those the client sets itself
// (allow_redirect, timeout_ms). They come in the order matrix-js-sdk uses, so that
// caches keyed on the URL agree.
func (r *request) params() []string {
	var q []string
	if t := r.thumbnail; t != nil {
		q = append(q, "width="+strconv.Itoa(t.Width), "height="+strconv.Itoa(t.Height))
		if t.Method != "" {
			q = append(q, "method="+url.QueryEscape(t.Method))
		}
		if t.Animated {
			q = append(q, "animated=true")
		}
	}
	for _, k := range slices.Sorted(maps.Keys(r.query)) {
		switch k {
		case "allow_redirect", "timeout_ms":
			continue // the Client's to set
		case "width", "height", "method", "animated":
			if r.thumbnail != nil {
				continue // ThumbnailOptions says
			}
		}
		for _, v := range r.query[k] {
			q = append(q, url.QueryEscape(k)+"="+url.QueryEscape(v))
		}
	}
	return q
}
