package main

import (
	"regexp"
	"strings"
)

// redactor hides the access token in what mxfetch prints. A homeserver may quote the request's
// Authorization header in an error ("unknown token: Bearer syt_…"), and stderr and --json end up
// in the logs of CI jobs that others read. The zero value hides Bearer values only.
type redactor struct {
	token string // the access token, "" for none
}

// redacted replaces what is hidden.
const redacted = "[REDACTED]"

// minRedacted is the shortest token replaced wherever it appears: a shorter one would garble
// ordinary words (the Bearer rule still hides it after "Bearer").
const minRedacted = 4

// bearerValue is a credential after "Bearer" (as an Authorization header is quoted): a run of the
// characters of RFC 6750's b64token, long enough not to be an ordinary word ("Bearer token
// required"). It never takes a quote or a backslash, so that a JSON string stays valid.
var bearerValue = regexp.MustCompile(`(?i)\bbearer(\s+|%20|\+)[A-Za-z0-9\-._~+/]{8,}=*`)

// clean returns s with the token and every Bearer value replaced by [REDACTED].
func (r redactor) clean(s string) string {
	if len(r.token) >= minRedacted && strings.Contains(s, r.token) {
		s = strings.ReplaceAll(s, r.token, redacted)
	}
	if strings.Contains(strings.ToLower(s), "bearer") {
		s = bearerValue.ReplaceAllString(s, "Bearer "+redacted)
	}
	return s
}
