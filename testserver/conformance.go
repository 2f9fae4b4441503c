package testserver

// The conformance catalogue: scenarios that publish media with a behaviour, and judges that read the
// request log to say what a client did with them.

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net/url"
	"sort"
	"strings"
	"time"

	"maunium.net/go/mautrix/crypto/attachment"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// Verdict is the outcome of one scenario for the client that ran against it.
type Verdict string

// The verdicts. The server judges from its request log only, so where the log cannot tell a safe
// client from an unsafe one (a client that stopped may have reported an error or kept a short file;
// a hash is checked on the client) the verdict is Observed and the reason says what to check.
const (
	Pass     Verdict = "pass"
	Fail     Verdict = "fail"
	Observed Verdict = "observed"
	NotTried Verdict = "not tried"
)

// Scenario is one case of the conformance catalogue: a media item published with a behaviour, what a
// safe client does with it, and a judge of what the client did, from the request log alone.
//
// A scenario is data: to add one, append it to the list in Catalogue with a Name, a Purpose, an
// Expect, the Behavior that plays it (redirects, faults and serving quirks, see Behavior) and a Judge
// — one of the judges below or a function of the Trace of your own.
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
	// Location, when non-nil, builds the raw Location of the homeserver's redirects for the item from
	// the running server, afresh at each redirect so that signed URLs never expire (it overrides
	// Behavior.Location).
	Location func(s *Server, mediaID string) string
	// Encrypt publishes the item as an end-to-end-encrypted attachment: the server holds the
	// ciphertext of the generated content, and Published.File holds the file information a client
	// finds in the event (key, IV, SHA-256 of the ciphertext). WrongHash publishes a SHA-256 that
	// does not match.
	Encrypt, WrongHash bool
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
	// Requests are the logged requests for the item, at any origin, in the order they arrived.
	Requests []Request
}

// Published is a scenario with the content URI it was published at.
type Published struct {
	Scenario *Scenario
	URI      id.ContentURI
	// File is the event's file information for an encrypted item (Scenario.Encrypt), nil otherwise.
	File *event.EncryptedFileInfo
	// Size and SHA256 (hex) describe the bytes a client that succeeds ends up with: the plaintext of
	// an encrypted item.
	Size   int64
	SHA256 string
}

// Result is the verdict on one scenario.
type Result struct {
	Name    string        `json:"name"`
	Purpose string        `json:"purpose"`
	Expect  string        `json:"expect"`
	URI     id.ContentURI `json:"uri"`
	// Size and SHA256 (hex) describe the bytes a client that succeeds ends up with.
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	// File is the event's file information of an encrypted item, for the client to decrypt with.
	File    *event.EncryptedFileInfo `json:"file,omitempty"`
	Verdict Verdict                  `json:"verdict"`
	// Why explains the verdict in one sentence.
	Why string `json:"why"`
	// Evidence holds the item's request log lines, credentials and signatures redacted.
	Evidence []string `json:"evidence"`
}

// Report is the verdict on every published scenario, in catalogue order.
type Report struct {
	Time time.Time `json:"time"`
	// Clients lists the User-Agent values of the requests judged, in the order first seen.
	Clients []string `json:"clients"`
	Results []Result `json:"results"`
}

// Publish adds one media item per scenario, each with its scenario's behaviour, and returns where
// they are. Each item's media ID is "conf-" and the scenario's name. Generated content makes every
// item cheap whatever its size.
func (s *Server) Publish(scenarios []Scenario) []Published {
	out := make([]Published, len(scenarios))
	for i := range scenarios {
		sc := &scenarios[i]
		b := sc.Behavior
		mediaID := "conf-" + sc.Name
		m := s.newMedia(MediaOptions{MediaID: mediaID, FileName: sc.Name + ".bin", Behavior: &b})
		if sc.Location != nil {
			m.locate = func() string { return sc.Location(s, mediaID) }
		}
		seed := byte(i + 1)
		h := sha256.New()
		io.Copy(h, io.NewSectionReader(GeneratedContent(seed), 0, sc.size()))
		out[i] = Published{Scenario: sc, Size: sc.size(), SHA256: hex.EncodeToString(h.Sum(nil))}
		if !sc.Encrypt {
			out[i].URI = s.fill(m, GeneratedContent(seed), sc.size(), fmt.Sprintf(`"gen-%d-%d"`, sc.size(), seed))
			continue
		}
		data := make([]byte, sc.size())
		GeneratedContent(seed).ReadAt(data, 0)
		file := attachment.NewEncryptedFile()
		file.EncryptInPlace(data)
		if sc.WrongHash {
			sum := sha256.Sum256([]byte("not the ciphertext"))
			file.Hashes.SHA256 = base64.RawStdEncoding.EncodeToString(sum[:])
		}
		sum := sha256.Sum256(data)
		out[i].URI = s.fill(m, bytes.NewReader(data), int64(len(data)), fmt.Sprintf(`"%x"`, sum[:16]))
		// A fresh copy of the exported fields: file caches keys decoded without the hash.
		out[i].File = &event.EncryptedFileInfo{
			EncryptedFile: attachment.EncryptedFile{Key: file.Key, InitVector: file.InitVector, Hashes: file.Hashes, Version: file.Version},
			URL:           out[i].URI.CUString(),
		}
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
// count with the bytes written so far; a test that wants every answer over judges after Close.
func (s *Server) Judge(published []Published) Report {
	log := s.Requests()
	rep := Report{Time: time.Now(), Clients: []string{}} // [] rather than null in JSON
	seen := map[string]bool{}
	for _, p := range published {
		t := Trace{Server: s, URI: p.URI, Size: p.Scenario.size()}
		for _, r := range log {
			if strings.HasSuffix(r.Path, "/"+p.URI.Homeserver+"/"+p.URI.FileID) || strings.Contains(r.Path, "/"+p.URI.Homeserver+"/"+p.URI.FileID+"/") {
				t.Requests = append(t.Requests, r)
				if ua := r.Header.Get("User-Agent"); !seen[ua] {
					seen[ua] = true
					rep.Clients = append(rep.Clients, ua)
				}
			}
		}
		res := Result{Name: p.Scenario.Name, Purpose: p.Scenario.Purpose, Expect: p.Scenario.Expect, URI: p.URI,
			Size: p.Size, SHA256: p.SHA256, File: p.File, Evidence: []string{}}
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

// Leaks returns the requests that carried credentials where a safe client sends none: to any origin
// but the homeserver's, and to the homeserver's own origin once the chain of redirects had left it
// (a chain starts at each request to the homeserver's Matrix endpoints). A hop that stays on the
// homeserver's origin before the chain has left it (a relative Location) may carry them.
//
// Requests are taken in the order they arrived: a client that runs several chains for one item at
// once may have a same-origin hop of one chain taken for a hop of another.
func (t Trace) Leaks() []Request {
	home := t.Server.Origin(OriginHomeserver)
	var out []Request
	left := false
	for _, r := range t.Requests {
		switch {
		case r.Origin != home:
			left = true
		case r.Role == RoleHomeserver:
			left = false // a new chain
		}
		if r.HasCredentials() && (left || r.Origin != home) {
			out = append(out, r)
		}
	}
	return out
}

// leak returns a Fail verdict naming the first leak, or "" when there is none.
func (t Trace) leak() (Verdict, string) {
	l := t.Leaks()
	if len(l) == 0 {
		return "", ""
	}
	r := l[0]
	var names []string
	for _, k := range []string{"Authorization", "Cookie", "Proxy-Authorization"} {
		if r.Header.Get(k) != "" {
			names = append(names, k)
		}
	}
	where := r.Origin
	if r.Origin == t.Server.Origin(OriginHomeserver) {
		where += ", the homeserver's origin, after the redirect chain had left it"
	}
	answered := fmt.Sprintf("answered %d", r.Status)
	if r.Status == 0 {
		answered = "no answer"
	}
	return Fail, fmt.Sprintf("%s went to %s (%s)", strings.Join(names, " and "), where, answered)
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

// CDN returns the requests for the item's CDN objects, at any origin: the redirects followed.
func (t Trace) CDN() []Request {
	var out []Request
	for _, r := range t.Requests {
		if r.Role == RoleCDN {
			out = append(out, r)
		}
	}
	return out
}

// Chains splits the requests into redirect chains: each starts at a request to the homeserver's
// Matrix endpoints and holds the CDN requests that followed it.
func (t Trace) Chains() [][]Request {
	var out [][]Request
	for _, r := range t.Requests {
		if r.Role != RoleCDN || len(out) == 0 {
			out = append(out, nil)
		}
		out[len(out)-1] = append(out[len(out)-1], r)
	}
	return out
}

// maxRedirects returns the most redirects the client followed in one chain.
func (t Trace) maxRedirects() int {
	n := 0
	for _, c := range t.Chains() {
		n = max(n, len(c)-1)
	}
	return n
}

// SentParam reports whether any request to the homeserver carried allow_redirect.
func (t Trace) SentParam() bool {
	for _, r := range t.Requests {
		if r.Role == RoleHomeserver && r.Query().Has("allow_redirect") {
			return true
		}
	}
	return false
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

// running returns a request whose answer is not over yet, or nil.
func (t Trace) running() *Request {
	for i := range t.Requests {
		if !t.Requests[i].Ended {
			return &t.Requests[i]
		}
	}
	return nil
}

// stopped describes how a client that did not fetch the item stopped: Observed while a request
// still runs, else Fail.
func (t Trace) stopped() (Verdict, string) {
	if r := t.running(); r != nil {
		return Observed, fmt.Sprintf("a request sent at %s is still running", r.Time.Format("15:04:05"))
	}
	last := t.Requests[len(t.Requests)-1]
	return Fail, fmt.Sprintf("the client was sent %d of %d bytes: its last request was answered %d and it did not ask again", t.covered(), t.Size, last.Status)
}

// judgeFetch is the judge of scenarios whose safe outcome is the whole item, with no credential
// where it does not belong.
func judgeFetch(t Trace) (Verdict, string) {
	if v, why := t.leak(); v != "" {
		return v, why
	}
	if !t.Fetched() {
		return t.stopped()
	}
	return Pass, "the whole item was fetched and no credential left the homeserver"
}

// judgeParam is judgeFetch for a homeserver that refuses allow_redirect with a 400: a client that
// sent it must ask again without it.
func judgeParam(t Trace) (Verdict, string) {
	if v, why := t.leak(); v != "" {
		return v, why
	}
	if !t.Fetched() {
		return t.stopped()
	}
	if !t.SentParam() {
		return Pass, "the client never sent allow_redirect (so met no 400) and fetched the whole item"
	}
	return Pass, "the client asked again without allow_redirect after the 400 and fetched the whole item"
}

// judgeRedirect is judgeFetch for items behind a redirect: the client must also have followed it.
func judgeRedirect(t Trace) (Verdict, string) {
	if v, why := t.leak(); v != "" {
		return v, why
	}
	if len(t.CDN()) == 0 {
		return Fail, fmt.Sprintf("the client did not follow the redirect (its last request was answered %d)", t.Requests[len(t.Requests)-1].Status)
	}
	if !t.Fetched() {
		return t.stopped()
	}
	return Pass, "the client followed the redirect, fetched the whole item and sent no credential where it does not belong"
}

// judgeRefused is the judge of redirects a safe client refuses: it must not reach the CDN at all.
// Asking the homeserver again without allow_redirect for the bytes, as a v3 client may, is a pass.
func judgeRefused(t Trace) (Verdict, string) {
	if v, why := t.leak(); v != "" {
		return v, why
	}
	if cdn := t.CDN(); len(cdn) > 0 {
		return Fail, fmt.Sprintf("the client followed the redirect to %s", cdn[0].Origin)
	}
	if t.Fetched() {
		return Pass, "the client refused the redirect and asked the homeserver for the bytes without allow_redirect"
	}
	return Pass, "the client did not follow the redirect"
}

// judgeNotHTTP judges a redirect to a Location whose scheme is not http or https. The server cannot
// see a client open a file: URL or decode a data: URL, so a client that stopped at the redirect is
// Observed; one that then asked the homeserver for the bytes without allow_redirect has plainly
// refused the Location.
func judgeNotHTTP(scheme string) func(Trace) (Verdict, string) {
	return func(t Trace) (Verdict, string) {
		if v, why := t.leak(); v != "" {
			return v, why
		}
		if t.Fetched() {
			return Pass, fmt.Sprintf("the client refused the %s Location and asked the homeserver for the bytes without allow_redirect", scheme)
		}
		return Observed, fmt.Sprintf("the client stopped at the redirect to a %s URL; whether it opened that URL happens on the client, which the log cannot see: check that it reported an error and saved nothing", scheme)
	}
}

// judgeResumed is the judge of bodies that break off or stall: the client must ask again and get the
// rest, following short 206 answers until Content-Range's total.
func judgeResumed(t Trace) (Verdict, string) {
	if v, why := t.leak(); v != "" {
		return v, why
	}
	if t.Fetched() {
		ranged, ifRange := 0, 0
		for _, r := range t.Requests {
			if r.Header.Get("Range") != "" {
				ranged++
				if r.Header.Get("If-Range") != "" {
					ifRange++
				}
			}
		}
		if ranged == 0 {
			return Pass, fmt.Sprintf("the client asked again for the whole item (%d requests) and was sent every byte", len(t.Requests))
		}
		return Pass, fmt.Sprintf("the client went on with %d ranged request(s) (%d with If-Range) and was sent every byte", ranged, ifRange)
	}
	if r := t.running(); r != nil {
		return Observed, fmt.Sprintf("a request sent at %s is still waiting on its answer: the client has no stall timeout, or it has not run out yet", r.Time.Format("15:04:05"))
	}
	if len(t.Requests) == 1 {
		return Observed, fmt.Sprintf("the client stopped after %d of %d bytes and did not ask again: check that it reported an error and kept no file", t.covered(), t.Size)
	}
	last := t.Requests[len(t.Requests)-1]
	if from, _, ok := singleRange(last.Header.Get("Range"), t.Size); ok && last.Status == 206 && last.Ended && from+last.Sent < t.Size {
		return Fail, fmt.Sprintf("the client stopped after a 206 that ended at byte %d of %d: Content-Range's total says there is more to ask for", from+last.Sent, t.Size)
	}
	return Fail, fmt.Sprintf("the client was sent %d of %d bytes and stopped asking", t.covered(), t.Size)
}

// judgeChain judges a redirect chain of n hops at or past a client's bound of redirects. At the bound
// (n <= bound) the client must follow every hop; past it, it may follow them (WHATWG Fetch allows 20
// redirects) or stop.
func judgeChain(n, bound int) func(Trace) (Verdict, string) {
	return func(t Trace) (Verdict, string) {
		if v, why := t.leak(); v != "" {
			return v, why
		}
		k := t.maxRedirects()
		switch {
		case t.Fetched():
			return Pass, fmt.Sprintf("the client followed all %d redirects, fetched the whole item and sent no credential past the homeserver", n)
		case t.running() != nil:
			return t.stopped()
		case n <= bound:
			return Fail, fmt.Sprintf("the client stopped after %d of %d redirects: a bound below %d breaks chains that real deployments use", k, n, bound)
		}
		return Pass, fmt.Sprintf("the client stopped after %d redirects of %d: its bound is below %d", k, n, n)
	}
}

// judgeLoop judges an endless redirect loop: the client must stop within WHATWG Fetch's bound.
func judgeLoop(t Trace) (Verdict, string) {
	if v, why := t.leak(); v != "" {
		return v, why
	}
	if k := t.maxRedirects(); k > 20 {
		return Fail, fmt.Sprintf("the client followed %d redirects in one chain", k)
	}
	return Pass, fmt.Sprintf("the client stopped after %d redirect(s) at most in each of %d chain(s)", t.maxRedirects(), len(t.Chains()))
}

// judgeDowngrade judges a chain that steps from an https CDN down to http.
func judgeDowngrade(t Trace) (Verdict, string) {
	if v, why := t.leak(); v != "" {
		return v, why
	}
	if len(t.At(OriginCDN)) > 0 {
		return Fail, "the client followed the redirect from https down to http"
	}
	if len(t.At(OriginCDNTLS)) == 0 {
		if t.Fetched() {
			return Pass, "the client did not follow the redirect and asked the homeserver for the bytes without allow_redirect"
		}
		return Observed, "the client did not reach the https CDN: trust the server's certificate (-cert-out) and run again"
	}
	return Pass, "the client reached the https CDN and did not step down to http"
}

// judgeRateLimited judges a 429 with Retry-After: 1.
func judgeRateLimited(t Trace) (Verdict, string) {
	if v, why := t.leak(); v != "" {
		return v, why
	}
	if len(t.Requests) < 2 {
		return Observed, "the client did not ask again after the 429: check that it reported the rate limit"
	}
	if wait := t.Requests[1].Time.Sub(t.Requests[0].Time); wait < time.Second {
		return Fail, fmt.Sprintf("the client asked again after %v, before Retry-After's second", wait.Round(time.Millisecond))
	}
	if !t.Fetched() {
		return t.stopped()
	}
	return Pass, fmt.Sprintf("the client waited %v, at least Retry-After's second, and fetched the whole item", t.Requests[1].Time.Sub(t.Requests[0].Time).Round(10*time.Millisecond))
}

// judgeNotYetUploaded judges a 504 M_NOT_YET_UPLOADED answer to the first request.
func judgeNotYetUploaded(t Trace) (Verdict, string) {
	if v, why := t.leak(); v != "" {
		return v, why
	}
	if len(t.Requests) == 1 && t.Requests[0].Status == 504 {
		return Observed, "the client did not ask again after 504 M_NOT_YET_UPLOADED: check that it reported the media as not uploaded yet (not as missing or broken)"
	}
	if !t.Fetched() {
		return t.stopped()
	}
	return Pass, fmt.Sprintf("the client asked again %v after the 504 and fetched the whole item", t.Requests[1].Time.Sub(t.Requests[0].Time).Round(10*time.Millisecond))
}

// judgeRangeUnasked judges a 206 to a request without Range.
func judgeRangeUnasked(t Trace) (Verdict, string) {
	for _, r := range t.Requests[1:] {
		if from, _, ok := singleRange(r.Header.Get("Range"), t.Size); ok && from > 0 && !t.Fetched() {
			return Fail, fmt.Sprintf("the client kept the bytes of a 206 it had not asked for and resumed from byte %d", from)
		}
	}
	return judgeResumed(t)
}

// judgeEncrypted judges an encrypted attachment whose published SHA-256 is wrong. The server sees
// the ciphertext go out, never what the client did with it.
func judgeEncrypted(t Trace) (Verdict, string) {
	if v, why := t.leak(); v != "" {
		return v, why
	}
	if !t.Fetched() {
		return t.stopped()
	}
	return Observed, "the client fetched every byte of the ciphertext; checking the SHA-256 happens on the client, which the log cannot see: check that it reported a hash mismatch and showed or saved no plaintext"
}

// RangeChunk is the most bytes matrix-media-repo sends in one 206 when it serves bytes itself.
const RangeChunk = 10 << 20

// Catalogue returns the conformance scenarios, in the order they are reported. Each call returns a
// fresh copy that may be changed.
func Catalogue() []Scenario {
	// redirectAlways redirects on both families, asked or not: what matters is the client's handling
	// of the redirect.
	redirectAlways := func(b Behavior) Behavior {
		b.V1Redirect, b.V3Redirect = Always, Always
		return b
	}
	// redirectRefusable redirects on client v1 always and on media v3 only when asked, as
	// matrix-media-repo does, so that a v3 client that refuses the redirect can ask for the bytes.
	redirectRefusable := func(b Behavior) Behavior {
		b.V1Redirect, b.V3Redirect = Always, WhenAsked
		return b
	}
	fixed := func(loc string) func(*Server, string) string {
		return func(*Server, string) string { return loc }
	}
	cut := Fault{At: RoleAny, Count: 1, Truncate: true}
	stall := Fault{At: RoleAny, Count: 1, Stall: StallBody, StallAfter: 32 << 10}
	noValidators := func(b Behavior) Behavior {
		b.Direct.NoValidators, b.CDN.NoValidators = true, true
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
			Name:     "param-rejected-invalid-param",
			Purpose:  "The homeserver answers 400 M_INVALID_PARAM to any request carrying allow_redirect, and otherwise serves the bytes.",
			Expect:   "Asks once more without allow_redirect and downloads the item.",
			Behavior: Behavior{Param: ParamReject},
			Judge:    judgeParam,
		},
		{
			Name:     "param-rejected-unknown",
			Purpose:  "The homeserver answers 400 M_UNKNOWN to any request carrying allow_redirect (as matrix-media-repo does to a value it cannot read), and otherwise serves the bytes.",
			Expect:   "Asks once more without allow_redirect and downloads the item.",
			Behavior: Behavior{Param: ParamReject, ParamErrCode: "M_UNKNOWN"},
			Judge:    judgeParam,
		},
		{
			Name:     "param-rejected-unrecognized",
			Purpose:  "The homeserver answers 400 M_UNRECOGNIZED to any request carrying allow_redirect, and otherwise serves the bytes.",
			Expect:   "Asks once more without allow_redirect and downloads the item.",
			Behavior: Behavior{Param: ParamReject, ParamErrCode: "M_UNRECOGNIZED"},
			Judge:    judgeParam,
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
			Name:     "location-relative",
			Purpose:  "The homeserver's 307 carries a relative Location (/_cdn/…): the object lives on the homeserver's own origin.",
			Expect:   "Resolves the Location against the request's URL (RFC 9110) and follows it; the hop stays on the homeserver's origin, so the token may go with it.",
			Behavior: redirectAlways(Behavior{}),
			Location: func(s *Server, mediaID string) string {
				return strings.TrimPrefix(s.SignedURL(OriginHomeserver, mediaID), s.Origin(OriginHomeserver))
			},
			Judge: judgeRedirect,
		},
		{
			Name:     "location-protocol-relative",
			Purpose:  "The homeserver's 307 carries a protocol-relative Location (//127.0.0.1:PORT/…) to a CDN on another port.",
			Expect:   "Takes the scheme from the request's URL and the host from the Location, follows it, and sends no credential to the CDN.",
			Behavior: redirectAlways(Behavior{}),
			Location: func(s *Server, mediaID string) string {
				u := s.SignedURL(OriginCDN, mediaID)
				return u[strings.Index(u, "//"):]
			},
			Judge: judgeRedirect,
		},
		{
			Name:     "redirect-chain-5",
			Purpose:  "The redirect passes through five hops, across ports and host names, before the bytes: five redirects in all.",
			Expect:   "Follows all five (DESIGN.md's default bound is 5, WHATWG Fetch's 20) and sends no credential past the homeserver.",
			Behavior: redirectAlways(Behavior{Chain: []OriginName{OriginCDN, OriginCDNNamed, OriginCDNHost, OriginCDN, OriginCDNNamed}}),
			Judge:    judgeChain(5, 5),
		},
		{
			Name:     "redirect-chain-6",
			Purpose:  "Six redirects in all: one past DESIGN.md's default bound of 5.",
			Expect:   "Either follows them (WHATWG Fetch allows 20) or stops with a too-many-redirects error; never sends credentials past the homeserver.",
			Behavior: redirectAlways(Behavior{Chain: []OriginName{OriginCDN, OriginCDNNamed, OriginCDNHost, OriginCDN, OriginCDNNamed, OriginCDNHost}}),
			Judge:    judgeChain(6, 5),
		},
		{
			Name:     "redirect-loop",
			Purpose:  "The CDN redirects back and forth between two origins forever.",
			Expect:   "Stops within a bound (WHATWG Fetch: 20 redirects) and reports an error.",
			Behavior: redirectAlways(Behavior{Chain: []OriginName{OriginCDN, OriginCDNNamed}, Loop: true}),
			Judge:    judgeLoop,
		},
		{
			Name:     "location-userinfo",
			Purpose:  "The redirect's Location carries a user name and password (http://user:pass@…) on the CDN.",
			Expect:   "Refuses the redirect: credentials in a Location are never sent (DESIGN.md), and the URL is not followed.",
			Behavior: redirectRefusable(Behavior{}),
			Location: func(s *Server, mediaID string) string {
				u, _ := url.Parse(s.SignedURL(OriginCDN, mediaID))
				u.User = url.UserPassword("user", "pass")
				return u.String()
			},
			Judge: judgeRefused,
		},
		{
			Name:     "location-file",
			Purpose:  "The redirect's Location is file:///etc/passwd.",
			Expect:   "Refuses it: a Location must be http or https (WHATWG Fetch: a network error); never reads a local file.",
			Behavior: redirectRefusable(Behavior{}),
			Location: fixed("file:///etc/passwd"),
			Judge:    judgeNotHTTP("file:"),
		},
		{
			Name:     "location-data",
			Purpose:  "The redirect's Location is a data: URL holding other bytes (data:application/octet-stream;base64,…).",
			Expect:   "Refuses it: a Location must be http or https; never takes the data: URL's bytes for the media.",
			Behavior: redirectRefusable(Behavior{}),
			Location: fixed("data:application/octet-stream;base64,bm90IHRoZSBtZWRpYQ=="),
			Judge:    judgeNotHTTP("data:"),
		},
		{
			Name:     "location-javascript",
			Purpose:  "The redirect's Location is javascript:alert(document.domain).",
			Expect:   "Refuses it: a Location must be http or https; never runs or opens it.",
			Behavior: redirectRefusable(Behavior{}),
			Location: fixed("javascript:alert(document.domain)"),
			Judge:    judgeNotHTTP("javascript:"),
		},
		{
			Name:     "https-to-http",
			Purpose:  "The redirect goes to an https CDN, which redirects on to plain http.",
			Expect:   "Refuses the step down from https to http (trust the certificate to reach the https CDN).",
			Behavior: redirectRefusable(Behavior{Chain: []OriginName{OriginCDNTLS, OriginCDN}}),
			Judge:    judgeDowngrade,
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
			Expect:   "Never keeps a short file: resumes with Range (and If-Range) or fetches again.",
			Behavior: Behavior{Faults: []Fault{cut}},
			Judge:    judgeResumed,
		},
		{
			Name:     "truncated-no-validators",
			Purpose:  "The first answer is cut in half, and no ETag or Last-Modified is ever sent (matrix-media-repo serving bytes itself).",
			Expect:   "Resumes with Range, checking Content-Range's total (Matrix media is immutable), or fetches again.",
			Behavior: noValidators(Behavior{Faults: []Fault{cut}}),
			Judge:    judgeResumed,
		},
		{
			Name:     "stalled-body",
			Purpose:  "The first answer sends its headers and half the bytes, then nothing, for as long as the client waits; ETag and Last-Modified are sent.",
			Expect:   "Detects the stall (no bytes for a while), resumes with Range (and If-Range) or fetches again.",
			Behavior: Behavior{Faults: []Fault{stall}},
			Judge:    judgeResumed,
		},
		{
			Name:     "stalled-body-no-validators",
			Purpose:  "The first answer stalls after half the bytes, and no ETag or Last-Modified is ever sent.",
			Expect:   "Detects the stall, resumes with Range, checking Content-Range's total, or fetches again.",
			Behavior: noValidators(Behavior{Faults: []Fault{stall}}),
			Judge:    judgeResumed,
		},
		{
			Name:    "range-chunks",
			Purpose: "The item is 10 MiB + 1 KiB. The first answer breaks off after 512 bytes; ranges are then answered as matrix-media-repo does when it serves bytes itself: at most 10 MiB per 206, without validators, If-Range ignored.",
			Expect:  "Follows a short 206 with further ranged requests until Content-Range's total is reached: here two ranged requests after the break.",
			Size:    RangeChunk + 1<<10,
			Behavior: Behavior{
				Direct: Serving{RangeChunk: RangeChunk, NoValidators: true, IgnoreIfRange: true},
				CDN:    Serving{RangeChunk: RangeChunk, NoValidators: true, IgnoreIfRange: true},
				Faults: []Fault{{At: RoleAny, Count: 1, Truncate: true, TruncateAt: 512}},
			},
			Judge: judgeResumed,
		},
		{
			Name:     "range-unasked",
			Purpose:  "A request without Range is answered 206 with the first half of the bytes (Content-Range bytes 0-…/SIZE).",
			Expect:   "Never takes a 206 to a request without Range for the whole item: asks again or reports an error.",
			Behavior: Behavior{Faults: []Fault{{At: RoleAny, Count: 1, Range: RangeUnasked}}},
			Judge:    judgeRangeUnasked,
		},
		{
			Name:     "rate-limited",
			Purpose:  "The first request is answered 429 M_LIMIT_EXCEEDED with Retry-After: 1 and retry_after_ms 1000.",
			Expect:   "Waits at least the second asked for, then downloads the item.",
			Behavior: Behavior{Faults: []Fault{{Count: 1, Status: 429, RetryAfter: "1", RetryAfterMS: 1000}}},
			Judge:    judgeRateLimited,
		},
		{
			Name:     "not-yet-uploaded",
			Purpose:  "The first request is answered 504 M_NOT_YET_UPLOADED, as a server does when an asynchronous upload has not finished within timeout_ms; it has finished by the next request.",
			Expect:   "Asks again after a pause and downloads the item, or reports that the media is not uploaded yet.",
			Behavior: Behavior{Faults: []Fault{{Count: 1, Status: 504, ErrCode: "M_NOT_YET_UPLOADED"}}},
			Judge:    judgeNotYetUploaded,
		},
		{
			Name:      "encrypted-wrong-hash",
			Purpose:   "An encrypted attachment whose event's file information (published with the scenario) carries a SHA-256 that does not match the ciphertext.",
			Expect:    "Downloads the ciphertext, finds the hash wrong, reports it, and shows or saves no plaintext.",
			Encrypt:   true,
			WrongHash: true,
			Judge:     judgeEncrypted,
		},
	}
}
