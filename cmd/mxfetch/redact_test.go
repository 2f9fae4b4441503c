package main

import "testing"

// TestRedactor: the token is hidden wherever it appears, and so is any Bearer value, in any case
// and spacing; ordinary words after "bearer" and JSON quotes are left alone.
func TestRedactor(t *testing.T) {
	r := redactor{token: "syt_secret_token_123"}
	for in, want := range map[string]string{
		"unknown token: Bearer syt_secret_token_123":        "unknown token: Bearer [REDACTED]",
		"token syt_secret_token_123 expired":                "token [REDACTED] expired",
		`{"error":"authorization: bearer   abcdefgh1234="}`: `{"error":"authorization: Bearer [REDACTED]"}`,
		"Authorization: Bearer%20ZXhhbXBsZS10b2tlbg==":      "Authorization: Bearer [REDACTED]",
		"a bearer token is required":                        "a bearer token is required",
		`"Bearer \"quoted\""`:                               `"Bearer \"quoted\""`,
		"nothing to hide":                                   "nothing to hide",
	} {
		if got := r.clean(in); got != want {
			t.Errorf("clean(%q) = %q; want %q", in, got, want)
		}
	}
	if got := (redactor{token: "ab"}).clean("a tab and ab"); got != "a tab and ab" {
		t.Errorf("a two-letter token garbles text: %q", got)
	}
}
