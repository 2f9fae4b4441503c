package main

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/mxfetch/mxfetch/internal/filename"
)

// escape makes text safe to print on a terminal: control characters (C0, DEL and C1, which start
// escape sequences, ring the bell or move the cursor), Unicode format characters (category Cf, such
// as U+202E RIGHT-TO-LEFT OVERRIDE), line and paragraph separators, the other characters that show
// nothing (U+3164 HANGUL FILLER, noncharacters: every character filename.Invisible drops from a
// file name) and bytes that are not UTF-8 are shown as Go escapes (\x1b, \u202e, \U0001fffe,
// \xff). Everything else, backslashes included, is kept. Every line mxfetch prints on stderr passes
// through it: its text may come from a server (error messages, file names, paths).
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
		case escapedRune(r) && r > 0xffff:
			fmt.Fprintf(&b, `\U%08x`, r)
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

// escapedRune reports whether a character is shown escaped: what filename.Invisible drops.
func escapedRune(r rune) bool { return filename.Invisible(r) }
