package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
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
