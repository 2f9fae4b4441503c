package main

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// escape makes text safe to print on a terminal: control characters (C0, DEL and C1, which start
// escape sequences, ring the bell or move the cursor), Unicode format characters (category Cf, such
// as U+202E RIGHT-TO-LEFT OVERRIDE), line and paragraph separators and bytes that are not UTF-8 are
// shown as Go escapes (\x1b, \u202e, \xff). Everything else, backslashes included, is kept. Every
// line mxfetch prints on stderr passes through it: its text may come from a server (error
// messages, file names, paths).
func escape(s string) string {
	if !needsEscape(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r < 0x80 && escapedRune(r):
			fmt.Fprintf(&b, `\x%02x`, r)
		case escapedRune(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

func needsEscape(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f {
			// Only non-ASCII text takes the slow path.
			for _, r := range s[i:] {
				if r == utf8.RuneError || escapedRune(r) {
					return true
				}
			}
			return false
		}
	}
	return false
}

// escapedRune reports whether a character is shown escaped.
func escapedRune(r rune) bool {
	return r < 0x20 || r >= 0x7f && r < 0xa0 || r > 0x7f && unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp)
}
