package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mxfetch/mxfetch/internal/filename"
	"github.com/mxfetch/mxfetch/testserver"
)

// hostile starts a homeserver whose media v3 download endpoint runs h; any other path answers
// 404 M_UNRECOGNIZED. Its content URIs are mxc://hostile.test/….
func hostile(t *testing.T, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/_matrix/media/v3/download/") {
			h(w, r)
			return
		}
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, `{"errcode":"M_UNRECOGNIZED","error":"Unrecognized request"}`)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// rawControl returns the first control byte in s other than a line feed, or -1.
func rawControl(s string) int {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 0x20 && c != '\n') || c == 0x7f {
			return i
		}
	}
	if strings.ContainsAny(s, "\u009b\u202e\u2028\u200b") {
		return 0
	}
	return -1
}

// TestFailureNamesTheOrigin: a failure line says what went wrong and which origin answered, and -v
// shows every request of a failed download with its method, path (no query) and status.
func TestFailureNamesTheOrigin(t *testing.T) {
	srv := testserver.New(t, testserver.Config{Profile: testserver.ProfileMediaRepo})
	uri := srv.AddMedia([]byte("gone soon"), testserver.MediaOptions{})
	// The CDN object is gone: the CDN answers 404 (and again after the re-resolution).
	srv.SetBehavior(testserver.Behavior{V1Redirect: testserver.Always, Faults: []testserver.Fault{{At: testserver.RoleCDN, Status: 404}}})
	dir := t.TempDir()
	r := cli(t, "", args(hs(srv), []string{"-o", dir, "-v", uri.String()})...)
	cdn := srv.Origin(testserver.OriginCDN)
	if r.code != 1 {
		t.Fatalf("exit %d", r.code)
	}
	id := strings.TrimPrefix(uri.String(), "mxc://")
	if !regexp.MustCompile(`(?m)^mxfetch: ` + regexp.QuoteMeta(uri.String()) + `: .*` + regexp.QuoteMeta(cdn) + `.*HTTP 404|HTTP 404.*` + regexp.QuoteMeta(cdn)).MatchString(r.stderr) {
		t.Errorf("no failure line naming the CDN and its 404:\n%s", r.stderr)
	}
	for _, want := range []string{
		"GET " + srv.URL + "/_matrix/client/v1/media/download/" + id + " → 307 Temporary Redirect, credentials sent",
		"GET " + cdn + "/_cdn/download/" + id + " → 404 Not Found, no credentials",
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
	if strings.Contains(r.stderr, "sig=") || strings.Contains(r.stderr, "?") {
		t.Errorf("a query string on stderr:\n%s", r.stderr)
	}
}

// TestRetriesVisible: a retry is announced with its cause, without -v; -q silences it.
func TestRetriesVisible(t *testing.T) {
	b := testserver.Behavior{Faults: []testserver.Fault{{Count: 1, Status: 503, RetryAfter: "0"}}}
	srv := testserver.New(t, testserver.Config{Behavior: &b})
	uri := srv.AddMedia([]byte("eventually"), testserver.MediaOptions{}).String()
	r := cli(t, "", args(hs(srv), []string{"--api", "v3", "-o", "-", uri})...)
	want := "mxfetch: " + uri + ": retrying after 503 Service Unavailable from " + srv.URL
	if r.code != 0 || r.stdout != "eventually" || !strings.Contains(r.stderr, want) {
		t.Errorf("exit %d, stderr %q; want %q", r.code, r.stderr, want)
	}
	srv.SetBehavior(b)
	if r := cli(t, "", args(hs(srv), []string{"--api", "v3", "-q", "-o", "-", uri})...); r.code != 0 || r.stderr != "" {
		t.Errorf("-q: exit %d, stderr %q", r.code, r.stderr)
	}
	// A body that breaks off is resumed, and the resume says why.
	b = testserver.Behavior{Faults: []testserver.Fault{{Count: 1, Truncate: true, TruncateAt: 4}}}
	srv.SetBehavior(b)
	r = cli(t, "", args(hs(srv), []string{"--api", "v3", "-o", "-", uri})...)
	if r.code != 0 || r.stdout != "eventually" || !strings.Contains(r.stderr, "resuming at byte 4 after the body from "+srv.URL+" broke off: unexpected EOF (resume 1)") {
		t.Errorf("resume: exit %d, %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}

// TestServerTextEscaped: error text and file names from a server never reach stderr raw, and
// --json escapes what encoding/json would leave raw.
func TestServerTextEscaped(t *testing.T) {
	evil := "Not found\x1b]0;pwned\x07\x1b[2J\r1 downloaded, 0 failed\u009b31m\u202eexe.txt"
	srv := hostile(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, `{"errcode":"M_NOT_FOUND\u001b[5m","error":"`+strings.NewReplacer("\x1b", `\u001b`, "\x07", `\u0007`, "\r", `\r`).Replace(evil)+`"}`)
	})
	dir := t.TempDir()
	r := cli(t, "", "--homeserver", srv.URL, "--api", "v3", "-o", dir, "--json", "mxc://hostile.test/abc")
	if r.code != 1 {
		t.Fatalf("exit %d", r.code)
	}
	if i := rawControl(r.stderr); i >= 0 {
		t.Errorf("raw control or format character on stderr at %d: %q", i, r.stderr)
	}
	if !strings.Contains(r.stderr, `Not found\x1b]0;pwned\x07\x1b[2J\x0d1 downloaded, 0 failed\u009b31m\u202eexe.txt`) {
		t.Errorf("stderr does not show the text escaped: %q", r.stderr)
	}
	if i := rawControl(r.stdout); i >= 0 {
		t.Errorf("raw control or format character in --json at %d: %q", i, r.stdout)
	}
	if res := r.results(t); len(res) != 1 || !strings.Contains(res[0].Error, evil) {
		t.Errorf("--json lost the text: %+v", res)
	}
}

// TestTokenHint: without a token, a server that has only authenticated media gets a hint.
func TestTokenHint(t *testing.T) {
	srv := testserver.New(t, testserver.Config{Profile: testserver.ProfileMediaProxy}) // no media v3
	uri := srv.AddMedia([]byte("x"), testserver.MediaOptions{}).String()
	r := cli(t, "", "--homeserver", srv.URL, "-o", t.TempDir(), uri)
	if r.code != 1 || !strings.Contains(r.stderr, "M_UNRECOGNIZED") || !strings.Contains(r.stderr, "no access token was given") || !strings.Contains(r.stderr, "--token") {
		t.Errorf("exit %d, stderr %q", r.code, r.stderr)
	}
	if r := cli(t, "", args(hs(srv), []string{"--api", "v3", "-o", t.TempDir(), uri})...); strings.Contains(r.stderr, "no access token") {
		t.Errorf("hint with a token: %q", r.stderr)
	}
}

// TestBarWithoutLength: without a Content-Length the bar shows the bytes and the speed, never a
// total of zero or a negative ETA.
func TestBarWithoutLength(t *testing.T) {
	pr := &progress{}
	tr := &tracker{pr: pr, name: "stream.bin", total: -1, start: time.Now().Add(-2 * time.Second)}
	tr.Write(make([]byte, 16<<10))
	line := tr.line(79, time.Now())
	if !strings.Contains(line, "16.0 KiB") || !strings.Contains(line, "/s") || strings.Contains(line, "ETA") || strings.Contains(line, "/ 0") || len([]rune(line)) > 79 {
		t.Errorf("line %q", line)
	}
	tr = &tracker{pr: pr, name: strings.Repeat("long name ", 20) + "\u202e", total: 1 << 20, start: time.Now().Add(-time.Second)}
	tr.name = escape(tr.name)
	tr.Write(make([]byte, 256<<10))
	line = tr.line(60, time.Now())
	if !strings.Contains(line, "25%") || !strings.Contains(line, "ETA 3s") || len([]rune(line)) > 60 || rawControl(line) >= 0 {
		t.Errorf("line %q (%d)", line, len([]rune(line)))
	}
}

// TestProgressMessagesAboveBars: on a terminal a message erases the bars, is printed, and the bars
// come back below it.
func TestProgressMessagesAboveBars(t *testing.T) {
	var buf bytes.Buffer
	pr := &progress{w: &buf, live: true, width: func() int { return 80 }, start: time.Now()}
	tr := pr.track("a.bin", 100)
	pr.mu.Lock()
	pr.redraw()
	pr.mu.Unlock()
	pr.println("mxfetch: mxc://s/x: M_NOT_FOUND (HTTP 404): gone\x1b[2J")
	tr.done()
	out := buf.String()
	msg := strings.Index(out, `mxfetch: mxc://s/x: M_NOT_FOUND (HTTP 404): gone\x1b[2J`+"\n")
	if msg < 0 || !strings.Contains(out[:msg], "\x1b[1A\r\x1b[J") || !strings.Contains(out[msg:], "a.bin") {
		t.Errorf("output %q", out)
	}
}

// TestHomeserverQuoted: a host:port homeserver without a scheme is looked up over https, and the
// message quotes it whole and says how to use plain http.
func TestHomeserverQuoted(t *testing.T) {
	srv := testserver.New(t, testserver.Config{Profile: testserver.ProfileSynapse})
	uri := srv.AddMedia([]byte("x"), testserver.MediaOptions{}).String()
	hostPort := strings.TrimPrefix(srv.URL, "http://")
	r := cli(t, "", "--homeserver", hostPort, "--token", srv.AccessToken, "-o", t.TempDir(), uri)
	if r.code != 1 || !strings.Contains(r.stderr, `"`+hostPort+`"`) || !strings.Contains(r.stderr, "--homeserver http://"+hostPort) {
		t.Errorf("exit %d, stderr %q", r.code, r.stderr)
	}
	if n := len(srv.RequestsTo(testserver.OriginHomeserver)); n != 0 {
		t.Errorf("%d requests reached the homeserver's plain-http endpoints", n)
	}
}

// TestCACert: --cacert adds a CA for https; without it the certificate is refused.
func TestCACert(t *testing.T) {
	srv := testserver.New(t, testserver.Config{Profile: testserver.ProfileSynapse, TLS: true})
	uri := srv.AddMedia([]byte("over tls"), testserver.MediaOptions{}).String()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(ca, srv.CertPEM(), 0o644)
	if r := cli(t, "", args(hs(srv), []string{"--cacert", ca, "--retries", "0", "-o", "-", uri})...); r.code != 0 || r.stdout != "over tls" {
		t.Errorf("--cacert: exit %d, %q, %s", r.code, r.stdout, r.stderr)
	}
	if r := cli(t, "", args(hs(srv), []string{"--retries", "0", "-o", "-", uri})...); r.code != 1 || !strings.Contains(r.stderr, "certificate") {
		t.Errorf("without --cacert: exit %d, %s", r.code, r.stderr)
	}
}

// TestCurlHabits: -j4, --output and -vq work on a real run.
func TestCurlHabits(t *testing.T) {
	srv := testserver.New(t, testserver.Config{Profile: testserver.ProfileSynapse})
	uri := srv.AddMedia([]byte("curl"), testserver.MediaOptions{FileName: "c.txt"}).String()
	dir := t.TempDir()
	r := cli(t, "", args(hs(srv), []string{"-j4", "--output", dir, "-vq", uri})...)
	if got, _ := os.ReadFile(filepath.Join(dir, "c.txt")); r.code != 0 || string(got) != "curl" || !strings.Contains(r.stderr, "GET ") {
		t.Errorf("exit %d, file %q, stderr %q", r.code, got, r.stderr)
	}
}

// TestEscapeInvisible: every character that file names drop as invisible is shown escaped, in text
// and in --json, and visible text is left alone.
func TestEscapeInvisible(t *testing.T) {
	for in, want := range map[string]string{
		"a\u3164b":         `a\u3164b`,
		"\u115f.txt":       `\u115f.txt`,
		"x\ufdd0y\uffff":   `x\ufdd0y\uffff`,
		"\U0001fffe":       `\U0001fffe`,
		"\u200b\u2028":     `\u200b\u2028`,
		"\x1b[2J\u009b":    `\x1b[2J\u009b`,
		"été \u2764\ufe0f": "été \u2764\ufe0f",
		"\ufffd":           "\ufffd",
	} {
		if got := escape(in); got != want {
			t.Errorf("escape(%q) = %q; want %q", in, got, want)
		}
		data, _ := json.Marshal(in)
		data = jsonEscapeInvisible(data)
		var back string
		if err := json.Unmarshal(data, &back); err != nil || back != in {
			t.Errorf("JSON of %q: %s (%v)", in, data, err)
		}
		for _, r := range string(data) {
			if filename.Invisible(r) {
				t.Errorf("JSON of %q holds %U raw: %s", in, r, data)
			}
		}
	}
}
