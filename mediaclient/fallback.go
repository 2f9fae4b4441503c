package mediaclient

// This file holds the pure decisions of the fallback loop (download.go runs them): what an answer
// means for the next request. They read no state but their arguments.

import (
	"context"
	"errors"
	"net/http"
)

// Fallback names a step back from a download's first plan.
type Fallback string

// The fallbacks.
const (
	// FallbackParamRejected: the homeserver rejected allow_redirect, so the request was sent again
	// without it (and the Client remembers that for the homeserver).
	FallbackParamRejected Fallback = "parameter rejected"
	// FallbackV1Unrecognized: the homeserver lacks client v1 media (404/405 M_UNRECOGNIZED), so media
	// v3 was used (and the Client remembers it).
	FallbackV1Unrecognized Fallback = "v1 unrecognized"
	// FallbackRedirectRefused: a redirect broke the policy on media v3, so the bytes were asked for
	// without allow_redirect.
	FallbackRedirectRefused Fallback = "redirect refused"
	// FallbackTargetRefused: the redirect target refused the request (401/403/404/410 even after a
	// fresh redirect) or kept failing (5xx, resets or stalls after the retries, a loop) on media v3,
	// so the bytes were asked for without allow_redirect.
	FallbackTargetRefused Fallback = "redirect target refused"
	// FallbackFederationUnrecognized: the remote server lacks the federation media endpoints (404/405
	// M_UNRECOGNIZED), so the legacy /_matrix/media/v3 endpoint was asked with allow_remote=false, as
	// the spec tells servers to (FederationClient only; the FederationClient remembers it for a while).
	FallbackFederationUnrecognized Fallback = "federation media unrecognized"
)

// Step says why a request was sent.
type Step string

// The steps.
const (
	// StepRequest is the first request of a download.
	StepRequest Step = "request"
	// StepRedirect follows a Location.
	StepRedirect Step = "redirect"
	// StepCached goes straight to a remembered permanent (308) redirect target.
	StepCached Step = "cached redirect"
	// StepRetry starts the chain again at the homeserver after a transient fault (the hop before it
	// says which).
	StepRetry Step = "retry"
	// StepReResolve asks the homeserver for a fresh redirect after the target refused the request
	// (for a FederationClient: asks the remote server again for a fresh Location after the Location
	// failed).
	StepReResolve Step = "re-resolve"
	// StepLocation follows the Location part of a federation media answer (FederationClient).
	StepLocation Step = "location"
	// StepFallback is the first request after a Fallback.
	StepFallback Step = "fallback"
	// StepNextRange asks for the next part of a media that the server sends in ranges (a short 206).
	StepNextRange Step = "next range"
	// StepResume asks for the rest of a body that broke off or stalled.
	StepResume Step = "resume"
)

// rejectsParam reports whether an answer is a homeserver refusing allow_redirect.
func rejectsParam(status int, code string) bool {
	return status == http.StatusBadRequest && (code == "M_INVALID_PARAM" || code == "M_UNKNOWN" || code == "M_UNRECOGNIZED")
}

// refusedRedirectFallback reports whether a request that failed with err is asked again without
// allow_redirect: a redirect that broke the policy, on media v3 (where the homeserver must then serve
// the bytes itself).
func refusedRedirectFallback(api API, param bool, err error) bool {
	return api == APIV3 && param && errors.Is(err, ErrRedirectRefused)
}

// unreachableTargetFallback reports whether a request that failed with err at a redirect target
// (a reset, a stall, a loop through targets: anything but the homeserver's own answer) is asked
// again without allow_redirect, on media v3.
func unreachableTargetFallback(api API, param, fromHome bool, err error) bool {
	return api == APIV3 && param && !fromHome && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
}

// isMedia reports whether a successful status carries the media: 200, 206, and 203 (a proxy's copy
// of a 200). 202, 204 and the other 2xx do not, and are errors.
func isMedia(status int) bool {
	return status == http.StatusOK || status == http.StatusPartialContent || status == http.StatusNonAuthoritativeInfo
}

// decide returns the fallback an unsuccessful answer calls for, or "" when it is final. api is the
// family asked, configured the one the options chose (APIAuto allows the step to v3), param whether
// allow_redirect was sent and fromHome whether the answer came from the homeserver's origin.
func decide(api, configured API, param, fromHome bool, status int, code string) Fallback {
	switch {
	case api == APIV1 && configured == APIAuto && fromHome && (status == http.StatusNotFound || status == http.StatusMethodNotAllowed) && code == "M_UNRECOGNIZED":
		return FallbackV1Unrecognized
	case param && fromHome && rejectsParam(status, code):
		return FallbackParamRejected
	case param && !fromHome && api == APIV3 && (reResolveStatus(status) || status >= 500):
		return FallbackTargetRefused
	}
	return ""
}

// reResolveStatus reports whether a redirect target's answer means its URL went stale or was
// refused, so that the homeserver is asked again for a fresh one.
func reResolveStatus(status int) bool {
	switch status {
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound, http.StatusGone:
		return true
	}
	return false
}
