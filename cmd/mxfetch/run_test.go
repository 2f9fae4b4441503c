package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/mxfetch/mxfetch/testserver"
)

var update = flag.Bool("update", false, "rewrite golden files")

type cliResult struct {
	code           int
	stdout, stderr string
}

// cli runs the command as main would, with buffers for stdio.
func cli(t *testing.T, stdin string, args ...string) cliResult {
	t.Helper()
	return cliCtx(t, t.Context(), stdin, args...)
}

func cliCtx(t *testing.T, ctx context.Context, stdin string, args ...string) cliResult {
	t.Helper()
	var out, errb bytes.Buffer
	err := run(ctx, args, strings.NewReader(stdin), &out, &errb)
	r := cliResult{code: exitCode(err), stdout: out.String(), stderr: errb.String()}
	for _, secret := range []string{testserver.DefaultAccessToken, "file-token", "env-token"} {
		if strings.Contains(r.stdout+r.stderr, secret) {
			t.Errorf("the token appears in the output:\n%s\n%s", r.stdout, r.stderr)
		}
	}
	if strings.Contains(r.stderr, "goroutine ") || strings.Contains(r.stderr, "panic") {
		t.Errorf("stack trace on stderr:\n%s", r.stderr)
	}
	return r
}

func (r cliResult) results(t *testing.T) []result {
	t.Helper()
	var out []result
	dec := json.NewDecoder(strings.NewReader(r.stdout))
	for dec.More() {
		var x result
		if err := dec.Decode(&x); err != nil {
			t.Fatalf("--json output: %v\n%s", err, r.stdout)
		}
		out = append(out, x)
	}
	return out
}

func hs(srv *testserver.Server) []string {
	return []string{"--homeserver", srv.URL, "--token", srv.AccessToken}
}

func args(a ...[]string) []string {
	var out []string
	for _, x := range a {
		out = append(out, x...)
	}
	return out
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// dirNames lists a directory, hidden (temporary) files included.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// TestHelpGolden compares the help, generated from the flag definitions, with testdata/help.golden
// ("go test -run TestHelpGolden -update" rewrites it after a deliberate change).
func TestHelpGolden(t *testing.T) {
	r := cli(t, "", "--help")
	golden := filepath.Join("testdata", "help.golden")
	if *update {
		os.MkdirAll("testdata", 0o755)
		os.WriteFile(golden, []byte(r.stdout), 0o644)
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if r.code != 0 || r.stdout != string(want) {
		t.Errorf("--help (exit %d) differs from %s (run go test -run TestHelpGolden -update after a deliberate change):\n%s", r.code, golden, r.stdout)
	}
	if r := cli(t, "", "-h"); r.code != 0 || r.stdout != string(want) {
		t.Errorf("-h differs")
	}
	if r := cli(t, "", "--version"); r.code != 0 || !strings.HasPrefix(r.stdout, "mxfetch ") {
		t.Errorf("--version: %d %q", r.code, r.stdout)
	}
}

// TestHelpComplete: every flag the command accepts and every key of a --json object is in the help.
func TestHelpComplete(t *testing.T) {
	help := cli(t, "", "--help").stdout
	var o options
	fs := newFlagSet(&o)
	fs.VisitAll(func(f *flag.Flag) {
		spelling := "--" + f.Name
		if len(f.Name) == 1 {
			spelling = "-" + f.Name
		}
		if !regexp.MustCompile(`(^|[ ,])` + regexp.QuoteMeta(spelling) + `([ ,\n]|$)`).MatchString(help) {
			t.Errorf("the help does not name %s", spelling)
		}
	})
	var documented []string
	for _, k := range jsonKeys {
		documented = append(documented, k.key)
		if !regexp.MustCompile(`(?m)^  ` + k.key + ` `).MatchString(help) {
			t.Errorf("the help does not list the JSON key %q", k.key)
		}
	}
	if got := resultKeys(); !slices.Equal(got, documented) {
		t.Errorf("JSON keys of result %v; documented %v", got, documented)
	}
	// And the output has them all.
	line, _ := json.Marshal(result{URI: "mxc://a/b"})
	var m map[string]any
	json.Unmarshal(line, &m)
	for _, k := range documented {
		if _, ok := m[k]; !ok {
			t.Errorf("the JSON output lacks %q: %s", k, line)
		}
	}
}

// resultKeys lists the JSON keys of result in order.
func resultKeys() []string {
	t := reflect.TypeFor[result]()
	var keys []string
	for i := range t.NumField() {
		if k, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ","); k != "" && k != "-" {
			keys = append(keys, k)
		}
	}
	return keys
}

// TestCurlSpellings: the spellings of curl and getopt mean what they mean there.
func TestCurlSpellings(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want []string
	}{
		{[]string{"-j4", "x"}, []string{"-j", "4", "x"}},
		{[]string{"-vq"}, []string{"-v", "-q"}},
		{[]string{"-o-", "x"}, []string{"-o", "-", "x"}},
		{[]string{"-ofile"}, []string{"-o", "file"}},
		{[]string{"--output", "-vq"}, []string{"--output", "-vq"}},
		{[]string{"-o", "-j4"}, []string{"-o", "-j4"}},
		{[]string{"-homeserver", "h"}, []string{"-homeserver", "h"}},
		{[]string{"--", "-vq"}, []string{"--", "-vq"}},
		{[]string{"-vz"}, []string{"-vz"}},
		{[]string{"--jobs=3", "-"}, []string{"--jobs=3", "-"}},
	} {
		var o options
		if got := newFlagSet(&o).curlSpellings(tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("curlSpellings(%q) = %q; want %q", tc.in, got, tc.want)
		}
	}
	o, _, err := parseArgs([]string{"-j4", "--output", "d/", "-vq", "mxc://a/b", "--input=-"})
	if err != nil || o.jobs != 4 || o.output != "d/" || !o.verbose || !o.quiet || o.input != "-" || !slices.Equal(o.uris, []string{"mxc://a/b"}) {
		t.Errorf("parseArgs: %+v, %v", o, err)
	}
}

func TestUsageErrors(t *testing.T) {
	srv := testserver.New(t, testserver.Config{})
	uri := srv.AddMedia([]byte("x"), testserver.MediaOptions{}).String()
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	os.WriteFile(file, []byte("x"), 0o644)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{args(hs(srv), []string{"--bogus", uri}), "unknown flag --bogus\n"},
		{args(hs(srv), []string{uri, "-o", "x", "--bogus=1"}), "unknown flag --bogus\n"},
		{args(hs(srv), []string{"-vz", uri}), "unknown flag -vz\n"},
		{args(hs(srv), []string{"-o", filepath.Join(dir, "newdir"), uri, uri + "x"}), "(-o " + filepath.Join(dir, "newdir") + "/ creates it)"},
		{args(hs(srv), []string{"https://example.org/x"}), "not an mxc"},
		{args(hs(srv), []string{"mxc://server/a/b"}), "invalid content URI"},
		{args(hs(srv), []string{uri, "mxc://server/../x"}), "invalid content URI"},
		{args(hs(srv), []string{"--thumbnail", "0x5", uri}), "--thumbnail"},
		{args(hs(srv), []string{"--thumbnail", "abc", uri}), "--thumbnail"},
		{args(hs(srv), []string{"--thumbnail", "-3x5", uri}), "--thumbnail"},
		{args(hs(srv), []string{"--method", "crop", uri}), "need --thumbnail"},
		{args(hs(srv), []string{"--thumbnail", "5x5", "--method", "zoom", uri}), "--method"},
		{args(hs(srv), []string{"--clobber", "--skip-existing", uri}), "mutually exclusive"},
		{args(hs(srv), []string{"--api", "v2", uri}), "--api"},
		{args(hs(srv), []string{"-j", "0", uri}), "-j"},
		{args(hs(srv), []string{"--max-size", "lots", uri}), "--max-size"},
		{args(hs(srv), []string{"--max-redirects", "-1", uri}), "--max-redirects"},
		{args(hs(srv), []string{"--json", "-o", "-", uri}), "standard output"},
		{args(hs(srv), []string{"-o", filepath.Join(dir, "missing", "x"), uri}), "does not exist"},
		{args(hs(srv), []string{"-o", filepath.Join(dir, "one"), uri, uri}), "names one file"},
		{args(hs(srv), []string{"--token-file", file, uri}), "mutually exclusive"},
		{args(hs(srv), []string{"-i", filepath.Join(dir, "nope"), "-o", dir}), "-i"},
		{args(hs(srv)), "no mxc:// URI"},
		{[]string{"--token", "t", uri}, "no homeserver"},
		{args(hs(srv), []string{"-o", filepath.Join(file, "x"), uri}), file + " is not a directory"},
		{args(hs(srv), []string{"-o", filepath.Join(file, "x", "y"), uri}), file + " is not a directory"},
		{args(hs(srv), []string{"--max-size", "99999999999999999999", uri}), "too large"},
		{args(hs(srv), []string{"--cacert", file, uri}), "no PEM certificate"},
		{args(hs(srv), []string{"-j", "x", uri}), "-j"},
		{args(hs(srv), []string{"--homeserver", "ftp://x", uri}), "scheme"},
	} {
		r := cli(t, "", tc.args...)
		if r.code != 2 {
			t.Errorf("%q: exit %d; want 2", tc.args, r.code)
		}
		if !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%q: stderr %q; want it to say %q", tc.args, r.stderr, tc.want)
		}
		if !strings.HasPrefix(r.stderr, "mxfetch: ") {
			t.Errorf("%q: stderr %q; want it to start with \"mxfetch: \"", tc.args, r.stderr)
		}
	}
	if n := len(srv.Requests()); n != 0 {
		t.Errorf("usage errors made %d requests", n)
	}
	if os.Chmod(dir, 0o500) == nil && os.Geteuid() != 0 {
		if r := cli(t, "", args(hs(srv), []string{"-o", dir, uri})...); r.code != 2 || !strings.Contains(r.stderr, "not writable") {
			t.Errorf("unwritable: %d %q", r.code, r.stderr)
		}
		os.Chmod(dir, 0o755)
	}
}

func TestDownloadJSON(t *testing.T) {
	srv := testserver.New(t, testserver.Config{Profile: testserver.ProfileMediaRepo})
	a := bytes.Repeat([]byte("a"), 5000)
	b := bytes.Repeat([]byte("b"), 7000)
	ua := srv.AddMedia(a, testserver.MediaOptions{ContentType: "text/plain", FileName: "a.txt"})
	ub := srv.AddMedia(b, testserver.MediaOptions{ContentType: "image/png"})
	dir := t.TempDir()
	r := cli(t, "", args(hs(srv), []string{"--json", "-q", "-o", dir, ua.String(), ub.String()})...)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	res := r.results(t)
	if len(res) != 2 {
		t.Fatalf("%d results", len(res))
	}
	for i, want := range []struct {
		uri, path, sum, ctype string
		n                     int64
	}{
		{ua.String(), filepath.Join(dir, "a.txt"), sum(a), "text/plain", 5000},
		{ub.String(), filepath.Join(dir, ub.FileID+".png"), sum(b), "image/png", 7000},
	} {
		x := res[i]
		if !x.OK {
			t.Errorf("result %d: not ok: %+v", i, x)
		}
		if got := (struct {
			uri, path, sum, ctype string
			n                     int64
		}{x.URI, x.Path, x.SHA256, x.ContentType, x.Bytes}); got != want {
			t.Errorf("result %d = %+v; want %+v", i, got, want)
		}
		if x.Fallback {
			t.Errorf("result %d: fallback %q; want none", i, x.FallbackReason)
		}
		if len(x.Hops) != 2 {
			t.Errorf("result %d: hops %+v; want 307 from the homeserver, 200 from the CDN", i, x.Hops)
			continue
		}
		if x.Hops[0].Status != 307 || !x.Hops[0].Credentials {
			t.Errorf("result %d: first hop %+v; want 307 with credentials", i, x.Hops[0])
		}
		if x.Hops[1].Status != 200 || x.Hops[1].Credentials {
			t.Errorf("result %d: second hop %+v; want 200 without credentials", i, x.Hops[1])
		}
		data, _ := os.ReadFile(want.path)
		if sum(data) != want.sum {
			t.Errorf("file %s differs", want.path)
		}
	}
	// The raw JSON has every documented key.
	line := strings.SplitN(r.stdout, "\n", 2)[0]
	for _, k := range []string{"uri", "ok", "path", "bytes", "sha256", "content_type", "hops", "status", "origin", "credentials", "fallback"} {
		if !strings.Contains(line, `"`+k+`"`) {
			t.Errorf("JSON lacks %q: %s", k, line)
		}
	}
	cdn := srv.RequestsTo(testserver.OriginCDN)
	if len(cdn) != 2 {
		t.Errorf("%d CDN requests; want 2", len(cdn))
	}
	for i, r := range cdn {
		if r.HasCredentials() {
			t.Errorf("CDN request %d carried credentials", i)
		}
	}
}

func TestOutputs(t *testing.T) {
	srv := testserver.New(t, testserver.Config{Profile: testserver.ProfileSynapse})
	data := []byte("to stdout and files")
	uri := srv.AddMedia(data, testserver.MediaOptions{FileName: "named.bin"}).String()

	if r := cli(t, "", args(hs(srv), []string{"-o", "-", uri})...); r.code != 0 || r.stdout != string(data) {
		t.Errorf("-o -: %d %q", r.code, r.stdout)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "chosen.name")
	if r := cli(t, "", args(hs(srv), []string{"-o", path, uri})...); r.code != 0 {
		t.Fatalf("-o file: %d %s", r.code, r.stderr)
	}
	if got, _ := os.ReadFile(path); string(got) != string(data) {
		t.Errorf("-o file: %q", got)
	}
	sub := filepath.Join(dir, "new-dir") + "/"
	if r := cli(t, "", args(hs(srv), []string{"-o", sub, uri})...); r.code != 0 {
		t.Fatalf("-o dir/: %d %s", r.code, r.stderr)
	}
	if got, _ := os.ReadFile(filepath.Join(sub, "named.bin")); string(got) != string(data) {
		t.Errorf("-o dir/: %q", got)
	}
	// No -o: the current directory.
	t.Chdir(t.TempDir())
	if r := cli(t, "", args(hs(srv), []string{uri})...); r.code != 0 {
		t.Fatalf("no -o: %d %s", r.code, r.stderr)
	}
	if got, _ := os.ReadFile("named.bin"); string(got) != string(data) {
		t.Errorf("no -o: %q", got)
	}
}

func TestExistingFiles(t *testing.T) {
	srv := testserver.New(t, testserver.Config{Profile: testserver.ProfileSynapse})
	uri := srv.AddMedia([]byte("new content"), testserver.MediaOptions{FileName: "f.txt"}).String()
	dir := t.TempDir()
	path := filepath.Join(dir, "f.txt")
	os.WriteFile(path, []byte("old"), 0o644)

	r := cli(t, "", args(hs(srv), []string{"-o", dir, "--json", uri})...)
	if r.code != 1 || !strings.Contains(r.stderr, "exists") {
		t.Errorf("refuse: exit %d, stderr %q; want 1 and \"exists\"", r.code, r.stderr)
	}
	if got, _ := os.ReadFile(path); string(got) != "old" {
		t.Errorf("refuse: file %q; want it untouched", got)
	}
	r = cli(t, "", args(hs(srv), []string{"-o", dir, "--skip-existing", "--json", uri})...)
	if r.code != 0 {
		t.Errorf("skip: exit %d; want 0", r.code)
	}
	if got, _ := os.ReadFile(path); string(got) != "old" {
		t.Errorf("skip: file %q; want it untouched", got)
	}
	if res := r.results(t); len(res) != 1 || !res[0].Skipped {
		t.Errorf("skip: results %+v; want one, skipped", res)
	}
	r = cli(t, "", args(hs(srv), []string{"-o", dir, "--clobber", uri})...)
	if got, _ := os.ReadFile(path); r.code != 0 || string(got) != "new content" {
		t.Errorf("clobber: exit %d, file %q", r.code, got)
	}
	// An explicit -o file that exists is refused before any request.
	srv.ResetLog()
	if r := cli(t, "", args(hs(srv), []string{"-o", path, uri})...); r.code != 1 || len(srv.Requests()) != 0 {
		t.Errorf("-o existing file: exit %d after %d requests", r.code, len(srv.Requests()))
	}
	if names := dirNames(t, dir); len(names) != 1 {
		t.Errorf("directory holds %v; want only f.txt", names)
	}
}

func TestFileNames(t *testing.T) {
	srv := testserver.New(t, testserver.Config{Profile: testserver.ProfileSynapse})
	u1 := srv.AddMedia([]byte("one"), testserver.MediaOptions{FileName: "same.txt"})
	u2 := srv.AddMedia([]byte("two"), testserver.MediaOptions{FileName: "same.txt"})
	evil := srv.AddMedia([]byte("evil"), testserver.MediaOptions{FileName: "../../escape.txt"})
	dot := srv.AddMedia([]byte("dot"), testserver.MediaOptions{FileName: ".bashrc"})
	dev := srv.AddMedia([]byte("dev"), testserver.MediaOptions{FileName: "CON.txt"})
	dir := t.TempDir()
	r := cli(t, "", args(hs(srv), []string{"--json", "-j", "1", "-o", dir, u1.String(), u2.String(), evil.String(), dot.String(), dev.String()})...)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	res := r.results(t)
	want := []string{"same.txt", "same-" + u2.FileID + ".txt", "escape.txt", "bashrc", dev.FileID}
	for i, w := range want {
		if res[i].Path != filepath.Join(dir, w) {
			t.Errorf("result %d path %s; want %s", i, res[i].Path, w)
		}
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "same.txt")); string(got) != "one" {
		t.Errorf("same.txt = %q", got)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(dir), "escape.txt")); err == nil {
		t.Error("a file was written outside the directory")
	}
}

func TestFailuresLeaveNothing(t *testing.T) {
	// Every answer breaks off after 1000 bytes: the resumes run out and the download fails.
	srv := testserver.New(t, testserver.Config{Behavior: &testserver.Behavior{Faults: []testserver.Fault{{Truncate: true, TruncateAt: 1000}}}})
	uri := srv.AddMedia(bytes.Repeat([]byte("z"), 100_000), testserver.MediaOptions{FileName: "z.bin"})
	dir := t.TempDir()
	missing := "mxc://" + srv.ServerName + "/missing"
	r := cli(t, "", args(hs(srv), []string{"--json", "--retries", "0", "-o", dir, uri.String(), missing})...)
	res := r.results(t)
	if r.code != 1 {
		t.Errorf("exit %d; want 1", r.code)
	}
	if len(res) != 2 {
		t.Fatalf("results %+v; want 2", res)
	}
	for i, x := range res {
		if x.OK {
			t.Errorf("result %d is ok: %+v", i, x)
		}
	}
	if !strings.Contains(res[0].Error, "truncated") || res[1].ErrCode != "M_NOT_FOUND" {
		t.Errorf("errors: %q / %q %q", res[0].Error, res[1].Error, res[1].ErrCode)
	}
	if names := dirNames(t, dir); len(names) != 0 {
		t.Errorf("failed downloads left %v", names)
	}
}

func TestCancelLeavesNothing(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	// The server's log line is written once the answer has started: cancel there, mid-body.
	srv := testserver.New(t, testserver.Config{
		Behavior: &testserver.Behavior{SlowBody: 20 * 1e6},
		Logf:     func(string, ...any) { cancel() },
	})
	uri := srv.AddMedia(bytes.Repeat([]byte("s"), 1<<20), testserver.MediaOptions{FileName: "slow.bin"})
	dir := t.TempDir()
	r := cliCtx(t, ctx, "", args(hs(srv), []string{"--api", "v3", "-o", dir, uri.String()})...)
	if r.code != 1 {
		t.Errorf("exit %d; want 1", r.code)
	}
	if names := dirNames(t, dir); len(names) != 0 {
		t.Errorf("cancelled download left %v", names)
	}
}

func TestFlagsReachTheServer(t *testing.T) {
	srv := testserver.New(t, testserver.Config{Profile: testserver.ProfileMediaRepo})
	uri := srv.AddMedia([]byte("flags"), testserver.MediaOptions{Thumbnail: []byte("t")}).String()
	dir := t.TempDir()
	last := func() testserver.Request {
		reqs := srv.RequestsTo(testserver.OriginHomeserver)
		return reqs[len(reqs)-1]
	}
	if r := cli(t, "", args(hs(srv), []string{"-o", dir, "--thumbnail", "64x32", "--method", "crop", "--animated", uri})...); r.code != 0 {
		t.Fatal(r.stderr)
	}
	q := srv.RequestsTo(testserver.OriginHomeserver)[1].Query()
	for param, want := range map[string]string{"width": "64", "height": "32", "method": "crop", "animated": "true"} {
		if got := q.Get(param); got != want {
			t.Errorf("thumbnail query %s=%q; want %q", param, got, want)
		}
	}
	if r := cli(t, "", args(hs(srv), []string{"-o", "-", "--api", "v3", "--no-redirect", uri})...); r.code != 0 || r.stdout != "flags" {
		t.Fatal(r.stderr)
	}
	if l := last(); !strings.HasPrefix(l.Path, "/_matrix/media/v3/") || l.Query().Has("allow_redirect") {
		t.Errorf("--api v3 --no-redirect: %s?%s", l.Path, l.RawQuery)
	}
	if r := cli(t, "", args(hs(srv), []string{"-o", "-", "--api", "v1", uri})...); r.code != 0 || !strings.HasPrefix(last().Path, "/_matrix/client/v1/") {
		t.Errorf("--api v1: %s", last().Path)
	}
	if r := cli(t, "", args(hs(srv), []string{"-o", "-", "--max-size", "4", uri})...); r.code != 1 || !strings.Contains(r.stderr, "too large") {
		t.Errorf("--max-size: %d %s", r.code, r.stderr)
	}
	if r := cli(t, "", args(hs(srv), []string{"-o", "-", "--max-redirects", "0", uri})...); r.code != 1 || !strings.Contains(r.stderr, "too many redirects") {
		t.Errorf("--max-redirects 0: %d %s", r.code, r.stderr)
	}
	r := cli(t, "", args(hs(srv), []string{"-o", "-", "-v", uri})...)
	if r.code != 0 {
		t.Errorf("-v: exit %d; want 0", r.code)
	}
	id := strings.TrimPrefix(uri, "mxc://")
	for _, want := range []string{
		"GET " + srv.URL + "/_matrix/client/v1/media/download/" + id + " → 307 Temporary Redirect, credentials sent",
		"GET " + srv.Origin(testserver.OriginCDN) + "/_cdn/download/" + id + " → 200 OK, no credentials",
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("-v: stderr lacks %q:\n%s", want, r.stderr)
		}
	}
	if strings.Contains(r.stderr, "sig=") {
		t.Errorf("-v: stderr shows a URL signature:\n%s", r.stderr)
	}
	if r := cli(t, "", args(hs(srv), []string{"-o", "-", "-q", uri})...); r.stderr != "" {
		t.Errorf("-q: %q", r.stderr)
	}
}

func TestRedirectAndRetryFlags(t *testing.T) {
	b := testserver.Behavior{V1Redirect: testserver.Always, Chain: []testserver.OriginName{testserver.OriginCDN, testserver.OriginCDNHost}}
	srv := testserver.New(t, testserver.Config{Behavior: &b})
	uri := srv.AddMedia([]byte("two hops"), testserver.MediaOptions{}).String()
	if r := cli(t, "", args(hs(srv), []string{"-o", "-", "--api", "v1", "--max-redirects", "2", uri})...); r.code != 0 {
		t.Errorf("--max-redirects 2: %d %s", r.code, r.stderr)
	}
	srv.ResetLog()
	if r := cli(t, "", args(hs(srv), []string{"-o", "-", "--api", "v1", "--max-redirects", "1", uri})...); r.code != 1 || len(srv.Requests()) != 2 {
		t.Errorf("--max-redirects 1: %d after %d requests", r.code, len(srv.Requests()))
	}
	b.Faults = []testserver.Fault{{Count: 1, Status: 503}}
	srv.SetBehavior(b)
	if r := cli(t, "", args(hs(srv), []string{"-o", "-", "--api", "v1", "--retries", "0", uri})...); r.code != 1 {
		t.Errorf("--retries 0: %d", r.code)
	}
	srv.SetBehavior(b)
	if r := cli(t, "", args(hs(srv), []string{"-o", "-", "--api", "v1", "--retries", "1", uri})...); r.code != 0 {
		t.Errorf("--retries 1: %d %s", r.code, r.stderr)
	}
}

func TestInputFileAndEnvironment(t *testing.T) {
	srv := testserver.New(t, testserver.Config{Profile: testserver.ProfileSynapse})
	u1 := srv.AddMedia([]byte("1"), testserver.MediaOptions{}).String()
	u2 := srv.AddMedia([]byte("2"), testserver.MediaOptions{}).String()
	dir := t.TempDir()
	input := "# a comment\n" + u1 + "\n\nnot-a-uri\n" + u2 + "\n"
	t.Setenv("MATRIX_HOMESERVER", srv.URL)
	t.Setenv("MATRIX_ACCESS_TOKEN", srv.AccessToken)
	r := cli(t, input, "-i", "-", "--json", "-j", "2", "-o", dir)
	res := r.results(t)
	if r.code != 1 {
		t.Errorf("exit %d; want 1", r.code)
	}
	if len(res) != 3 {
		t.Fatalf("results %+v; want 3", res)
	}
	for i, wantOK := range []bool{true, false, true} {
		if res[i].OK != wantOK {
			t.Errorf("result %d ok = %v; want %v: %+v", i, res[i].OK, wantOK, res[i])
		}
	}
	if res[1].URI != "not-a-uri" {
		t.Errorf("result 1 is for %q; want the bad line, not-a-uri", res[1].URI)
	}
	if n := len(dirNames(t, dir)); n != 2 {
		t.Errorf("%d files written; want 2", n)
	}
	tokenFile := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tokenFile, []byte(srv.AccessToken+"\n"), 0o600)
	t.Setenv("MATRIX_ACCESS_TOKEN", "env-token")
	srv.ResetLog()
	if r := cli(t, "", "--token-file", tokenFile, "--api", "v1", "-o", "-", u1); r.code != 0 || r.stdout != "1" {
		t.Errorf("--token-file: %d %s", r.code, r.stderr)
	}
	if got := srv.Requests()[0].Header.Get("Authorization"); got != "Bearer "+srv.AccessToken {
		t.Errorf("Authorization %q", got)
	}
	if r := cli(t, "", "--api", "v1", "-o", "-", u1); r.code != 1 || !strings.Contains(r.stderr, "M_UNKNOWN_TOKEN") {
		t.Errorf("env token: %d %s", r.code, r.stderr)
	}
}

func TestDemo(t *testing.T) {
	r := cli(t, "", "--demo", "-o", t.TempDir())
	if r.code != 0 {
		t.Errorf("demo: exit %d; want 0\n%s", r.code, r.stderr)
	}
	if !strings.Contains(r.stdout, "307 from homeserver (token sent) → 200 from cdn (token not sent)") {
		t.Errorf("demo: no hop line for the CDN redirect:\n%s", r.stdout)
	}
	if strings.Contains(r.stdout, "FAILED") {
		t.Errorf("demo: a scene failed:\n%s", r.stdout)
	}
	if strings.Contains(r.stdout, "demo-secret-token") {
		t.Error("demo printed the token")
	}
}

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
	}{{"100", 100}, {"1K", 1024}, {"100M", 100 << 20}, {"1.5G", 3 << 29}, {"2GiB", 2 << 30}, {"10MB", 10 << 20}, {"1t", 1 << 40}} {
		if got, err := parseSize(tc.in); err != nil || got != tc.want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{"", "M", "-1", "0", "abc", "1X", "1e30G", "NaN"} {
		if _, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q): no error", in)
		}
	}
}
