package main

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

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

// onTerminal runs the built binary under a pseudo-terminal of 100 columns and returns its exit code
// and everything it drew.
func onTerminal(t *testing.T, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(testbin.Build(t), args...)
	cmd.Env = append(os.Environ(), "MATRIX_HOMESERVER=", "MATRIX_ACCESS_TOKEN=")
	tty, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 24, Cols: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer tty.Close()
	var out bytes.Buffer
	io.Copy(&out, tty) // ends with EIO once the child has exited
	cmd.Wait()
	return cmd.ProcessState.ExitCode(), out.String()
}

// TestFailureOnTerminal: while progress bars are drawn, a failed download prints its reason and
// the origin that answered, and the summary counts it.
func TestFailureOnTerminal(t *testing.T) {
	srv := testserver.New(t, testserver.Config{Behavior: &testserver.Behavior{SlowBody: 2e6}})
	uri := srv.AddMedia(bytes.Repeat([]byte("p"), 2<<20), testserver.MediaOptions{FileName: "big.bin"})
	missing := "mxc://" + srv.ServerName + "/nope"
	code, screen := onTerminal(t, "--homeserver", srv.URL, "--token", srv.AccessToken, "-j", "2", "-o", t.TempDir(), uri.String(), missing)
	if code != 1 {
		t.Errorf("exit %d", code)
	}
	for _, want := range []string{"big.bin", "[", "MiB", "mxfetch: " + missing + ": M_NOT_FOUND", "(from " + srv.URL + ")", "1 downloaded, 1 failed"} {
		if !strings.Contains(screen, want) {
			t.Errorf("the terminal lacks %q:\n%q", want, screen)
		}
	}
}

// TestEscapesOnTerminal: a server's error text with escape sequences reaches the terminal escaped.
func TestEscapesOnTerminal(t *testing.T) {
	srv := hostile(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, `{"errcode":"M_NOT_FOUND","error":"\u001b]0;pwned\u0007\u001b[2J\r\u202eforged"}`)
	})
	code, screen := onTerminal(t, "--homeserver", srv.URL, "--api", "v3", "-o", t.TempDir(), "mxc://hostile.test/x")
	if code != 1 || strings.Contains(screen, "\x1b]0;pwned") || strings.Contains(screen, "\x1b[2J") || strings.Contains(screen, "\u202e") {
		t.Errorf("exit %d; raw sequence on the terminal:\n%q", code, screen)
	}
	if !strings.Contains(screen, `\x1b]0;pwned\x07\x1b[2J\x0d\u202eforged`) {
		t.Errorf("the text is not shown escaped:\n%q", screen)
	}
}

// TestStallOnTerminal: a body that pauses longer than a couple of seconds shows on its bar as
// stalled, with a rate of 0, and the download goes on when the bytes come back.
func TestStallOnTerminal(t *testing.T) {
	b := testserver.Behavior{Faults: []testserver.Fault{{Count: 1, Stall: testserver.StallBody, StallAfter: 64 << 10, StallFor: 2500 * time.Millisecond}}}
	srv := testserver.New(t, testserver.Config{Behavior: &b})
	uri := srv.AddMedia(bytes.Repeat([]byte("p"), 1<<20), testserver.MediaOptions{FileName: "paused.bin"})
	code, screen := onTerminal(t, "--homeserver", srv.URL, "--token", srv.AccessToken, "-o", t.TempDir(), uri.String())
	if code != 0 {
		t.Errorf("exit %d", code)
	}
	if !regexp.MustCompile(`paused\.bin +\[[=>]+ +\] +6% 64\.0 KiB / 1\.0 MiB  0 B/s  stalled 2s`).MatchString(screen) {
		t.Errorf("no stalled bar on the terminal:\n%q", screen)
	}
	if !strings.Contains(screen, "1 downloaded, 0 failed: 1.0 MiB") || len(downloads(srv)) != 1 {
		t.Errorf("the download did not go on in its one request (%d):\n%q", len(downloads(srv)), screen)
	}
}

// TestBinaryToTerminal: -o - to a terminal prints text, and stops a binary download before its
// first byte reaches the screen, saying how to get the bytes.
func TestBinaryToTerminal(t *testing.T) {
	srv := testserver.New(t, testserver.Config{Profile: testserver.ProfileSynapse})
	txt := srv.AddMedia([]byte("hello, terminal\n"), testserver.MediaOptions{ContentType: "text/plain"})
	png := srv.AddMedia([]byte("\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR\x1b[2J"), testserver.MediaOptions{ContentType: "image/png"})
	code, screen := onTerminal(t, "--homeserver", srv.URL, "--token", srv.AccessToken, "--api", "v3", "-o", "-", txt.String())
	if code != 0 || !strings.Contains(screen, "hello, terminal") {
		t.Errorf("text: exit %d:\n%q", code, screen)
	}
	code, screen = onTerminal(t, "--homeserver", srv.URL, "--token", srv.AccessToken, "--api", "v3", "-o", "-", png.String())
	if code != 1 || strings.Contains(screen, "PNG") || strings.Contains(screen, "\x1b[2J") || !strings.Contains(screen, "binary output can mess up your terminal") || !strings.Contains(screen, "| cat") {
		t.Errorf("binary: exit %d:\n%q", code, screen)
	}
}
