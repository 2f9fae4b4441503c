//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package main

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mxfetch/mxfetch/testserver"
)

// TestSpecialFiles: a device or a FIFO named by -o is written to, never refused or replaced, with
// or without --clobber.
func TestSpecialFiles(t *testing.T) {
	srv := testserver.New(t, testserver.Config{Profile: testserver.ProfileSynapse})
	data := []byte("into the pipe")
	uri := srv.AddMedia(data, testserver.MediaOptions{}).String()
	for _, extra := range [][]string{nil, {"--clobber"}} {
		r := cli(t, "", args(hs(srv), extra, []string{"--json", "-o", os.DevNull, uri, uri})...)
		if st, err := os.Lstat(os.DevNull); r.code != 0 || err != nil || st.Mode()&fs.ModeCharDevice == 0 {
			t.Fatalf("-o %s %v: exit %d %s; %v", os.DevNull, extra, r.code, r.stderr, st.Mode())
		}
		if res := r.results(t); len(res) != 2 || res[0].Bytes != int64(len(data)) || res[0].SHA256 != sum(data) {
			t.Errorf("-o %s: %+v", os.DevNull, res)
		}

		fifo := filepath.Join(t.TempDir(), "fifo")
		if err := syscall.Mkfifo(fifo, 0o600); err != nil {
			t.Skip("no FIFOs here:", err)
		}
		// Opened for reading and writing, the FIFO does not block, and holds what is written.
		reader, err := os.OpenFile(fifo, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		r = cli(t, "", args(hs(srv), extra, []string{"-o", fifo, uri})...)
		if st, err := os.Lstat(fifo); r.code != 0 || err != nil || st.Mode()&fs.ModeNamedPipe == 0 {
			t.Fatalf("-o fifo %v: exit %d %s; %v", extra, r.code, r.stderr, st.Mode())
		}
		reader.SetReadDeadline(time.Now().Add(5 * time.Second))
		got := make([]byte, len(data))
		if _, err := reader.Read(got); err != nil || !bytes.Equal(got, data) {
			t.Errorf("the FIFO got %q, %v", got, err)
		}
		reader.Close()
	}
}

// TestClobberKeepsLinks: with --clobber, a symbolic link named by -o keeps pointing at the new
// file; in an output directory a link or a FIFO under the chosen name is never replaced.
func TestClobberKeepsLinks(t *testing.T) {
	srv := testserver.New(t, testserver.Config{Profile: testserver.ProfileSynapse})
	uri := srv.AddMedia([]byte("fresh"), testserver.MediaOptions{FileName: "f.txt"}).String()
	dir := t.TempDir()
	real := filepath.Join(dir, "real.txt")
	os.WriteFile(real, []byte("old"), 0o600)
	link := filepath.Join(dir, "link.txt")
	os.Symlink("real.txt", link)
	if r := cli(t, "", args(hs(srv), []string{"--clobber", "-o", link, uri})...); r.code != 0 {
		t.Fatalf("exit %d %s", r.code, r.stderr)
	}
	if got, _ := os.ReadFile(real); string(got) != "fresh" {
		t.Errorf("the link's target holds %q", got)
	}
	if st, _ := os.Lstat(link); st.Mode()&fs.ModeSymlink == 0 {
		t.Error("the link was replaced")
	}
	if st, _ := os.Stat(real); st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v; want the old file's 0600", st.Mode().Perm())
	}

	out := t.TempDir()
	outside := filepath.Join(t.TempDir(), "outside")
	os.WriteFile(outside, []byte("keep"), 0o644)
	os.Symlink(outside, filepath.Join(out, "f.txt"))
	r := cli(t, "", args(hs(srv), []string{"--clobber", "-o", out, uri})...)
	if got, _ := os.ReadFile(outside); r.code != 1 || string(got) != "keep" || !strings.Contains(r.stderr, "symbolic link") {
		t.Errorf("exit %d, %s; outside file %q", r.code, r.stderr, got)
	}
	if names := dirNames(t, out); len(names) != 1 {
		t.Errorf("left %v", names)
	}
}

// TestInheritedDescriptors: /dev/fd/N and /proc/self/fd/N name a descriptor the command was given,
// written to at its offset (here, appended to); /dev/stdout is -o - in every way, --json's conflict
// included.
func TestInheritedDescriptors(t *testing.T) {
	srv := testserver.New(t, testserver.Config{Profile: testserver.ProfileSynapse})
	uri := srv.AddMedia([]byte("media\n"), testserver.MediaOptions{}).String()
	for _, path := range []string{"/dev/fd/3", "/proc/self/fd/3"} {
		if _, err := os.Stat(filepath.Dir(path)); err != nil {
			continue
		}
		log := filepath.Join(t.TempDir(), "log")
		os.WriteFile(log, []byte("before\n"), 0o600)
		f, err := os.OpenFile(log, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		cmd := command(t, args(hs(srv), []string{"--api", "v3", "--clobber", "-o", path, uri})...)
		cmd.ExtraFiles = []*os.File{f}
		out, err := cmd.CombinedOutput()
		f.Close()
		if got, _ := os.ReadFile(log); err != nil || string(got) != "before\nmedia\n" {
			t.Errorf("-o %s: %v %s; the file holds %q", path, err, out, got)
		}
	}
	if r := cli(t, "", args(hs(srv), []string{"--json", "-o", "/dev/stdout", uri})...); r.code != 2 || !strings.Contains(r.stderr, "--json and -o /dev/stdout both want standard output") {
		t.Errorf("--json -o /dev/stdout: exit %d %s", r.code, r.stderr)
	}
	if r := cli(t, "", args(hs(srv), []string{"--api", "v3", "-o", "/dev/stdout", uri})...); r.code != 0 || r.stdout != "media\n" {
		t.Errorf("-o /dev/stdout in process: exit %d %q %s", r.code, r.stdout, r.stderr)
	}
}
