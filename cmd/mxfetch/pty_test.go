package main

import (
	"bytes"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/creack/pty"

	"github.com/mxfetch/mxfetch/testserver"
)

// TestProgressOnTerminal runs the built binary under a pseudo-terminal and checks that the progress
// bar renders and the summary line closes the run.
func TestProgressOnTerminal(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a binary")
	}
	bin := filepath.Join(t.TempDir(), "mxfetch")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	srv := testserver.New(t, testserver.Config{Behavior: &testserver.Behavior{SlowBody: 2e6}})
	uri := srv.AddMedia(bytes.Repeat([]byte("p"), 2<<20), testserver.MediaOptions{FileName: "big.bin"})
	dir := t.TempDir()
	cmd := exec.Command(bin, "--homeserver", srv.URL, "--token", srv.AccessToken, "-o", dir, uri.String())
	tty, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 24, Cols: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer tty.Close()
	var out bytes.Buffer
	io.Copy(&out, tty) // ends with EIO once the child has exited
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit: %v\n%s", err, out.String())
	}
	screen := out.String()
	if !strings.Contains(screen, "big.bin") || !strings.Contains(screen, "MiB") || !strings.Contains(screen, "[") {
		t.Errorf("no progress bar on the terminal:\n%q", screen)
	}
	if !strings.Contains(screen, "1 downloaded, 0 failed: 2.0 MiB") {
		t.Errorf("no summary line:\n%q", screen)
	}
	if strings.Contains(screen, srv.AccessToken) {
		t.Error("token on the terminal")
	}
}
