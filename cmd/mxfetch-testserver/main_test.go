package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/mxfetch/mxfetch/internal/testbin"
)

func TestMain(m *testing.M) { testbin.Main(m) }

// TestProgram builds the program, starts it with a preloaded file, downloads the file through the
// printed URLs and stops it with SIGTERM.
func TestProgram(t *testing.T) {
	bin := testbin.Build(t)
	dir := t.TempDir()
	media := filepath.Join(dir, "media")
	os.Mkdir(media, 0o755)
	content := bytes.Repeat([]byte("preloaded "), 500)
	os.WriteFile(filepath.Join(media, "notes.txt"), content, 0o644)

	cmd := exec.Command(bin, "-addr", "127.0.0.1:0", "-preload", media, "-profile", "synapse", "-token", "s3cret")
	stdout, _ := cmd.StdoutPipe()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	lines := bufio.NewScanner(stdout)
	fields := map[string][]string{}
	for lines.Scan() && lines.Text() != "ready" {
		f := strings.Fields(lines.Text())
		fields[f[0]] = f[1:]
	}
	if fields["token"][0] != "s3cret" || len(fields["media"]) != 2 || fields["media"][1] != "notes.txt" {
		t.Fatalf("startup output: %v", fields)
	}
	mxc := strings.TrimPrefix(fields["media"][0], "mxc://")
	req, _ := http.NewRequestWithContext(context.Background(), "GET", fields["homeserver"][0]+"/_matrix/client/v1/media/download/"+mxc, nil)
	req.Header.Set("Authorization", "Bearer s3cret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || sha256.Sum256(body) != sha256.Sum256(content) || resp.Header.Get("Content-Type") != "text/plain; charset=utf-8" {
		t.Fatalf("download: %d %s, %d bytes", resp.StatusCode, resp.Header.Get("Content-Type"), len(body))
	}

	cmd.Process.Signal(syscall.SIGTERM)
	rest, _ := io.ReadAll(stdout)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(string(rest), "stopping") {
		t.Errorf("no stopping line: %q", rest)
	}
	log := stderr.String()
	if !strings.Contains(log, "/_matrix/client/v1/media/download/") || !strings.Contains(log, "Authorization=<redacted>") || strings.Contains(log, "s3cret") {
		t.Errorf("request log line missing or leaks the token:\n%s", log)
	}
}

func TestRunBadFlags(t *testing.T) {
	for _, args := range [][]string{{"-profile", "nope"}, {"-bogus"}, {"extra"}} {
		var out, errb bytes.Buffer
		if err := run(context.Background(), args, &out, &errb); err == nil {
			t.Errorf("%v: no error", args)
		}
	}
}
