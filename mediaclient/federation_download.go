package mediaclient

// This file holds the plan of a federation call (FederationClient, federation.go): the signed
// request to the remote server's federation media endpoint, the Location part followed through the
// download's chain, the one re-request when it fails, and the legacy endpoint for servers that lack
// federation media. Each request sets the chain's rules for its own hops; the download, its chain,
// its resuming body and its errors are those of a client download.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// fedCall is the federation plan of one call. The download owns it.
type fedCall struct {
	f      *FederationClient
	dest   string          // the remote server's name
	base   *url.URL        // https://host:port of its federation API
	host   string          // the Host header of requests to base's origin (server discovery's)
	dial   *dialOverride   // where to connect instead of base's host, or nil
	legacy bool            // the remote server lacks federation media: the legacy endpoint is asked
	meta   json.RawMessage // the metadata part of the first federation answer
}

// errFederationUnrecognized is the remote server answering 404/405 M_UNRECOGNIZED on the federation
// media endpoint. It never leaves fedDo.
var errFederationUnrecognized = errors.New("federation media endpoint unrecognized")

// fedDo is do for a federation call: it asks for the media from offset on and returns a 2xx answer
// whose body is the media's bytes (an inline media part, or the answer of the Location's chain), or
// the bare cause of the failure:
//   - the federation endpoint answered 404/405 M_UNRECOGNIZED: the legacy endpoint, remembered for
//     the remote server for a while;
//   - the Location failed (no connection, a stall, an error status): the federation endpoint once
//     more, for a fresh Location. A Location refused by policy is final.
//
// Offsets reach a Location as Range; an inline answer is always the whole media, which the body
// skips forward (the bytes behind an mxc URI never change).
func (d *download) fedDo(offset int64, ifRange string) (*http.Response, error) {
	fc := d.fed
	reAsked := false
	for {
		if fc.legacy {
			return d.legacyRequest(offset, ifRange)
		}
		inline, loc, err := d.federationRequest()
		if errors.Is(err, errFederationUnrecognized) {
			fc.legacy, d.api = true, APIV3
			fc.f.rememberUnrecognized(fc.dest)
			d.fallback(FallbackFederationUnrecognized, nil)
			continue
		}
		if err != nil {
			return nil, err
		}
		if inline != nil {
			return inline, nil
		}
		resp, err := d.followLocation(loc, offset, ifRange)
		if err == nil && resp.StatusCode >= 200 && resp.StatusCode < 300 {
			return resp, nil
		}
		if err != nil && (errors.Is(err, ErrRedirectRefused) || errors.Is(err, ErrTooManyRedirects) || d.ctx.Err() != nil) {
			return nil, err
		}
		var cause error
		if err != nil {
			cause = fmt.Errorf("location %s: %w", redactURL(loc), err)
		} else {
			cause = d.c.httpError(resp)
			if resp.StatusCode >= 300 && resp.StatusCode < 400 {
				cause = fmt.Errorf("%w %d: %w", ErrUnexpectedStatus, resp.StatusCode, cause)
			}
			cause = fmt.Errorf("location target %s: %w", d.final, cause)
		}
		if reAsked {
			return nil, cause
		}
		reAsked = true
		d.step = StepReResolve
		d.c.debug(d.ctx, "location failed; asking the remote server again", "cause", cause.Error())
	}
}

// serverRules are the chain's rules for a request to the remote server: its own origin under the
// servers' guard, any other under the Locations' guard.
func (fc *fedCall) serverRules(maxRedirects int, reResolve bool) chainRules {
	return chainRules{homeGuard: fc.f.serverGuard, awayGuard: fc.f.locationGuard, maxRedirects: maxRedirects,
		reResolve: reResolve, closeConns: fc.f.closeServerConns, homeHost: fc.host}
}

// context returns ctx with the dial override that reaches the remote server, if it needs one: every
// request that may have a hop on the remote server's origin carries it, so that such a hop connects
// where server discovery said, whoever named the URL.
func (fc *fedCall) context(ctx context.Context) context.Context {
	if fc.dial == nil {
		return ctx
	}
	return context.WithValue(ctx, dialOverrideKey{}, fc.dial)
}

// federationRequest sends the signed request to the federation media endpoint and reads its answer
// up to the media part: it returns either an answer whose body is the inline media part, or the
// Location to follow. The federation endpoint may not redirect (spec v1.11), so a 3xx is refused.
func (d *download) federationRequest() (*http.Response, *url.URL, error) {
	fc, c := d.fed, d.c
	ms := c.timeoutMS(time.Time{})
	u := fc.endpointURL(d.r, ms)
	auth, err := fc.f.authorization(fc.dest, u.RequestURI())
	if err != nil {
		return nil, nil, err
	}
	h := http.Header{}
	h.Set("User-Agent", c.opts.UserAgent)
	h.Set("Authorization", auth)
	d.serverWait = time.Duration(ms) * time.Millisecond
	d.cacheKey = ""
	d.rules = fc.serverRules(0, false)
	d.retry.RetryMax = c.maxRetries
	resp, err := d.sendContext(fc.context(d.ctx), u.String(), h)
	if errors.Is(err, ErrTooManyRedirects) {
		return nil, nil, &RedirectError{Reason: "the federation media endpoint answered with a redirect, which the spec forbids"}
	}
	if err != nil {
		return nil, nil, err
	}
	if resp.StatusCode < 200 || resp.StatusCode >= 300 {
		if (resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusMethodNotAllowed) && errcode(resp) == "M_UNRECOGNIZED" {
			drain(resp)
			return nil, nil, errFederationUnrecognized
		}
		var final error = c.httpError(resp)
		if resp.StatusCode < 400 {
			final = fmt.Errorf("%w %d: %w", ErrUnexpectedStatus, resp.StatusCode, final)
		}
		return nil, nil, final
	}
	ans, err := readMultipart(resp, headLimitsOf(&c.opts))
	if err != nil {
		return nil, nil, err
	}
	if fc.meta == nil {
		fc.meta = ans.meta
	}
	if ans.location == nil {
		return ans.inline, nil, nil
	}
	loc, err := resolveLocation(u, ans.location)
	if err == nil && strings.EqualFold(loc.Scheme, "http") && !c.opts.AllowInsecureRedirects {
		err = &RedirectError{Reason: "https to http downgrade", Location: redactURL(loc)}
	}
	if err != nil {
		return nil, nil, err
	}
	c.debug(d.ctx, "following a federation Location", "to", redactURL(loc))
	return nil, loc, nil
}

// followLocation requests a Location part's target, from offset on, through the chain: no
// credential on any hop, the Locations' guard on every origin (the remote server's own included),
// the redirects after it bounded, and no retry of its own: a Location that fails is asked for again
// through the federation endpoint, which hands out a fresh one. A hop on the remote server's own
// origin (a relative Location, say) reaches it as the federation request did: at the address
// server discovery found, with its Host header.
func (d *download) followLocation(loc *url.URL, offset int64, ifRange string) (*http.Response, error) {
	fc, c := d.fed, d.c
	h := http.Header{}
	h.Set("User-Agent", c.opts.UserAgent)
	rangeHeaders(h, offset, ifRange)
	d.serverWait = 0
	d.cacheKey = ""
	d.rules = chainRules{homeGuard: fc.f.locationGuard, awayGuard: fc.f.locationGuard, maxRedirects: c.maxRedirects, homeHost: fc.host}
	d.retry.RetryMax = 0
	d.step = StepLocation
	return d.sendContext(fc.context(d.ctx), loc.String(), h)
}

// legacyRequest asks the remote server's legacy media endpoint, /_matrix/media/v3/download (or
// /thumbnail) with allow_remote=false and no credential, as the spec tells servers to when the
// federation endpoint is unrecognized. A redirect is followed under the Locations' guard.
func (d *download) legacyRequest(offset int64, ifRange string) (*http.Response, error) {
	fc, c := d.fed, d.c
	ms := c.timeoutMS(time.Time{})
	u := fc.legacyURL(d.r, ms)
	h := http.Header{}
	h.Set("User-Agent", c.opts.UserAgent)
	rangeHeaders(h, offset, ifRange)
	d.serverWait = time.Duration(ms) * time.Millisecond
	d.cacheKey = ""
	d.rules = fc.serverRules(c.maxRedirects, true)
	d.retry.RetryMax = c.maxRetries
	resp, err := d.sendContext(fc.context(d.ctx), u.String(), h)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return resp, nil
	}
	var final error = c.httpError(resp)
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		final = fmt.Errorf("%w %d: %w", ErrUnexpectedStatus, resp.StatusCode, final)
	}
	if !d.fromHome {
		final = fmt.Errorf("redirect target %s: %w", d.final, final)
	}
	return nil, final
}

// rangeHeaders asks for the media from offset on.
func rangeHeaders(h http.Header, offset int64, ifRange string) {
	if offset > 0 {
		h.Set("Range", "bytes="+strconv.FormatInt(offset, 10)+"-")
		if ifRange != "" {
			h.Set("If-Range", ifRange)
		}
	}
}

// endpointURL returns the URL of the federation media endpoint for r:
// /_matrix/federation/v1/media/download/{mediaId} or /thumbnail/{mediaId}?width=…&height=….
func (fc *fedCall) endpointURL(r *request, timeoutMS int64) *url.URL {
	kind := "download"
	if r.thumbnail != nil {
		kind = "thumbnail"
	}
	q := r.params()
	if timeoutMS > 0 {
		q = append(q, "timeout_ms="+strconv.FormatInt(timeoutMS, 10))
	}
	return fc.url("/_matrix/federation/v1/media/"+kind+"/"+url.PathEscape(r.uri.FileID), q)
}

// legacyURL returns the URL of the legacy media endpoint for r, with allow_remote=false.
func (fc *fedCall) legacyURL(r *request, timeoutMS int64) *url.URL {
	kind := "download"
	if r.thumbnail != nil {
		kind = "thumbnail"
	}
	var q []string
	for _, p := range r.params() {
		if !strings.HasPrefix(p, "allow_remote=") {
			q = append(q, p)
		}
	}
	q = append(q, "allow_remote=false")
	if timeoutMS > 0 {
		q = append(q, "timeout_ms="+strconv.FormatInt(timeoutMS, 10))
	}
	return fc.url("/_matrix/media/v3/"+kind+"/"+url.PathEscape(fc.dest)+"/"+url.PathEscape(r.uri.FileID), q)
}

func (fc *fedCall) url(rawPath string, q []string) *url.URL {
	u := *fc.base
	u.Path, _ = url.PathUnescape(rawPath)
	u.RawPath = rawPath
	u.RawQuery = strings.Join(q, "&")
	return &u
}
