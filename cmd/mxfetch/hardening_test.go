//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package main

// Tests of the command's defences beyond those in attack_test.go: the details each fix decided.

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

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

// TestJSONKeptPath: the --json object of a failed --continue download names the partial copy it
// kept, with that copy's size.
func TestJSONKeptPath(t *testing.T) {
	b := testserver.Behavior{Faults: []testserver.Fault{{Truncate: true, TruncateAt: 1000}}}
	srv := testserver.New(t, testserver.Config{Behavior: &b})
	uri := srv.AddMedia(content(50_000, 3), testserver.MediaOptions{FileName: "f.bin"}).String()
	dir := t.TempDir()
	r := cli(t, "", args(hs(srv), []string{"--api", "v3", "--json", "--continue", "-o", dir, uri})...)
	res := r.results(t)
	if r.code != 1 || len(res) != 1 {
		t.Fatalf("exit %d %+v", r.code, res)
	}
	st, err := os.Stat(res[0].Path)
	if err != nil || !strings.HasSuffix(res[0].Path, ".part") || filepath.Dir(res[0].Path) != dir || st.Size() != res[0].Bytes || res[0].Bytes == 0 {
		t.Errorf("path %q, bytes %d; want the kept .part and its size (%v)", res[0].Path, res[0].Bytes, err)
	}
}

// TestFIFOMaxTime: -o FIFO without a reader gives up when --max-time passes, and says so; with a
// reader that comes late, the bytes get through.
func TestFIFOMaxTime(t *testing.T) {
	srv := testserver.New(t, testserver.Config{Profile: testserver.ProfileSynapse})
	data := []byte("read at last")
	uri := srv.AddMedia(data, testserver.MediaOptions{}).String()
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skip("no FIFOs here:", err)
	}
	r := cli(t, "", args(hs(srv), []string{"--api", "v3", "--max-time", "300ms", "-o", fifo, uri})...)
	if r.code != 1 || !strings.Contains(r.stderr, "gave up: --max-time 300ms passed") || !strings.Contains(r.stderr, "has no reader") {
		t.Errorf("exit %d:\n%s", r.code, r.stderr)
	}
	got := make(chan []byte, 1)
	go func() {
		f, err := os.Open(fifo) // blocks until the command opens it for writing
		if err != nil {
			got <- nil
			return
		}
		b, _ := io.ReadAll(f)
		f.Close()
		got <- b
	}()
	if r := cli(t, "", args(hs(srv), []string{"--api", "v3", "-o", fifo, uri})...); r.code != 0 {
		t.Errorf("with a reader: exit %d %s", r.code, r.stderr)
	}
	select {
	case b := <-got:
		if !bytes.Equal(b, data) {
			t.Errorf("the reader got %q", b)
		}
	case <-time.After(10 * time.Second):
		t.Error("the reader got nothing within 10 s")
	}
}
