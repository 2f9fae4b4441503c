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
		".txt":                             "_.txt",
		"..txt":                            "_.txt",
		".tar.gz":                          "tar.gz",
		"\u00a0.txt\u00a0":                 "_.txt",
		"report\u00a0.\u00a0pdf":           "report.pdf",
		"-rf --no-preserve-root":           "_rf --no-preserve-root",
		"--checkpoint-action=exec=sh x.sh": "_-checkpoint-action=exec=sh x.sh",
		".-n":                              "_n",
		".PDF":                             "_.PDF",
		"a-b.txt":                          "a-b.txt",
		"COM0.log":                         "",
		"com\u00b9.txt":                    "",
		"LPT\u00b2":                        "",
		"lpt9":                             "",
		"CONIN$":                           "",
		"conout$.txt":                      "",
		"CON .txt":                         "",
		"COM10.txt":                        "COM10.txt",
		"COM\u2074":                        "COM\u2074",
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
		// Format and separator characters are dropped; other spaces become plain ones.
		"invoice\u202etxt.exe":       "invoicetxt.exe",
		"a\u200bb\u2028c\u2029d.txt": "abcd.txt",
		"\ufeffbom.txt":              "bom.txt",
		"\u2066iso\u2069.pdf":        "iso.pdf",
		"x\u00a0y\u3000z.txt":        "x y z.txt",
		"\u3164\u115f.txt":           "_.txt",
		"\u0085next\u009b[2J.txt":    "next[2J.txt",
		".\u200b./x.txt":             "x.txt",
		"\u200b":                     "",
		"emoji \u2764\ufe0f.png":     "emoji \u2764\ufe0f.png",
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
	if strings.HasPrefix(name, "-") {
		t.Fatalf("name %q starts with a dash", name)
	}
	if Reserved(name) {
		t.Fatalf("name %q is a Windows device name", name)
	}
	if !utf8.ValidString(name) {
		t.Fatalf("name %q is not valid UTF-8", name)
	}
	if len(name) > MaxLen {
		t.Fatalf("name of %d bytes; want at most %d", len(name), MaxLen)
	}
	for _, r := range name {
		if Invisible(r) {
			t.Fatalf("invisible character %U in %q", r, name)
		}
	}
}

func TestFit(t *testing.T) {
	short := Fit("abc", ".txt")
	if short != "abc.txt" {
		t.Errorf("Fit(abc, .txt) = %q", short)
	}
	// Media IDs may be 255 bytes long: the name still fits, keeps its extension and stays unique.
	a, b := strings.Repeat("A", 254)+"1", strings.Repeat("A", 254)+"2"
	fa, fb := Fit(a, ".jpeg"), Fit(b, ".jpeg")
	if len(fa) > MaxLen || !strings.HasSuffix(fa, ".jpeg") || fa == fb || !strings.HasPrefix(fa, "AAAA") {
		t.Errorf("Fit of long stems: %q (%d bytes), %q", fa, len(fa), fb)
	}
	if got := Fit(strings.Repeat("é", 150), ""); len(got) > MaxLen || !utf8.ValidString(got) {
		t.Errorf("Fit cut a rune: %q", got)
	}
}

// TestFromID: a name made of a media ID passes the same checks as a server's file name, and is
// never empty.
func TestFromID(t *testing.T) {
	for _, c := range []struct{ id, ext, want string }{
		{"abc", ".txt", "abc.txt"},
		{"-n", "", "_n"},
		{"--help", ".png", "_-help.png"},
		{"CON", ".txt", "_CON.txt"},
		{"com1", "", "_com1"},
		{"LPT0", ".log", "_LPT0.log"},
		{"x-100x100", ".jpg", "x-100x100.jpg"},
	} {
		got := FromID(c.id, c.ext)
		if got != c.want {
			t.Errorf("FromID(%q, %q) = %q; want %q", c.id, c.ext, got, c.want)
		}
		checkSafe(t, got)
	}
	if got := FromID(strings.Repeat("-", 255), ".jpeg"); len(got) > MaxLen || !strings.HasSuffix(got, ".jpeg") {
		t.Errorf("FromID of a long ID: %q", got)
	}
}

func TestExtension(t *testing.T) {
	for in, want := range map[string]string{
		"text/plain":                ".txt",
		"text/plain; charset=utf-8": ".txt",
		"image/jpeg":                ".jpg",
		"IMAGE/PNG":                 ".png",
		"image/gif":                 ".gif",
		"image/webp":                ".webp",
		"image/svg+xml":             ".svg",
		"video/mp4":                 ".mp4",
		"video/webm":                ".webm",
		"audio/ogg":                 ".ogg",
		"audio/mpeg":                ".mp3",
		"audio/mp4":                 ".m4a",
		"application/pdf":           ".pdf",
		"application/json":          ".json",
		"application/zip":           ".zip",
		"application/octet-stream":  "",
		"x/unknown":                 "",
		"":                          "",
		"not a type":                "",
	} {
		if got := Extension(in); got != want {
			t.Errorf("Extension(%q) = %q; want %q", in, got, want)
		}
	}
}
