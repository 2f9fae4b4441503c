package mediaclient

import (
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/idna"

	"github.com/mxfetch/mxfetch/internal/filename"
)

// This file holds the redirect chain: one request per hop. Go's http.Client is not used to follow redirects: it forwards
// credentials to subdomains, to other ports and over an https→http switch. Each hop is a request of
// its own, and credentials go only where rule 4 of the design allows: the homeserver's exact origin,
// and only until the chain has left it.

// maxLocationLen bounds a Location header; signed URLs of real object stores stay far below it.
const maxLocationLen = 8 << 10

// maxRedirectBody bounds how much of a redirect answer's body is drained to reuse the connection.
const maxRedirectBody = 16 << 10

// origin is a normalised (scheme, host, port) triple.
type origin struct {
	scheme, host, port string
}

// originOf normalises the origin of u: scheme and host lower-cased, a trailing dot removed,
// internationalised names in their ASCII form, IP literals in canonical form and the default port
// made explicit.
func originOf(u *url.URL) origin {
	o := origin{scheme: strings.ToLower(u.Scheme), port: u.Port()}
	host := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
	if addr, err := netip.ParseAddr(host); err == nil {
		host = addr.String()
	} else if ascii, err := idna.Lookup.ToASCII(host); err == nil {
		host = ascii
	}
	o.host = host
	if o.port == "" {
		switch o.scheme {
		case "http":
			o.port = "80"
		case "https":
			o.port = "443"
		}
	} else if n, err := strconv.Atoi(o.port); err == nil {
		o.port = strconv.Itoa(n)
	}
	return o
}

// String returns scheme://host[:port], leaving out the scheme's default port.
func (o origin) String() string {
	host := o.host
	if strings.Contains(host, ":") {
		host = "[" + strings.Replace(host, "%", "%25", 1) + "]"
	}
	if (o.scheme == "http" && o.port == "80") || (o.scheme == "https" && o.port == "443") {
		return o.scheme + "://" + host
	}
	return o.scheme + "://" + host + ":" + o.port
}

// resolveLocation validates the Location values of a redirect answer and resolves the target
// against the current URL. The fragment is dropped.
func resolveLocation(cur *url.URL, values []string) (*url.URL, error) {
	if len(values) == 0 {
		return nil, &RedirectError{Reason: "no Location header"}
	}
	loc := values[0]
	for _, v := range values[1:] {
		if v != loc {
			return nil, &RedirectError{Reason: "conflicting Location headers"}
		}
	}
	loc = strings.Trim(loc, " ")
	if loc == "" {
		return nil, &RedirectError{Reason: "empty Location header"}
	}
	if len(loc) > maxLocationLen {
		return nil, &RedirectError{Reason: fmt.Sprintf("Location longer than %d bytes", maxLocationLen)}
	}
	for i := 0; i < len(loc); i++ {
		if c := loc[i]; c < 0x20 || c == 0x7f {
			return nil, &RedirectError{Reason: "control character in Location"}
		}
	}
	ref, err := url.Parse(loc)
	if err != nil {
		return nil, &RedirectError{Reason: "malformed Location"}
	}
	next := cur.ResolveReference(ref)
	next.Fragment, next.RawFragment = "", ""
	switch strings.ToLower(next.Scheme) {
	case "http", "https":
	default:
		return nil, &RedirectError{Reason: fmt.Sprintf("scheme %q is not http or https", next.Scheme), Location: redactURL(next)}
	}
	if next.User != nil {
		return nil, &RedirectError{Reason: "credentials (userinfo) in Location", Location: redactURL(next)}
	}
	if next.Hostname() == "" {
		return nil, &RedirectError{Reason: "no host in Location", Location: redactURL(next)}
	}
	if numericHost(next.Hostname()) {
		return nil, &RedirectError{Reason: "host is a number but not an IP address in standard form", Location: redactURL(next)}
	}
	return next, nil
}

// numericHost reports whether host is one that a browser (the WHATWG URL parser) or a proxy would
// read as an IPv4 address but Go does not: "2130706433", "0x7f.1", "127.1", "0177.0.0.1". Such
// hosts are refused, so that no component reads the target differently from the guard.
func numericHost(host string) bool {
	if _, err := netip.ParseAddr(host); err == nil {
		return false // standard form (netip refuses leading zeros)
	}
	host = strings.TrimSuffix(host, ".")
	last := host[strings.LastIndexByte(host, '.')+1:]
	if last == "" {
		return false
	}
	if h, ok := strings.CutPrefix(strings.ToLower(last), "0x"); ok {
		last = h
		for _, c := range last {
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
				return false
			}
		}
		return true
	}
	for _, c := range last {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// redactURL renders u without userinfo, query or fragment, for errors and logs: signed URLs carry
// their credentials in the query.
func redactURL(u *url.URL) string {
	r := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path, RawPath: u.RawPath}
	s := r.String()
	if u.RawQuery != "" {
		s += "?…"
	}
	return s
}

// isFollowed reports whether a status is a redirect the client follows (as GET).
func isFollowed(status int) bool {
	switch status {
	case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther,
		http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		return true
	}
	return false
}

// Hop is one request sent while fetching a media item, and what came of it.
type Hop struct {
	// Step says why the request was sent.
	Step Step
	// Attempt is the try of the chain this hop belongs to: 0 for the first, n for the nth retry.
	Attempt int
	// Method is the request method (GET).
	Method string
	// Origin is scheme://host[:port] of the server asked.
	Origin string
	// Path is the request's escaped path, without the query (which may hold a signature).
	Path string
	// Status is the HTTP status code of the answer, or 0 when there was none (Err says why).
	Status int
	// Credentials reports whether the request carried the access token or other credentials.
	Credentials bool
	// Err is why there was no answer (a connection error, a stall, a refused address), or nil.
	Err error
}

// chainRules are the rules the chain applies to the hops of the request on its way. The download
// owns them; whoever plans a request sets them (Client.chainRules for a client download).
type chainRules struct {
	homeGuard    guard // the guard on hops to the download's home origin
	awayGuard    guard // the guard on hops to any other origin
	maxRedirects int   // redirects followed; one more is ErrTooManyRedirects
	reResolve    bool  // a target that refuses the request is asked for again from the start
	closeConns   bool  // connections are closed after use, so that a hop under a stricter guard never reuses one

	// homeHost is the Host header of hops to the home origin, or "" for the URL's host: a remote
	// server found by server discovery is addressed by the name discovery gave.
	homeHost string
}

// chainRules returns the rules of a client download: the homeserver's class is learned and other
// origins are checked against it, unless Options.AllowPrivateRedirects turns the guard off.
func (c *Client) chainRules() chainRules {
	r := chainRules{homeGuard: guardHome, awayGuard: guardRelative, maxRedirects: c.maxRedirects, reResolve: true}
	if c.opts.AllowPrivateRedirects {
		r.homeGuard, r.awayGuard = guardNone, guardNone
	}
	return r
}

// guardFor returns the guard for a hop to o.
func (d *download) guardFor(o origin) guard {
	if o == d.home {
		return d.rules.homeGuard
	}
	return d.rules.awayGuard
}

// RoundTrip runs one whole redirect chain for req, which must be addressed to the homeserver: it is
// the transport of the download's go-retryablehttp client, which starts it again at the homeserver
// on every retry, since redirect targets are often short-lived signed URLs. Credentials go only to the
// homeserver's exact origin (the download's home), and only until the chain has left it.
func (d *download) RoundTrip(req *http.Request) (*http.Response, error) {
	c := d.c
	ctx := req.Context()
	cacheable := d.cacheKey != "" || d.keyURL != nil
	cur := req.URL
	left := false // the chain has left the homeserver's origin
	redirects := 0
	reResolved := false
	step := d.step
	if d.attempt > 0 {
		step = StepRetry
	}
	var cached cachedTarget // a remembered 308 target: start there
	var fromCache bool
	if cacheable && c.cache.len() > 0 {
		cached, fromCache = c.cache.get(d.redirectKey())
	}
	if fromCache {
		cur, left, step = cached.url, cached.left, StepCached
	}
	var permanent *cachedTarget // where the leading 308s of this chain led
	allPermanent := true
	guard := &chainGuard{}
	restart := func(s Step) {
		cur, left, redirects, permanent, allPermanent, step, guard = req.URL, false, 0, nil, true, s, &chainGuard{}
	}
	for {
		o := originOf(cur)
		if o != d.home {
			left = true
		}
		d.fromHome = !left
		creds := !left
		hopReq := d.hopRequest(req, cur, creds)
		if o == d.home {
			hopReq.Host = d.rules.homeHost
		}
		if d.rules.closeConns {
			hopReq.Close = true
		}
		hop := Hop{Step: step, Attempt: d.attempt, Method: hopReq.Method, Origin: o.String(), Path: cur.EscapedPath(), Credentials: creds && c.hasCredentials(hopReq.Header)}
		hopCtx, err := c.guardContext(hopReq, d.guardFor(o), guard)
		var resp *http.Response
		if err == nil {
			wait := time.Duration(0)
			if o == d.home {
				wait = d.serverWait
			}
			resp, err = c.exchangeWith(hopReq, true, hopCtx, wait, &d.timer)
		}
		if resp != nil {
			hop.Status = resp.StatusCode
			d.final = o
		} else {
			hop.Err = err
		}
		d.addHop(hop)
		if fromCache {
			fromCache = false
			if err != nil || resp.StatusCode < 200 || resp.StatusCode >= 400 {
				// The remembered target failed: forget it and ask the homeserver.
				c.debug(ctx, "remembered redirect target failed; asking the homeserver")
				if resp != nil {
					drain(resp)
				}
				c.cache.remove(d.redirectKey())
				restart(StepRequest)
				continue
			}
		}
		if err != nil {
			return nil, err
		}
		if left && !reResolved && d.rules.reResolve && reResolveStatus(resp.StatusCode) {
			// A stale or refused target URL: ask the homeserver once more for a fresh one.
			if c.debugging(ctx) {
				c.debug(ctx, "re-resolving through the homeserver", "status", resp.StatusCode, "origin", o.String())
			}
			drain(resp)
			reResolved = true
			restart(StepReResolve)
			continue
		}
		if !isFollowed(resp.StatusCode) {
			if permanent != nil && resp.StatusCode >= 200 && resp.StatusCode < 300 {
				c.cache.add(d.redirectKey(), *permanent)
			}
			return resp, nil
		}
		if redirects >= d.rules.maxRedirects {
			drain(resp)
			return nil, fmt.Errorf("%w (more than %d)", ErrTooManyRedirects, d.rules.maxRedirects)
		}
		next, err := resolveLocation(cur, resp.Header.Values("Location"))
		if name := filename.FromContentDisposition(resp.Header.Get("Content-Disposition")); name != "" {
			d.disposition = name
		}
		drain(resp)
		if err != nil {
			return nil, err
		}
		if strings.EqualFold(cur.Scheme, "https") && strings.EqualFold(next.Scheme, "http") && !c.opts.AllowInsecureRedirects {
			return nil, &RedirectError{Reason: "https to http downgrade", Location: redactURL(next)}
		}
		if allPermanent && resp.StatusCode == http.StatusPermanentRedirect && cacheable {
			permanent = &cachedTarget{url: next, left: left || originOf(next) != d.home}
		} else {
			allPermanent = false
		}
		redirects++
		if c.debugging(ctx) {
			c.debug(ctx, "following redirect", "status", resp.StatusCode, "to", redactURL(next))
		}
		cur, step = next, StepRedirect
	}
}

// hopRequest returns the request of one hop to u: a shallow copy of req, whose headers it shares
// unless some must go (a Referer; the credentials when creds is false), and then a copy without
// them — or, for headers that are the Client's own, the Client's copy without credentials. Sharing
// is safe only below a transport that never changes a request's headers, as net/http's does; under
// any other (one that adds a header in breach of the RoundTripper contract would otherwise add it to
// every later hop, or to every download), each hop gets a copy of its own.
func (d *download) hopRequest(req *http.Request, u *url.URL, creds bool) *http.Request {
	c := d.c
	hopReq := new(http.Request)
	*hopReq = *req
	hopReq.URL, hopReq.Host = u, ""
	switch {
	case !c.stdTransport:
	case len(req.Header["Referer"]) == 0 && (creds || !c.hasCredentials(req.Header)):
		return hopReq
	case !creds && d.baseHeader:
		hopReq.Header = c.publicHeader
		return hopReq
	}
	h := make(http.Header, len(req.Header))
	for k, v := range req.Header {
		if k == "Referer" || !creds && slices.Contains(c.credentialHeaders, k) {
			continue
		}
		h[k] = v
	}
	hopReq.Header = h
	return hopReq
}

func (c *Client) hasCredentials(h http.Header) bool {
	for _, k := range c.credentialHeaders {
		if len(h[k]) > 0 {
			return true
		}
	}
	return false
}

// drain reads what is left of a small body and closes it, so that the connection can be reused.
func drain(resp *http.Response) {
	io.Copy(io.Discard, io.LimitReader(resp.Body, maxRedirectBody))
	resp.Body.Close()
}
