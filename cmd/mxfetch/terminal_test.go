package main

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

// TestTerminalText: text passes to a terminal whole, in reads of any size; binary and control
// bytes stop the stream before the read that holds them, even when a character is split between
// two reads.
func TestTerminalText(t *testing.T) {
	for _, c := range []struct {
		in   string
		good bool
	}{
		{"plain text\r\nwith\ttabs\n", true},
		{"été ❤️ 日本語 \u202e", true},
		{"", true},
		{"title\x1b]0;pwned\x07", false},
		{"nul\x00", false},
		{"csi \u009b31m", false},
		{"raw \x9b31m", false},
		{"\x89PNG\r\n\x1a\n", false},
		{"cut at the end \xc3", false},
		{"del\x7f", false},
	} {
		for _, size := range []int{1, 2, 3, 4096} {
			var out bytes.Buffer
			_, err := io.Copy(&out, &terminalText{r: &chunks{s: c.in, n: size}})
			switch {
			case c.good && (err != nil || out.String() != c.in):
				t.Errorf("%q in reads of %d: %v, %q", c.in, size, err, out.String())
			case !c.good && !errors.Is(err, errBinaryTerminal):
				t.Errorf("%q in reads of %d: %v; want errBinaryTerminal", c.in, size, err)
			case !c.good && strings.ContainsAny(out.String(), "\x00\x1b\x07\x7f\u009b") || strings.Contains(out.String(), "\x9b"):
				t.Errorf("%q in reads of %d: %q reached the terminal", c.in, size, out.String())
			}
		}
	}
}

// chunks reads s n bytes at a time.
type chunks struct {
	s string
	n int
}

func (c *chunks) Read(p []byte) (int, error) {
	if c.s == "" {
		return 0, io.EOF
	}
	k := copy(p[:min(len(p), c.n)], c.s)
	c.s = c.s[k:]
	return k, nil
}
