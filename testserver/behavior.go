package testserver

import "time"

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
	// ParamReject answers 400 M_INVALID_PARAM whenever the parameter is present.
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

// Behavior is plain data that decides how the server answers media requests. The zero value serves
// every download directly on both v1 and v3 and ignores allow_redirect.
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
	// NoContentLength serves bodies without Content-Length (chunked), and ignores Range.
	NoContentLength bool
	// SlowBody pauses this long before each 16 KiB chunk of every body served.
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
	// Truncate serves the headers with the full Content-Length (of the whole body, or of the range
	// asked for), then only TruncateAt bytes (half the content when TruncateAt is zero) before
	// dropping the connection.
	Truncate   bool
	TruncateAt int64
	// Reset closes the connection with a TCP reset: without any answer, or, with Truncate, in the
	// middle of the body.
	Reset bool
}

// ProfileBehavior returns the behaviour of a profile:
//
//   - synapse: serves every download itself on v1 and v3; ignores allow_redirect.
//   - media-repo: v3 redirects (307) to the CDN when asked; v1 always redirects; a non-boolean
//     allow_redirect is 400 M_UNKNOWN; the CDN refuses requests carrying Authorization; the first
//     request for a thumbnail size is served directly.
//   - mediaproxy: client v1 only; always 307 with a Cache-Control derived from the URL's expiry.
//   - strict: rejects any allow_redirect with 400 M_INVALID_PARAM; otherwise serves directly.
//   - legacy: media v3 only (no authenticated media); redirects (307) when asked.
//
// An unknown profile returns false.
func ProfileBehavior(p Profile) (Behavior, bool) {
	switch p {
	case ProfileSynapse:
		return Behavior{}, true
	case ProfileMediaRepo, "":
		return Behavior{
			Redirect: 307, V3Redirect: WhenAsked, V1Redirect: Always,
			Param: ParamBoolean, CDNRejectsAuth: true, ThumbnailFirstDirect: true,
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
