package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/mxfetch/mxfetch/testserver"
)

func TestContinue(t *testing.T) {
	// Every answer breaks off after 1000 bytes: the run fails and, with --continue, keeps what it got.
	b := testserver.Behavior{V1Redirect: testserver.Always, Faults: []testserver.Fault{{At: testserver.RoleCDN, Truncate: true, TruncateAt: 1000}}}
	srv := testserver.New(t, testserver.Config{Behavior: &b})
	want := bytes.Repeat([]byte("0123456789abcdef"), 10_000)
	uri := srv.AddMedia(want, testserver.MediaOptions{FileName: "big.bin"})
	dir := t.TempDir()
	base := args(hs(srv), []string{"--json", "--continue", "-o", dir, uri.String()})

	r := cli(t, "", base...)
	if r.code != 1 {
		t.Fatalf("first run: exit %d", r.code)
	}
	names := dirNames(t, dir)
	if len(names) != 2 || !strings.HasSuffix(names[0], ".part") {
		t.Fatalf("first run left %v; want the partial copy and its sidecar", names)
	}
	kept, _ := os.ReadFile(filepath.Join(dir, names[0]))
	if len(kept) == 0 || !bytes.Equal(kept, want[:len(kept)]) {
		t.Fatalf("partial copy: %d bytes, not a prefix of the media", len(kept))
	}

	srv.SetBehavior(testserver.Behavior{V1Redirect: testserver.Always})
	srv.ResetLog()
	r = cli(t, "", base...)
	res := r.results(t)
	if r.code != 0 || len(res) != 1 {
		t.Fatalf("second run: exit %d, results %+v; want 0 and one\n%s", r.code, res, r.stderr)
	}
	if res[0].SHA256 != sum(want) {
		t.Errorf("second run: sha256 %s; want the media's, %s", res[0].SHA256, sum(want))
	}
	if res[0].Bytes != int64(len(want)) {
		t.Errorf("second run: %d bytes; want %d", res[0].Bytes, len(want))
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "big.bin")); !bytes.Equal(got, want) {
		t.Fatal("continued file differs")
	}
	cdn := srv.RequestsTo(testserver.OriginCDN)
	if len(cdn) != 1 {
		t.Fatalf("second run: %d CDN requests; want 1", len(cdn))
	}
	if got, want := cdn[0].Header.Get("Range"), "bytes="+strconv.Itoa(len(kept))+"-"; got != want {
		t.Errorf("second run: Range %q; want %q", got, want)
	}
	if cdn[0].Header.Get("If-Range") == "" {
		t.Error("second run: no If-Range")
	}
	if names := dirNames(t, dir); len(names) != 1 {
		t.Errorf("left %v; want only big.bin", names)
	}
}

func TestContinueChangedMedia(t *testing.T) {
	b := testserver.Behavior{Faults: []testserver.Fault{{Truncate: true, TruncateAt: 500}}}
	srv := testserver.New(t, testserver.Config{Behavior: &b})
	uri := srv.AddMedia(bytes.Repeat([]byte("old "), 5000), testserver.MediaOptions{FileName: "f.txt"})
	dir := t.TempDir()
	base := args(hs(srv), []string{"--continue", "-o", filepath.Join(dir, "f.txt"), uri.String()})
	if r := cli(t, "", base...); r.code != 1 {
		t.Fatalf("first run: exit %d", r.code)
	}
	fresh := bytes.Repeat([]byte("new!"), 6000)
	srv.SetContent(uri.FileID, fresh)
	srv.SetBehavior(testserver.Behavior{})
	if r := cli(t, "", base...); r.code != 0 {
		t.Fatalf("second run: exit %d %s", r.code, r.stderr)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "f.txt")); !bytes.Equal(got, fresh) {
		t.Errorf("file is not the new media (%d bytes)", len(got))
	}
	if r := cli(t, "", args(hs(srv), []string{"--continue", "-o", "-", uri.String()})...); r.code != 2 {
		t.Errorf("--continue -o -: exit %d", r.code)
	}
}

// keptPart runs a --continue download that breaks off after 1000 bytes and returns the name of the
// partial copy it keeps in dir.
func keptPart(t *testing.T, srv *testserver.Server, dir string, uri string) string {
	t.Helper()
	srv.SetBehavior(testserver.Behavior{Faults: []testserver.Fault{{Truncate: true, TruncateAt: 1000}}})
	if r := cli(t, "", args(hs(srv), []string{"--api", "v3", "--continue", "-o", dir, uri})...); r.code != 1 {
		t.Fatalf("first run: exit %d %s", r.code, r.stderr)
	}
	srv.SetBehavior(testserver.Behavior{})
	for _, n := range dirNames(t, dir) {
		if strings.HasSuffix(n, ".part") {
			return n
		}
	}
	t.Fatalf("no partial copy in %v", dirNames(t, dir))
	return ""
}

// TestContinueSymlinkedPart: a symbolic link planted where the partial copy lives is never followed:
// the file it points to, outside -o, stays as it was.
func TestContinueSymlinkedPart(t *testing.T) {
	srv := testserver.New(t, testserver.Config{Profile: testserver.ProfileSynapse})
	want := bytes.Repeat([]byte("media "), 2000)
	uri := srv.AddMedia(want, testserver.MediaOptions{FileName: "m.bin"}).String()
	dir := filepath.Join(t.TempDir(), "out")
	os.Mkdir(dir, 0o755)
	part := keptPart(t, srv, dir, uri)

	victim := filepath.Join(t.TempDir(), "victim")
	os.WriteFile(victim, []byte("precious"), 0o644)
	os.Remove(filepath.Join(dir, part))
	if err := os.Symlink(victim, filepath.Join(dir, part)); err != nil {
		t.Fatal(err)
	}
	r := cli(t, "", args(hs(srv), []string{"--api", "v3", "--continue", "--json", "-o", dir, uri})...)
	if got, _ := os.ReadFile(victim); string(got) != "precious" {
		t.Fatalf("the file behind the link was written: %q", got)
	}
	got, _ := os.ReadFile(filepath.Join(dir, "m.bin"))
	if r.code != 0 || !bytes.Equal(got, want) || r.results(t)[0].SHA256 != sum(want) {
		t.Errorf("exit %d %s; file %d bytes", r.code, r.stderr, len(got))
	}
	if names := dirNames(t, dir); len(names) != 1 {
		t.Errorf("left %v", names)
	}
}

// TestDuplicatesContinue: the same URI twice with -j 2 --continue is downloaded once, into one
// file, and reported twice with the hash of that file.
func TestDuplicatesContinue(t *testing.T) {
	srv := testserver.New(t, testserver.Config{Profile: testserver.ProfileSynapse})
	want := bytes.Repeat([]byte("dup"), 30_000)
	uri := srv.AddMedia(want, testserver.MediaOptions{FileName: "d.bin"}).String()
	dir := t.TempDir()
	r := cli(t, "", args(hs(srv), []string{"--api", "v3", "-j", "2", "--continue", "--json", "-o", dir, uri, uri, uri})...)
	res := r.results(t)
	if r.code != 0 || len(res) != 3 {
		t.Fatalf("exit %d %s %+v", r.code, r.stderr, res)
	}
	data, _ := os.ReadFile(filepath.Join(dir, "d.bin"))
	for _, x := range res {
		if !x.OK || x.URI != uri || x.Path != filepath.Join(dir, "d.bin") || x.SHA256 != sum(data) || x.Bytes != int64(len(data)) {
			t.Errorf("result %+v; file %d bytes", x, len(data))
		}
	}
	if !bytes.Equal(data, want) {
		t.Error("file differs")
	}
	if names := dirNames(t, dir); len(names) != 1 {
		t.Errorf("directory holds %v", names)
	}
	if n := len(srv.RequestsTo(testserver.OriginHomeserver)); n != 1 {
		t.Errorf("%d requests; want 1", n)
	}
}

// TestContinueChangedWith206: a server that ignores If-Range answers a changed media with a 206 and
// a new ETag: the partial copy is discarded and the media downloaded anew, in the same run.
func TestContinueChangedWith206(t *testing.T) {
	old, fresh := bytes.Repeat([]byte("old!"), 1000), bytes.Repeat([]byte("new?"), 1500)
	var phase atomic.Int32
	srv := hostile(t, func(w http.ResponseWriter, r *http.Request) {
		content, etag := old, `"v1"`
		if phase.Load() > 0 {
			content, etag = fresh, `"v2"`
		}
		w.Header().Set("ETag", etag)
		w.Header().Set("Content-Disposition", "inline; filename=c.bin")
		start := 0
		if rng, ok := strings.CutPrefix(r.Header.Get("Range"), "bytes="); ok {
			start, _ = strconv.Atoi(strings.TrimSuffix(rng, "-"))
			w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, len(content)-1, len(content)))
			w.Header().Set("Content-Length", strconv.Itoa(len(content)-start))
			w.WriteHeader(http.StatusPartialContent)
		} else {
			w.Header().Set("Content-Length", strconv.Itoa(len(content)))
		}
		body := content[start:]
		if phase.Load() == 0 {
			body = body[:min(len(body), 500)] // breaks off, and each resume too
		}
		w.Write(body)
	})
	dir := t.TempDir()
	base := []string{"--homeserver", srv.URL, "--api", "v3", "--continue", "--json", "-o", dir, "mxc://hostile.test/c"}
	if r := cli(t, "", base...); r.code != 1 {
		t.Fatalf("first run: exit %d", r.code)
	}
	phase.Store(1)
	r := cli(t, "", base...)
	got, _ := os.ReadFile(filepath.Join(dir, "c.bin"))
	if r.code != 0 || !bytes.Equal(got, fresh) || r.results(t)[0].SHA256 != sum(fresh) || !strings.Contains(r.stderr, "no longer fits the media") {
		t.Fatalf("second run: exit %d %s; file %d bytes", r.code, r.stderr, len(got))
	}
	if names := dirNames(t, dir); len(names) != 1 {
		t.Errorf("left %v", names)
	}
}

// TestPlainRunRemovesStalePart: a full download without --continue removes the partial copy an
// earlier --continue run left for the same media.
func TestPlainRunRemovesStalePart(t *testing.T) {
	srv := testserver.New(t, testserver.Config{Profile: testserver.ProfileSynapse})
	uri := srv.AddMedia(bytes.Repeat([]byte("S"), 5000), testserver.MediaOptions{FileName: "s.bin"}).String()
	dir := t.TempDir()
	keptPart(t, srv, dir, uri)
	if r := cli(t, "", args(hs(srv), []string{"--api", "v3", "-o", dir, uri})...); r.code != 0 {
		t.Fatalf("exit %d %s", r.code, r.stderr)
	}
	if names := dirNames(t, dir); len(names) != 1 || names[0] != "s.bin" {
		t.Errorf("left %v", names)
	}
}

// TestPartNameFits: the partial copy of a media ID of 255 characters has a name that fits.
func TestPartNameFits(t *testing.T) {
	srv := testserver.New(t, testserver.Config{Profile: testserver.ProfileSynapse})
	long := strings.Repeat("x", 255)
	uri := srv.AddMedia(bytes.Repeat([]byte("P"), 5000), testserver.MediaOptions{MediaID: long}).String()
	dir := t.TempDir()
	part := keptPart(t, srv, dir, uri)
	if len(part) > 100 {
		t.Errorf("partial copy name of %d bytes", len(part))
	}
	if r := cli(t, "", args(hs(srv), []string{"--api", "v3", "--continue", "-o", dir, uri})...); r.code != 0 {
		t.Errorf("exit %d %s", r.code, r.stderr)
	}
}

// TestContinueWithoutValidators: a server that sends neither ETag nor Last-Modified and answers
// ranges in chunks (matrix-media-repo serving the bytes itself) still gets its partial copy
// finished: with Range alone, after the total size recorded beside the copy is checked. A media of
// another size discards the copy.
func TestContinueWithoutValidators(t *testing.T) {
	serving := testserver.Serving{NoValidators: true, RangeChunk: 64 << 10, IgnoreIfRange: true}
	cut := testserver.Behavior{Direct: serving, Faults: []testserver.Fault{{Truncate: true, TruncateAt: 10_000}}}
	srv := testserver.New(t, testserver.Config{Behavior: &cut})
	want := content(300_000, 7)
	uri := srv.AddMedia(want, testserver.MediaOptions{FileName: "mmr.bin"})
	dir := t.TempDir()
	base := args(hs(srv), []string{"--api", "v3", "--json", "--continue", "-o", dir, uri.String()})

	// Every answer breaks off after 10000 bytes: the first and its three resumes keep 40000.
	r := cli(t, "", base...)
	if r.code != 1 {
		t.Fatalf("first run: exit %d", r.code)
	}
	part := ""
	for _, n := range dirNames(t, dir) {
		if strings.HasSuffix(n, ".part") {
			part = filepath.Join(dir, n)
		}
	}
	kept, _ := os.ReadFile(part)
	if len(kept) != 40_000 || !bytes.Equal(kept, want[:len(kept)]) {
		t.Fatalf("first run kept %d bytes (%v); want a prefix of 40000", len(kept), dirNames(t, dir))
	}
	var meta partialMeta
	if data, err := os.ReadFile(part + ".json"); err != nil || json.Unmarshal(data, &meta) != nil || meta.Total != int64(len(want)) || meta.Validator != "" {
		t.Fatalf("sidecar %+v, %v; want the total %d and no validator", meta, err, len(want))
	}
	if res := r.results(t); len(res) != 1 || res[0].Bytes != 40_000 {
		t.Errorf("first run: %+v; want 40000 bytes kept", res)
	}

	srv.SetBehavior(testserver.Behavior{Direct: serving})
	srv.ResetLog()
	r = cli(t, "", base...)
	res := r.results(t)
	if r.code != 0 || len(res) != 1 || res[0].SHA256 != sum(want) || res[0].Bytes != int64(len(want)) {
		t.Fatalf("second run: exit %d, %+v; want the media's %d bytes\n%s", r.code, res, len(want), r.stderr)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "mmr.bin")); !bytes.Equal(got, want) {
		t.Fatal("the finished file differs from the media")
	}
	d := downloads(srv)
	if len(d) != 4 { // 260000 bytes in chunks of 64 KiB
		t.Errorf("second run: %d requests; want 4", len(d))
	}
	if len(d) > 0 && (d[0].Header.Get("Range") != "bytes=40000-" || d[0].Header.Get("If-Range") != "") {
		t.Errorf("second run asked Range %q If-Range %q; want bytes=40000- alone", d[0].Header.Get("Range"), d[0].Header.Get("If-Range"))
	}
	if names := dirNames(t, dir); len(names) != 1 {
		t.Errorf("left %v; want only mmr.bin", names)
	}

	// The same URI now answers with media of another size: the kept copy is not of it.
	os.Remove(filepath.Join(dir, "mmr.bin"))
	srv.SetBehavior(cut)
	if r := cli(t, "", base...); r.code != 1 {
		t.Fatalf("third run: exit %d", r.code)
	}
	fresh := content(200_000, 9)
	srv.SetContent(uri.FileID, fresh)
	srv.SetBehavior(testserver.Behavior{Direct: serving})
	r = cli(t, "", base...)
	if res := r.results(t); r.code != 0 || len(res) != 1 || res[0].SHA256 != sum(fresh) {
		t.Fatalf("fourth run: exit %d %+v\n%s", r.code, res, r.stderr)
	}
	if !strings.Contains(r.stderr, "the partial copy (40000 bytes) no longer fits the media (it was of 300000 bytes in all, the media's size is now 200000); starting over") {
		t.Errorf("no note on the discarded copy:\n%s", r.stderr)
	}
}

// content returns n bytes that differ with seed and position.
func content(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*31+i/251) ^ seed
	}
	return b
}
