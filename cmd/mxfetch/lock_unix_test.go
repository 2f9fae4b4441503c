//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/mxfetch/mxfetch/testserver"
)

// TestContinueLocked: a partial copy another process holds (flock) is left alone, and the run says so.
func TestContinueLocked(t *testing.T) {
	srv := testserver.New(t, testserver.Config{Profile: testserver.ProfileSynapse})
	uri := srv.AddMedia(bytes.Repeat([]byte("L"), 5000), testserver.MediaOptions{FileName: "l.bin"}).String()
	dir := t.TempDir()
	part := filepath.Join(dir, keptPart(t, srv, dir, uri))
	before, _ := os.ReadFile(part)
	f, err := os.OpenFile(part, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	r := cli(t, "", args(hs(srv), []string{"--api", "v3", "--continue", "-o", dir, uri})...)
	after, _ := os.ReadFile(part)
	if r.code != 1 || !strings.Contains(r.stderr, "another mxfetch") || !bytes.Equal(before, after) {
		t.Errorf("exit %d, stderr %q, partial copy %d → %d bytes", r.code, r.stderr, len(before), len(after))
	}
	if _, err := os.Stat(filepath.Join(dir, "l.bin")); err == nil {
		t.Error("a file was finished from a locked partial copy")
	}
}
