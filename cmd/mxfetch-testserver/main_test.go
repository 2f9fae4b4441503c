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
	if token := fields["token"]; len(token) != 1 || token[0] != "s3cret" {
		t.Fatalf("startup output: token %q; want s3cret (all: %v)", token, fields)
	}
	if media := fields["media"]; len(media) != 2 || media[1] != "notes.txt" {
		t.Fatalf("startup output: media %q; want an mxc URI and notes.txt (all: %v)", media, fields)
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
	if resp.StatusCode != 200 {
		t.Fatalf("download: status %d; want 200", resp.StatusCode)
	}
	if sha256.Sum256(body) != sha256.Sum256(content) {
		t.Errorf("download: %d bytes that differ from the %d preloaded", len(body), len(content))
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
		t.Errorf("download: Content-Type %q; want text/plain; charset=utf-8", ct)
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
	for _, want := range []string{"/_matrix/client/v1/media/download/", "Authorization=<redacted>"} {
		if !strings.Contains(log, want) {
			t.Errorf("request log lacks %q:\n%s", want, log)
		}
	}
	if strings.Contains(log, "s3cret") {
		t.Errorf("request log shows the token:\n%s", log)
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
