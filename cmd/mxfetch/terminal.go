package main

import (
	"errors"
	"io"
	"unicode/utf8"
)

// errBinaryTerminal stops a download to a terminal at the first byte that could drive it.
var errBinaryTerminal = errors.New("binary output can mess up your terminal: stopped before it (save it with -o FILE, or pipe it, -o - … | cat, for the bytes as they are)")

// terminalText passes text to a terminal and stops at anything else. curl refuses binary output
// to a terminal unless told "--output -"; mxfetch writes to stdout only when told "-o -", so it
// lets text through (UTF-8, tabs, line ends) and ends the download with errBinaryTerminal, before
// the chunk that holds it, at the first byte that is not: a NUL or another control character
// (ESC starts the sequences that set a window's title or clear the screen), a C1 control or bytes
// that are not UTF-8. A binary file stops before its first byte reaches the screen.
type terminalText struct {
	r    io.Reader
	tail []byte // the start of a character cut by the end of the last read, already passed on
}

func (t *terminalText) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if n > 0 {
		b := append(t.tail, p[:n]...)
		rest, ok := text(b)
		if !ok {
			return 0, errBinaryTerminal
		}
		t.tail = append(t.tail[:0], rest...)
	}
	if errors.Is(err, io.EOF) && len(t.tail) > 0 {
		return n, errBinaryTerminal // the text ends in the middle of a character
	}
	return n, err
}

// text reports whether b is terminal-safe text, and returns the start of a character its end cuts.
func text(b []byte) (rest []byte, ok bool) {
	for i := 0; i < len(b); {
		c := b[i]
		if c < utf8.RuneSelf {
			if c < 0x20 && c != '\t' && c != '\n' && c != '\r' || c == 0x7f {
				return nil, false
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(b[i:])
		switch {
		case r == utf8.RuneError && size <= 1 && !utf8.FullRune(b[i:]):
			return b[i:], true // completed, or not, by the next read
		case r == utf8.RuneError && size <= 1, r < 0xa0: // not UTF-8, or a C1 control
			return nil, false
		}
		i += size
	}
	return nil, true
}
