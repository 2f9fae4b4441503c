package testserver

import (
	"sync"
	"time"
)

// Profile names a bundle of behaviours that imitates a family of real servers.
type Profile string

// The profiles. Their behaviour is documented on ProfileBehavior.
const (
	ProfileSynapse    Profile = "synapse"
	ProfileMediaRepo  Profile = "media-repo"
	ProfileMediaProxy Profile = "mediaproxy"
	ProfileStrict     Profile = "strict"
	ProfileLegacy     Profile = "legacy"
)

// Profiles lists every profile, in the order they are documented.
var Profiles = []Profile{ProfileSynapse, ProfileMediaRepo, ProfileMediaProxy, ProfileStrict, ProfileLegacy}

// When says when the homeserver answers a download with a redirect.
type When int

const (
	// Never serves the bytes directly.
	Never When = iota
	// WhenAsked redirects only when the request carries allow_redirect=true.
	WhenAsked
	// Always redirects whatever the request says.
	Always
)

// ParamMode says how the homeserver treats the allow_redirect query parameter.
type ParamMode int

const (
	// ParamAccept reads allow_redirect=true and ignores any other value (Synapse, Dendrite).
	ParamAccept ParamMode = iota
	// ParamBoolean answers 400 M_UNKNOWN to a value that is not "true" or "false" (matrix-media-repo).
	ParamBoolean
	// ParamReject answers 400 whenever the parameter is present, with the errcode
	// Behavior.ParamErrCode (M_INVALID_PARAM by default).
	ParamReject
)

// Role is the part an origin plays for one request: homeserver endpoints or CDN objects.
type Role int

const (
	// RoleHomeserver matches requests to the Matrix endpoints.
	RoleHomeserver Role = iota
	// RoleCDN matches requests to CDN objects (the targets of redirects).
	RoleCDN
	// RoleAny matches both.
	RoleAny
)

// Behavior is plain data that decides how the server answers media requests. The zero value is a
// plain homeserver, like Synapse without a storage provider (ProfileSynapse): it serves every
// download itself on both v1 and v3, ignores allow_redirect, honours Range and sends validators,
// and injects no fault. Each field adds one departure from that.
type Behavior struct {
	// Redirect is the status of the redirect answer (301, 302, 303, 307, 308 or any other 3xx).
	// Zero means 307 whenever V3Redirect or V1Redirect asks for a redirect.
	Redirect int
	// V3Redirect and V1Redirect say when the media v3 and client v1 endpoints redirect.
	V3Redirect When
	V1Redirect When
	// Chain lists the origins the redirect passes through; the last one serves the bytes. Nil means
	// {OriginCDN}. An origin may appear more than once (A→B→A).
	Chain []OriginName
	// Loop makes the last origin of Chain redirect back to the first one, forever.
	Loop bool
	// Location, when non-nil, is sent verbatim as the Location of the homeserver's redirect instead of
	// a URL on Chain. It may be anything: relative, protocol-relative, file:, with userinfo, empty…
	Location *string
	// NoLocation sends the redirect status with no Location header at all.
	NoLocation bool
	// CacheControl is sent with each redirect when non-empty.
	CacheControl string
	// Param decides how allow_redirect is validated.
	Param ParamMode
	// ParamErrCode is the errcode of the 400 with which ParamReject refuses allow_redirect; "" means
	// M_INVALID_PARAM. Servers in the wild also answer M_UNKNOWN and M_UNRECOGNIZED.
	ParamErrCode string
	// NoV1 and NoV3 remove the client v1 or media v3 endpoints (404 M_UNRECOGNIZED).
	NoV1, NoV3 bool
	// ThumbnailFirstDirect serves the first request for each thumbnail size directly, and redirects
	// only later ones, as matrix-media-repo does while it generates thumbnails.
	ThumbnailFirstDirect bool
	// CDNRejectsAuth makes CDN objects answer 400 to any request carrying Authorization, as S3
	// presigned URLs do.
	CDNRejectsAuth bool
	// URLTTL is how long a signed CDN URL stays valid. Zero means five minutes.
	URLTTL time.Duration
	// ExpiredURLs makes the first ExpiredURLs signed CDN URLs that are handed out already expired.
	ExpiredURLs int
	// Direct says how the homeserver serves bytes itself (when it does not redirect).
	Direct Serving
	// CDN says how the CDN origins serve bytes.
	CDN Serving
	// NoContentLength serves bodies without Content-Length (chunked), and ignores Range, at every
	// origin.
	NoContentLength bool
	// SlowBody pauses this long before each 16 KiB chunk of every body served, at every origin.
	SlowBody time.Duration
	// Faults are injected in order: the first fault that matches a request and has uses left fires.
	Faults []Fault
}

// Fault is one injected failure.
type Fault struct {
	// At selects the requests the fault applies to. The zero value is RoleHomeserver.
	At Role
	// Count is how many matching requests the fault affects; zero means every one.
	Count int
	// Status, when non-zero, answers with this status and a Matrix error body (M_LIMIT_EXCEEDED for
	// 429, M_UNKNOWN otherwise; CDN requests get an XML body).
	Status int
	// RetryAfter is sent as the Retry-After header when non-empty.
	RetryAfter string
	// RetryAfterMS is sent as retry_after_ms in the Matrix error body when non-zero.
	RetryAfterMS int
	// ErrCode, when non-empty, is the errcode of the Matrix error body sent with Status, e.g.
	// M_NOT_YET_UPLOADED with 504.
	ErrCode string
	// Truncate serves the headers with the full Content-Length (of the whole body, or of the range
	// asked for), then only TruncateAt bytes (half the content when TruncateAt is zero) before
	// dropping the connection.
	Truncate   bool
	TruncateAt int64
	// Reset closes the connection with a TCP reset: without any answer, or, with Truncate, in the
	// middle of the body.
	Reset bool
	// Range answers with a hostile 206 instead of the body; see RangeFault for each kind and the
	// requests it fires on.
	Range RangeFault
	// Stall stops the answer: before the headers (StallHeaders), or after StallAfter bytes of a body
	// whose headers announce its full length (StallBody; StallAfter zero sends the headers, then
	// nothing). It lasts StallFor, then the answer goes on as if nothing had happened; zero StallFor
	// means forever: until the client closes the connection or the Server is closed.
	Stall      Stall
	StallAfter int64
	StallFor   time.Duration
	// Drip sends the body Drip bytes at a time with a pause of DripEvery (zero means 10 ms) before
	// each piece but the first: a body that is slow but never idle for longer than DripEvery.
	Drip      int64
	DripEvery time.Duration
}

// Faults come in two kinds, which decides when they fire and use up their Count:
//
//   - Faults that replace the answer (Status, Reset without Truncate, Stall: StallHeaders) fire on
//     any request that matches At, whether the origin would have redirected or served the bytes.
//   - Body faults (Truncate, Range, Stall: StallBody, Drip) fire only where an origin serves bytes:
//     a homeserver that redirects does not use them up, and a Range fault waits for a request it
//     can answer.
//
// A request gets at most one fault.

// Stall says where an answer stops.
type Stall int

const (
	// NoStall is the zero value: no stall.
	NoStall Stall = iota
	// StallHeaders reads the request and sends nothing, not even the status line.
	StallHeaders
	// StallBody sends the headers (with the full Content-Length) and StallAfter bytes of the body,
	// then nothing.
	StallBody
)

// RangeFault is a hostile answer to a download, for testing what a client accepts as partial
// content. Every kind answers 206 with a Content-Length that matches the body it sends. Below, N is
// the first byte the request's Range asks for and SIZE the size of the media.
type RangeFault int

const (
	// RangeNone is the zero value: no hostile answer.
	RangeNone RangeFault = iota
	// RangeUnasked fires on requests without a Range header. It answers 206 with the first half of
	// the body (at least one byte): Content-Range: bytes 0-(SIZE/2-1)/SIZE.
	RangeUnasked
	// RangeWrongStart fires on requests with one byte range. It answers with the bytes from another
	// offset, S = N/2 (1 when N is 0), to the end: Content-Range: bytes S-(SIZE-1)/SIZE.
	RangeWrongStart
	// RangeTooLong fires on requests with one byte range. It answers with the bytes from N to the end
	// followed by RangeJunk bytes that are not in the media: Content-Range:
	// bytes N-(SIZE+RangeJunk-1)/SIZE, which runs past its own total.
	RangeTooLong
	// RangeWrongTotal is RangeTooLong with a self-consistent Content-Range whose total is not the
	// media's size: bytes N-(SIZE+RangeJunk-1)/(SIZE+RangeJunk).
	RangeWrongTotal
	// RangeBadTotal fires on requests with one byte range and sends the right bytes from N to the end
	// with a malformed total: Content-Range: bytes N-(SIZE-1)/x.
	RangeBadTotal
	// RangeStarTotal is RangeBadTotal with an unknown total: Content-Range: bytes N-(SIZE-1)/*.
	RangeStarTotal
)

// RangeJunk is how many bytes that are not part of the media RangeTooLong and RangeWrongTotal append.
const RangeJunk = 1024

// Serving says how an origin serves the bytes of a media item. The zero value serves them as
// net/http's ServeContent does: with ETag and Last-Modified, honouring Range (single or multiple)
// and If-Range in full.
type Serving struct {
	// RangeChunk, when positive, is the most bytes a 206 answer to a single range carries: an
	// open-ended Range (bytes=N-), a suffix range or a bounded one longer than RangeChunk is answered
	// with Content-Range: bytes N-(N+RangeChunk-1)/SIZE, as matrix-media-repo does (10 MiB) when it
	// serves the bytes itself. A request without Range still gets the whole body with 200.
	RangeChunk int64
	// IgnoreIfRange serves a Range even when If-Range does not match (matrix-media-repo).
	IgnoreIfRange bool
	// IgnoreRange answers every request with 200 and the whole body, Range or not, and sends no
	// Accept-Ranges (Synapse and Dendrite serving from their own store).
	IgnoreRange bool
	// NoValidators sends neither ETag nor Last-Modified (matrix-media-repo serving bytes itself).
	// Without them an If-Range never matches, so a Range with If-Range gets the whole body unless
	// IgnoreIfRange is set.
	NoValidators bool
}

// ProfileBehavior returns the behaviour of a profile:
//
//   - synapse (also ""): the zero Behavior. Serves every download itself on v1 and v3; ignores
//     allow_redirect.
//   - media-repo: v3 redirects (307) to the CDN when asked; v1 always redirects; a non-boolean
//     allow_redirect is 400 M_UNKNOWN; the CDN refuses requests carrying Authorization; the first
//     request for a thumbnail size is served directly. Bytes the homeserver serves itself come
//     without ETag or Last-Modified, in 206 answers of at most 10 MiB, with If-Range ignored; the CDN
//     serves them as an S3 store does (validators, whole ranges).
//   - mediaproxy: client v1 only; always 307 with a Cache-Control derived from the URL's expiry.
//   - strict: rejects any allow_redirect with 400 M_INVALID_PARAM; otherwise serves directly.
//   - legacy: media v3 only (no authenticated media); redirects (307) when asked.
//
// An unknown profile returns false.
func ProfileBehavior(p Profile) (Behavior, bool) {
	switch p {
	case ProfileSynapse, "":
		return Behavior{}, true
	case ProfileMediaRepo:
		return Behavior{
			Redirect: 307, V3Redirect: WhenAsked, V1Redirect: Always,
			Param: ParamBoolean, CDNRejectsAuth: true, ThumbnailFirstDirect: true,
			Direct: Serving{RangeChunk: 10 << 20, IgnoreIfRange: true, NoValidators: true},
		}, true
	case ProfileMediaProxy:
		return Behavior{
			Redirect: 307, V1Redirect: Always, NoV3: true, CDNRejectsAuth: true,
			CacheControl: "public, max-age=3300, immutable",
		}, true
	case ProfileStrict:
		return Behavior{Param: ParamReject}, true
	case ProfileLegacy:
		return Behavior{Redirect: 307, V3Redirect: WhenAsked, NoV1: true, CDNRejectsAuth: true}, true
	}
	return Behavior{}, false
}

// behaviorState is a Behavior with the counters its faults and expiring URLs use.
type behaviorState struct {
	Behavior
	mu      sync.Mutex
	used    []int
	expired int
}

func newBehaviorState(b Behavior) *behaviorState {
	return &behaviorState{Behavior: b, used: make([]int, len(b.Faults))}
}

// serving returns how an origin in role r serves bytes.
func (b *behaviorState) serving(r Role) Serving {
	if r == RoleCDN {
		return b.CDN
	}
	return b.Direct
}

// expireNext reports whether the next signed URL handed out must already be expired.
func (b *behaviorState) expireNext() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.expired < b.ExpiredURLs {
		b.expired++
		return true
	}
	return false
}

// behaviorFor returns the behaviour that applies to m (nil m: the server's).
func (s *Server) behaviorFor(m *Media) *behaviorState {
	if m != nil && m.behavior != nil {
		return m.behavior
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.behavior
}
