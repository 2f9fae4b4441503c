package main

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mxfetch/mxfetch/internal/filename"
	"github.com/mxfetch/mxfetch/testserver"
)

// TestLongMediaIDs: media IDs of up to 255 characters are valid; their files get names that fit,
// with the extension of their type.
func TestLongMediaIDs(t *testing.T) {
	srv := testserver.New(t, testserver.Config{Profile: testserver.ProfileSynapse})
	var uris []string
	for _, n := range []int{230, 231, 250, 255} {
		u := srv.AddMedia([]byte(strings.Repeat("L", n)), testserver.MediaOptions{MediaID: strings.Repeat("a", n-1) + "Z", ContentType: "image/jpeg"})
		uris = append(uris, u.String())
	}
	dir := t.TempDir()
	r := cli(t, "", args(hs(srv), []string{"--json", "-o", dir}, uris)...)
	res := r.results(t)
	if r.code != 0 || len(res) != len(uris) {
		t.Fatalf("exit %d %s", r.code, r.stderr)
	}
	seen := map[string]bool{}
	for _, x := range res {
		base := filepath.Base(x.Path)
		if !x.OK || len(base) > filename.MaxLen || !strings.HasSuffix(base, ".jpg") || seen[base] {
			t.Errorf("result %+v (%d bytes)", x, len(base))
		}
		seen[base] = true
	}
	if names := dirNames(t, dir); len(names) != len(uris) {
		t.Errorf("directory holds %v", names)
	}
}

// TestExtensions: the extension comes from a fixed table, whatever the machine's mime.types says.
func TestExtensions(t *testing.T) {
	srv := testserver.New(t, testserver.Config{Profile: testserver.ProfileSynapse})
	dir := t.TempDir()
	want := map[string]string{}
	var uris []string
	for ct, ext := range map[string]string{"text/plain; charset=utf-8": ".txt", "image/jpeg": ".jpg", "video/mp4": ".mp4", "video/webm": ".webm", "audio/ogg": ".ogg", "application/octet-stream": ""} {
		u := srv.AddMedia([]byte(ct), testserver.MediaOptions{ContentType: ct})
		want[u.String()] = u.FileID + ext
		uris = append(uris, u.String())
	}
	r := cli(t, "", args(hs(srv), []string{"--json", "-o", dir}, uris)...)
	for _, x := range r.results(t) {
		if filepath.Base(x.Path) != want[x.URI] {
			t.Errorf("%s (%s) saved as %s; want %s", x.URI, x.ContentType, filepath.Base(x.Path), want[x.URI])
		}
	}
}

// TestNameThroughRedirect: a file name given by the homeserver's redirect is kept when the CDN's
// answer has none.
func TestNameThroughRedirect(t *testing.T) {
	cdn := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/pdf")
		io.WriteString(w, "%PDF-1.7")
	}))
	t.Cleanup(cdn.Close)
	srv := hostile(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Disposition", `inline; filename="report 2026.pdf"`)
		http.Redirect(w, r, cdn.URL+"/object?sig=x", http.StatusTemporaryRedirect)
	})
	dir := t.TempDir()
	r := cli(t, "", "--homeserver", srv.URL, "--api", "v3", "-o", dir, "mxc://hostile.test/rep")
	if got, _ := os.ReadFile(filepath.Join(dir, "report 2026.pdf")); r.code != 0 || string(got) != "%PDF-1.7" {
		t.Errorf("exit %d %s; directory %v", r.code, r.stderr, dirNames(t, dir))
	}
}

// TestFormatCharactersInNames: format and separator characters never reach a file name.
func TestFormatCharactersInNames(t *testing.T) {
	srv := testserver.New(t, testserver.Config{Profile: testserver.ProfileSynapse})
	dir := t.TempDir()
	var uris []string
	for _, n := range []string{"invoice\u202etxt.exe", "zero\u200bwidth.txt", "line\u2028sep.txt", "\ufeffbom.txt"} {
		uris = append(uris, srv.AddMedia([]byte(n), testserver.MediaOptions{FileName: n}).String())
	}
	r := cli(t, "", args(hs(srv), []string{"-o", dir}, uris)...)
	names := dirNames(t, dir)
	if r.code != 0 || strings.Join(names, "|") != "bom.txt|invoicetxt.exe|linesep.txt|zerowidth.txt" {
		t.Errorf("exit %d %s; names %q", r.code, r.stderr, names)
	}
}

// TestRepeatedURIs: a URI given three times is downloaded once, written once and reported three
// times.
func TestRepeatedURIs(t *testing.T) {
	srv := testserver.New(t, testserver.Config{Profile: testserver.ProfileSynapse})
	data := bytes.Repeat([]byte("r"), 100)
	uri := srv.AddMedia(data, testserver.MediaOptions{ContentType: "text/plain"}).String()
	dir := t.TempDir()
	r := cli(t, "", args(hs(srv), []string{"--json", "-o", dir, uri, uri, uri})...)
	res := r.results(t)
	if r.code != 0 || len(res) != 3 {
		t.Fatalf("exit %d %s", r.code, r.stderr)
	}
	for _, x := range res {
		if !x.OK || x.Path != res[0].Path || x.SHA256 != sum(data) {
			t.Errorf("result %+v", x)
		}
	}
	if names := dirNames(t, dir); len(names) != 1 {
		t.Errorf("directory holds %v", names)
	}
	if n := len(downloads(srv)); n != 1 {
		t.Errorf("%d download requests; want 1", n)
	}
}

// downloads returns the download requests the server received.
func downloads(srv *testserver.Server) []testserver.Request {
	var out []testserver.Request
	for _, r := range srv.Requests() {
		if strings.Contains(r.Path, "/download/") {
			out = append(out, r)
		}
	}
	return out
}
