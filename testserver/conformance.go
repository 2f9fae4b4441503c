package testserver

// The conformance catalogue: scenarios that publish media with a behaviour, and judges that read the
// request log to say what a client did with them.

import (
	"fmt"
	"net/url"
	"sort"
	"strings"
	"time"

	"maunium.net/go/mautrix/id"
)

// Verdict is the outcome of one scenario for the client that ran against it.
type Verdict string

// The verdicts. The server judges from its request log only, so where the log cannot tell a safe
// client from an unsafe one (a client that stopped may have reported an error or kept a short file)
// the verdict is Observed and the reason says what to check.
const (
	Pass     Verdict = "pass"
	Fail     Verdict = "fail"
	Observed Verdict = "observed"
	NotTried Verdict = "not tried"
)

// Scenario is one case of the conformance catalogue: a media item published with a behaviour, what a
// safe client does with it, and a judge of what the client did, from the request log alone.
type Scenario struct {
	// Name identifies the scenario in reports, in lower case with dashes.
	Name string
	// Purpose says in one sentence what the server does.
	Purpose string
	// Expect says what a safe client does, after DESIGN.md's contract, the Matrix specification and
	// WHATWG Fetch.
	Expect string
	// Size is the size of the media item (generated content, see GeneratedContent); zero means 64 KiB.
	Size int64
	// Behavior is the behaviour of the media item.
	Behavior Behavior
	// Location, when non-nil, builds the homeserver's raw Location for the item from the running
	// server (it overrides Behavior.Location).
	Location func(s *Server, mediaID string) string
	// Judge reads what the server saw for the item. Judge is not called when the client sent no
	// request for it (the verdict is then NotTried).
	Judge func(Trace) (Verdict, string)
}

// Trace is what the server saw for one published scenario.
type Trace struct {
	// Server is the server that published the scenario.
	Server *Server
	// URI is the content URI of the item; Size its size in bytes.
	URI  id.ContentURI
	Size int64
	// Requests are the logged requests for the item, at any origin, oldest first.
	Requests []Request
}

// Published is a scenario with the content URI it was published at.
type Published struct {
	Scenario *Scenario
	URI      id.ContentURI
}

// Result is the verdict on one scenario.
type Result struct {
	Name    string        `json:"name"`
	Purpose string        `json:"purpose"`
	Expect  string        `json:"expect"`
	URI     id.ContentURI `json:"uri"`
	Verdict Verdict       `json:"verdict"`
	// Why explains the verdict in one sentence.
	Why string `json:"why"`
	// Evidence holds the item's request log lines, credentials and signatures redacted.
	Evidence []string `json:"evidence"`
}

// Report is the verdict on every published scenario, in catalogue order.
type Report struct {
	Time    time.Time `json:"time"`
	Results []Result  `json:"results"`
}

// Publish adds one media item per scenario, each with its scenario's behaviour, and returns where
// they are. Generated content makes every item cheap whatever its size.
func (s *Server) Publish(scenarios []Scenario) []Published {
	out := make([]Published, len(scenarios))
	for i := range scenarios {
		sc := &scenarios[i]
		b := sc.Behavior
		id := "conf-" + sc.Name
		if sc.Location != nil {
			loc := sc.Location(s, id)
			b.Location = &loc
		}
		uri := s.AddGenerated(sc.size(), byte(i+1), MediaOptions{MediaID: id, FileName: sc.Name + ".bin", Behavior: &b})
		out[i] = Published{Scenario: sc, URI: uri}
	}
	return out
}

func (sc *Scenario) size() int64 {
	if sc.Size == 0 {
		return 64 << 10
	}
	return sc.Size
}

// Judge returns the verdict on each published scenario from the request log. Requests still running
// count for their status but not yet for their bytes; a test judges after Close.
func (s *Server) Judge(published []Published) Report {
	log := s.Requests()
	rep := Report{Time: time.Now()}
	for _, p := range published {
		t := Trace{Server: s, URI: p.URI, Size: p.Scenario.size()}
		for _, r := range log {
			if strings.HasSuffix(r.Path, "/"+p.URI.Homeserver+"/"+p.URI.FileID) || strings.Contains(r.Path, "/"+p.URI.Homeserver+"/"+p.URI.FileID+"/") {
				t.Requests = append(t.Requests, r)
			}
		}
		res := Result{Name: p.Scenario.Name, Purpose: p.Scenario.Purpose, Expect: p.Scenario.Expect, URI: p.URI}
		for _, r := range t.Requests {
			res.Evidence = append(res.Evidence, r.String())
		}
		if len(t.Requests) == 0 {
			res.Verdict, res.Why = NotTried, "the client sent no request for this item"
		} else {
			res.Verdict, res.Why = p.Scenario.Judge(t)
		}
		rep.Results = append(rep.Results, res)
	}
	return rep
}

// Leaks returns the requests that carried credentials to anything but the homeserver's own
// endpoints at the homeserver's origin.
func (t Trace) Leaks() []Request {
	var out []Request
	for _, r := range t.Requests {
		if r.HasCredentials() && (r.Role != RoleHomeserver || r.Origin != t.Server.Origin(OriginHomeserver)) {
			out = append(out, r)
		}
	}
	return out
}

// At returns the requests that the named origin received for the item's CDN objects (or, for the
// homeserver origin, its Matrix endpoints).
func (t Trace) At(name OriginName) []Request {
	var out []Request
	for _, r := range t.Requests {
		if r.Origin == t.Server.Origin(name) && (r.Role == RoleCDN) == (name != OriginHomeserver) {
			out = append(out, r)
		}
	}
	return out
}

// CDN returns the requests for the item's CDN objects, at any origin.
func (t Trace) CDN() []Request {
	var out []Request
	for _, r := range t.Requests {
		if r.Role == RoleCDN {
			out = append(out, r)
		}
	}
	return out
}

// Fetched reports whether the bytes the server sent with 200 and 206 answers, placed where each
// request's Range asked, cover the whole item.
func (t Trace) Fetched() bool { return t.covered() >= t.Size }

// covered returns the end of the prefix of the item the client has been sent.
func (t Trace) covered() int64 {
	type span struct{ from, to int64 }
	var spans []span
	for _, r := range t.Requests {
		start := int64(0)
		switch r.Status {
		case 200:
		case 206:
			from, _, ok := singleRange(r.Header.Get("Range"), t.Size)
			if !ok {
				continue
			}
			start = from
		default:
			continue
		}
		spans = append(spans, span{start, start + r.Sent})
	}
	sort.Slice(spans, func(i, j int) bool { return spans[i].from < spans[j].from })
	end := int64(0)
	for _, s := range spans {
		if s.from > end {
			break
		}
		end = max(end, s.to)
	}
	return end
}

// judgeFetch is the judge of scenarios whose safe outcome is the whole item, with no credential
// leaving the homeserver.
func judgeFetch(t Trace) (Verdict, string) {
	if l := t.Leaks(); len(l) > 0 {
		return Fail, fmt.Sprintf("credentials went to %s", l[0].Origin)
	}
	if !t.Fetched() {
		if r := t.running(); r != nil {
			return Observed, fmt.Sprintf("a request sent at %s is still running", r.Time.Format("15:04:05"))
		}
		return Fail, fmt.Sprintf("the client was sent %d of %d bytes and did not ask for the rest", t.covered(), t.Size)
	}
	return Pass, "the whole item was fetched and no credential left the homeserver"
}

// running returns a request whose answer is not over yet, or nil.
func (t Trace) running() *Request {
	for i := range t.Requests {
		if !t.Requests[i].Ended {
			return &t.Requests[i]
		}
	}
	return nil
}

// judgeRedirect is judgeFetch for items behind a redirect: the client must also have followed it.
func judgeRedirect(t Trace) (Verdict, string) {
	if l := t.Leaks(); len(l) > 0 {
		return Fail, fmt.Sprintf("credentials went to %s", l[0].Origin)
	}
	if len(t.CDN()) == 0 {
		return Fail, "the client did not follow the redirect"
	}
	return judgeFetch(t)
}

// judgeRefused is the judge of redirects a safe client refuses: it must not reach the CDN at all.
func judgeRefused(t Trace) (Verdict, string) {
	if cdn := t.CDN(); len(cdn) > 0 {
		return Fail, fmt.Sprintf("the client followed the redirect to %s", cdn[0].Origin)
	}
	return Pass, "the client did not follow the redirect"
}

// judgeResumed is the judge of bodies that break once: the client must ask again and get the rest.
func judgeResumed(t Trace) (Verdict, string) {
	if l := t.Leaks(); len(l) > 0 {
		return Fail, fmt.Sprintf("credentials went to %s", l[0].Origin)
	}
	if t.Fetched() {
		return Pass, "the client asked again after the break and was sent every byte"
	}
	if r := t.running(); r != nil {
		return Observed, fmt.Sprintf("a request sent at %s is still waiting on its answer: the client has no stall timeout, or it has not run out yet", r.Time.Format("15:04:05"))
	}
	if len(t.Requests) == 1 {
		return Observed, fmt.Sprintf("the client stopped after %d of %d bytes and did not ask again: check that it reported an error and kept no file", t.covered(), t.Size)
	}
	return Fail, fmt.Sprintf("the client was sent %d of %d bytes and stopped asking", t.covered(), t.Size)
}

// Catalogue returns the conformance scenarios, in the order they are reported. Each call returns a
// fresh copy that may be changed.
func Catalogue() []Scenario {
	redirectAlways := func(b Behavior) Behavior {
		b.V1Redirect, b.V3Redirect = Always, Always
		return b
	}
	return []Scenario{
		{
			Name:     "direct",
			Purpose:  "The homeserver serves the bytes itself.",
			Expect:   "Downloads the item with the access token, from the homeserver only.",
			Behavior: Behavior{},
			Judge:    judgeFetch,
		},
		{
			Name:     "param-rejected",
			Purpose:  "The homeserver answers 400 M_INVALID_PARAM to any request carrying allow_redirect, and otherwise serves the bytes.",
			Expect:   "Asks once more without allow_redirect and downloads the item.",
			Behavior: Behavior{Param: ParamReject},
			Judge:    judgeFetch,
		},
		{
			Name:     "v1-unrecognized",
			Purpose:  "The authenticated client v1 endpoint answers 404 M_UNRECOGNIZED for this item, although /versions lists v1.11.",
			Expect:   "Falls back to the media v3 endpoint and downloads the item.",
			Behavior: Behavior{NoV1: true},
			Judge:    judgeFetch,
		},
		{
			Name:     "redirect-other-port",
			Purpose:  "The homeserver answers 307 to a CDN on another port of the same host.",
			Expect:   "Follows the redirect and sends no credential to the CDN: an origin is scheme, host and port.",
			Behavior: redirectAlways(Behavior{Chain: []OriginName{OriginCDN}}),
			Judge:    judgeRedirect,
		},
		{
			Name:     "redirect-other-host",
			Purpose:  "The homeserver answers 307 to the same port reached by another host name (localhost).",
			Expect:   "Follows the redirect and sends no credential to the other host.",
			Behavior: redirectAlways(Behavior{Chain: []OriginName{OriginCDNHost}}),
			Judge:    judgeRedirect,
		},
		{
			Name:     "redirect-308",
			Purpose:  "The homeserver answers 308 Permanent Redirect to the CDN.",
			Expect:   "Follows the 308 like a 307, without credentials.",
			Behavior: redirectAlways(Behavior{Redirect: 308}),
			Judge:    judgeRedirect,
		},
		{
			Name:     "redirect-chain",
			Purpose:  "The redirect passes through four CDN hops, across ports and host names, before the bytes.",
			Expect:   "Follows every hop (within its bound) and sends no credential past the homeserver.",
			Behavior: redirectAlways(Behavior{Chain: []OriginName{OriginCDN, OriginCDNNamed, OriginCDNHost, OriginCDN}}),
			Judge:    judgeRedirect,
		},
		{
			Name:     "redirect-loop",
			Purpose:  "The CDN redirects back and forth between two origins forever.",
			Expect:   "Stops within a bound (WHATWG Fetch: 20 redirects) and reports an error.",
			Behavior: redirectAlways(Behavior{Chain: []OriginName{OriginCDN, OriginCDNNamed}, Loop: true}),
			Judge: func(t Trace) (Verdict, string) {
				if l := t.Leaks(); len(l) > 0 {
					return Fail, fmt.Sprintf("credentials went to %s", l[0].Origin)
				}
				// Each attempt is one homeserver request and its CDN hops; retries start again.
				hs := max(len(t.Requests)-len(t.CDN()), 1)
				if per := len(t.CDN()) / hs; per > 20 {
					return Fail, fmt.Sprintf("the client followed %d redirects in one attempt", per)
				}
				return Pass, fmt.Sprintf("the client stopped after %d CDN hops in %d attempt(s)", len(t.CDN()), hs)
			},
		},
		{
			Name:     "location-userinfo",
			Purpose:  "The redirect's Location carries a user name and password (http://user:pass@…).",
			Expect:   "Refuses the redirect: credentials in a Location are never sent (DESIGN.md).",
			Behavior: redirectAlways(Behavior{}),
			Location: func(s *Server, mediaID string) string {
				u, _ := url.Parse(s.SignedURL(OriginCDN, mediaID))
				u.User = url.UserPassword("user", "pass")
				return u.String()
			},
			Judge: judgeRefused,
		},
		{
			Name:     "https-to-http",
			Purpose:  "The redirect goes to an https CDN, which redirects on to plain http.",
			Expect:   "Refuses the step down from https to http (trust the certificate to reach the https CDN).",
			Behavior: redirectAlways(Behavior{Chain: []OriginName{OriginCDNTLS, OriginCDN}}),
			Judge: func(t Trace) (Verdict, string) {
				if l := t.Leaks(); len(l) > 0 {
					return Fail, fmt.Sprintf("credentials went to %s", l[0].Origin)
				}
				if len(t.At(OriginCDN)) > 0 {
					return Fail, "the client followed the redirect from https down to http"
				}
				if len(t.At(OriginCDNTLS)) == 0 {
					return Observed, "the client did not reach the https CDN: trust the server's certificate (-cert-out) and run again"
				}
				return Pass, "the client reached the https CDN and did not step down to http"
			},
		},
		{
			Name:     "cdn-refuses-authorization",
			Purpose:  "The CDN answers 400 to a request carrying Authorization, as S3 presigned URLs do.",
			Expect:   "Fetches from the CDN without Authorization.",
			Behavior: redirectAlways(Behavior{CDNRejectsAuth: true}),
			Judge:    judgeRedirect,
		},
		{
			Name:     "truncated",
			Purpose:  "The first answer announces the full length, sends half the bytes and closes the connection; ETag and Last-Modified are sent.",
			Expect:   "Never keeps a short file: resumes with Range (If-Range) or fetches again.",
			Behavior: Behavior{Faults: []Fault{{At: RoleAny, Count: 1, Truncate: true}}},
			Judge:    judgeResumed,
		},
		{
			Name:     "truncated-no-validators",
			Purpose:  "The first answer is cut in half, and no ETag or Last-Modified is ever sent (matrix-media-repo serving bytes itself).",
			Expect:   "Resumes with Range, checking Content-Range's total (Matrix media is immutable), or fetches again.",
			Behavior: Behavior{Direct: Serving{NoValidators: true}, CDN: Serving{NoValidators: true}, Faults: []Fault{{At: RoleAny, Count: 1, Truncate: true}}},
			Judge:    judgeResumed,
		},
		{
			Name:    "range-chunks",
			Purpose: "The first answer is cut after 10,000 bytes; ranges are then answered in chunks (matrix-media-repo answers in 10 MiB chunks; here 64 KiB of 200 KiB).",
			Expect:  "Follows a short 206 with further ranged requests until Content-Range's total is reached.",
			Size:    200 << 10,
			Behavior: Behavior{
				Direct: Serving{RangeChunk: 64 << 10, NoValidators: true, IgnoreIfRange: true},
				CDN:    Serving{RangeChunk: 64 << 10, NoValidators: true, IgnoreIfRange: true},
				Faults: []Fault{{At: RoleAny, Count: 1, Truncate: true, TruncateAt: 10000}},
			},
			Judge: judgeResumed,
		},
		{
			Name:     "stalled-body",
			Purpose:  "The first answer sends its headers and half the bytes, then nothing, for as long as the client waits.",
			Expect:   "Detects the stall (no bytes for a while), resumes with Range or fetches again.",
			Behavior: Behavior{Faults: []Fault{{At: RoleAny, Count: 1, Stall: StallBody, StallAfter: 32 << 10}}},
			Judge:    judgeResumed,
		},
		{
			Name:     "rate-limited",
			Purpose:  "The first request is answered 429 M_LIMIT_EXCEEDED with Retry-After: 1 and retry_after_ms 1000.",
			Expect:   "Waits at least the second asked for, then downloads the item.",
			Behavior: Behavior{Faults: []Fault{{Count: 1, Status: 429, RetryAfter: "1", RetryAfterMS: 1000}}},
			Judge: func(t Trace) (Verdict, string) {
				if len(t.Requests) < 2 {
					return Observed, "the client did not ask again after the 429: check that it reported the rate limit"
				}
				if wait := t.Requests[1].Time.Sub(t.Requests[0].Time); wait < time.Second {
					return Fail, fmt.Sprintf("the client asked again after %v, before Retry-After's second", wait.Round(time.Millisecond))
				}
				return judgeFetch(t)
			},
		},
		{
			Name:     "range-unasked",
			Purpose:  "A request without Range is answered 206 with the first half of the bytes (Content-Range bytes 0-…/SIZE).",
			Expect:   "Never takes a 206 to a request without Range for the whole item: asks again or reports an error.",
			Behavior: Behavior{Faults: []Fault{{At: RoleAny, Count: 1, Range: RangeUnasked}}},
			Judge: func(t Trace) (Verdict, string) {
				for _, r := range t.Requests[1:] {
					if from, _, ok := singleRange(r.Header.Get("Range"), t.Size); ok && from > 0 && !t.Fetched() {
						return Fail, fmt.Sprintf("the client kept the bytes of a 206 it had not asked for and resumed from byte %d", from)
					}
				}
				return judgeResumed(t)
			},
		},
	}
}
