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

// TestWritablePartialPassedOver: a partial copy that others may write to (planted, or made so) is
// neither adopted nor touched: the download keeps its own copy under the next name, a later
// --continue run finishes that one with Range, and the planted files stay as they were.
func TestWritablePartialPassedOver(t *testing.T) {
	srv := testserver.New(t, testserver.Config{Profile: testserver.ProfileSynapse})
	want := content(20_000, 6)
	uri := srv.AddMedia(want, testserver.MediaOptions{FileName: "w.bin"}).String()
	dir := t.TempDir()
	first := keptPart(t, srv, dir, uri)
	planted := bytes.Repeat([]byte("P"), 1000)
	os.WriteFile(filepath.Join(dir, first), planted, 0o600)
	os.Chmod(filepath.Join(dir, first), 0o666) // writable by all: another user may have written it
	os.Chmod(filepath.Join(dir, first+".json"), 0o666)
	sidecar, _ := os.ReadFile(filepath.Join(dir, first+".json"))

	srv.SetBehavior(testserver.Behavior{Faults: []testserver.Fault{{Truncate: true, TruncateAt: 1000}}})
	if r := cli(t, "", args(hs(srv), []string{"--api", "v3", "--retries", "0", "--continue", "-o", dir, uri})...); r.code != 1 {
		t.Fatalf("second run: exit %d %s", r.code, r.stderr)
	}
	second := strings.TrimSuffix(first, ".part") + "-1.part"
	if st, err := os.Stat(filepath.Join(dir, second)); err != nil || st.Mode().Perm() != 0o600 || st.Size() == 0 {
		t.Fatalf("no private copy under the next name (%v): %v", err, dirNames(t, dir))
	}
	srv.SetBehavior(testserver.Behavior{})
	srv.ResetLog()
	r := cli(t, "", args(hs(srv), []string{"--api", "v3", "--continue", "-o", dir, uri})...)
	got, _ := os.ReadFile(filepath.Join(dir, "w.bin"))
	if r.code != 0 || !bytes.Equal(got, want) {
		t.Fatalf("third run: exit %d %s; the file is not the media", r.code, r.stderr)
	}
	if d := downloads(srv); len(d) != 1 || d[0].Header.Get("Range") == "" {
		t.Errorf("third run did not finish the kept copy with Range: %d requests", len(d))
	}
	if b, _ := os.ReadFile(filepath.Join(dir, first)); !bytes.Equal(b, planted) {
		t.Errorf("the planted copy was written to")
	}
	if b, _ := os.ReadFile(filepath.Join(dir, first+".json")); !bytes.Equal(b, sidecar) {
		t.Errorf("the planted sidecar was changed")
	}
	if names := dirNames(t, dir); len(names) != 3 {
		t.Errorf("directory holds %v; want w.bin and the two planted files", names)
	}
}
