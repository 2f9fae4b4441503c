package filename

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestSanitize(t *testing.T) {
	for in, want := range map[string]string{
		"photo.jpg":                        "photo.jpg",
		"../../etc/passwd":                 "passwd",
		`..\..\windows\win.ini`:            "win.ini",
		"/abs/path/x.png":                  "x.png",
		".bashrc":                          "bashrc",
		"...":                              "",
		"..":                               "",
		".":                                "",
		"":                                 "",
		"a\x00b\nc\rd\x7f.txt":             "abcd.txt",
		"CON":                              "",
		"con.txt":                          "",
		"LPT1.log":                         "",
		"console.txt":                      "console.txt",
		"what?.txt":                        "what_.txt",
		"  spaced  ":                       "spaced",
		"trailing. ":                       "trailing",
		"dir/":                             "",
		"résumé 2026.pdf":                  "résumé 2026.pdf",
		"\xff\xfe.bin":                     "_.bin",
		strings.Repeat("a", 300):           strings.Repeat("a", 200),
		strings.Repeat("é", 150) + ".jpeg": strings.Repeat("é", 97) + ".jpeg",
	} {
		if got := Sanitize(in); got != want {
			t.Errorf("Sanitize(%q) = %q; want %q", in, got, want)
		}
	}
}

func TestFromContentDisposition(t *testing.T) {
	for in, want := range map[string]string{
		`inline; filename="cat.png"`:                 "cat.png",
		`attachment; filename=report.pdf`:            "report.pdf",
		`inline; filename*=UTF-8''%C3%A9t%C3%A9.txt`: "été.txt",
		`inline; filename="../../x"`:                 "x",
		`inline`:                                     "",
		``:                                           "",
		`inline; filename="unterminated`:             "",
		`attachment; filename="a\"b.txt"`:            "a_b.txt",
		`inline; filename*=UTF-8''..%2F..%2Fevil.sh`: "evil.sh",
	} {
		if got := FromContentDisposition(in); got != want {
			t.Errorf("FromContentDisposition(%q) = %q; want %q", in, got, want)
		}
	}
}

func FuzzFromContentDisposition(f *testing.F) {
	for _, s := range []string{`inline; filename="cat.png"`, `attachment; filename*=UTF-8''%2e%2e%2fx`, `inline; filename=CON`, "inline; filename=\"a\x00b\""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		name := FromContentDisposition(v)
		checkSafe(t, name)
		checkSafe(t, Sanitize(v))
	})
}

func checkSafe(t *testing.T, name string) {
	t.Helper()
	if name == "" {
		return
	}
	if strings.ContainsAny(name, `/\`) {
		t.Fatalf("name %q has a path separator", name)
	}
	if strings.HasPrefix(name, ".") { // ".", ".." and hidden files
		t.Fatalf("name %q starts with a dot", name)
	}
	if !utf8.ValidString(name) {
		t.Fatalf("name %q is not valid UTF-8", name)
	}
	if len(name) > maxLen {
		t.Fatalf("name of %d bytes; want at most %d", len(name), maxLen)
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			t.Fatalf("control character in %q", name)
		}
	}
}
