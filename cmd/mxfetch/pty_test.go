package main

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/creack/pty"

	"github.com/mxfetch/mxfetch/internal/testbin"
	"github.com/mxfetch/mxfetch/testserver"
)

// TestProgressOnTerminal runs the built binary under a pseudo-terminal and checks that the progress
// bar renders and the summary line closes the run.
func TestProgressOnTerminal(t *testing.T) {
	bin := testbin.Build(t)
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
	for _, want := range []string{"big.bin", "MiB", "["} {
		if !strings.Contains(screen, want) {
			t.Errorf("no progress bar on the terminal (no %q):\n%q", want, screen)
		}
	}
	if !strings.Contains(screen, "1 downloaded, 0 failed: 2.0 MiB") {
		t.Errorf("no summary line:\n%q", screen)
	}
	if strings.Contains(screen, srv.AccessToken) {
		t.Error("token on the terminal")
	}
}

func TestMain(m *testing.M) { testbin.Main(m) }

// TestSystemRoots: the CLI trusts the system pool, so SSL_CERT_FILE makes a private CA work (and
// without it the certificate is refused).
func TestSystemRoots(t *testing.T) {
	bin := testbin.Build(t)
	srv := testserver.New(t, testserver.Config{Profile: testserver.ProfileSynapse, TLS: true})
	uri := srv.AddMedia([]byte("over tls"), testserver.MediaOptions{})
	cert := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(cert, srv.CertPEM(), 0o644)
	cmd := exec.Command(bin, "--homeserver", srv.URL, "--token", srv.AccessToken, "--retries", "0", "-o", "-", uri.String())
	cmd.Env = append(os.Environ(), "SSL_CERT_FILE="+cert)
	out, err := cmd.Output()
	if err != nil || string(out) != "over tls" {
		t.Fatalf("with SSL_CERT_FILE: %q, %v", out, err)
	}
	cmd = exec.Command(bin, "--homeserver", srv.URL, "--token", srv.AccessToken, "--retries", "0", "-o", "-", uri.String())
	cmd.Env = append(os.Environ(), "SSL_CERT_FILE=/nonexistent")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err == nil || !strings.Contains(stderr.String(), "certificate") {
		t.Errorf("without the CA: %v, %s", err, stderr.String())
	}
}
