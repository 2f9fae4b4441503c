//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package main

// Tests of the command's defences beyond those in attack_test.go: the details each fix decided.

import (
	"bytes"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/mxfetch/mxfetch/internal/testbin"
	"github.com/mxfetch/mxfetch/testserver"
)

// TestHangupSaid: SIGHUP says what it removed, and a run started with SIGHUP ignored (nohup) keeps
// it ignored and goes on until another signal stops it.
func TestHangupSaid(t *testing.T) {
	srv := testserver.New(t, testserver.Config{Behavior: breakThenStall()})
	uri := srv.AddMedia(bytes.Repeat([]byte("x"), 100_000), testserver.MediaOptions{FileName: "big.bin"}).String()
	dir := t.TempDir()
	run := start(t, nil, args(hs(srv), []string{"--api", "v3", "-o", dir, uri})...)
	run.waitFor("resuming at byte 10000")
	if code, stderr := run.stop(syscall.SIGHUP); code != 129 || !strings.Contains(stderr, "mxfetch: "+uri+": hung up; removed the unfinished download (10000 bytes)\n") {
		t.Errorf("exit %d; want 129 and a line saying what was removed:\n%s", code, stderr)
	}

	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh to start the command with SIGHUP ignored")
	}
	srv = testserver.New(t, testserver.Config{Behavior: breakThenStall()})
	uri = srv.AddMedia(bytes.Repeat([]byte("x"), 100_000), testserver.MediaOptions{FileName: "big.bin"}).String()
	sh := exec.Command("sh", append([]string{"-c", `trap '' HUP; exec "$0" "$@"`, testbin.Build(t)}, args(hs(srv), []string{"--api", "v3", "-o", dir, uri})...)...)
	run = startCmd(t, sh)
	run.waitFor("resuming at byte 10000")
	run.cmd.Process.Signal(syscall.SIGHUP) // ignored: the run goes on
	code, stderr := run.stop(syscall.SIGTERM)
	if code != 143 || strings.Contains(stderr, "hung up") {
		t.Errorf("exit %d; want SIGHUP ignored and 143 from SIGTERM:\n%s", code, stderr)
	}
}
