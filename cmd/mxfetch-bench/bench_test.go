package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mxfetch/mxfetch/internal/testbin"
)

func TestMain(m *testing.M) { testbin.Main(m) }

// TestShortRun runs the whole benchmark with tiny sizes so that the program cannot rot: every client
// (curl only when installed) downloads the large file and the small files, plain and TLS, and the
// table, JSON and chart are written.
func TestShortRun(t *testing.T) {
	// The children are this program: build it so that os.Executable is the real thing.
	bin := testbin.Build(t)
	out := filepath.Join(t.TempDir(), "out")
	stdout, err := runCmd(bin, "-large", "2M", "-files", "40", "-file-size", "4096", "-parallel", "4", "-rounds", "1", "-out", out)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, stdout)
	}
	for _, client := range []string{"mxfetch-lib", "mxfetch-cli", "mautrix", "mautrix+transport", "net/http"} {
		for _, mode := range []string{"| plain | " + client + " |", "| tls | " + client + " |"} {
			if !strings.Contains(stdout, mode) {
				t.Errorf("no row %q in:\n%s", mode, stdout)
			}
		}
	}
	for _, f := range []string{"results.md", "results.json", "throughput.png"} {
		data, err := os.ReadFile(filepath.Join(out, f))
		if err != nil || len(data) == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}
	if png, _ := os.ReadFile(filepath.Join(out, "throughput.png")); !bytes.HasPrefix(png, []byte("\x89PNG")) {
		t.Error("throughput.png is not a PNG")
	}
}

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{{"-large", "0"}, {"-files", "0"}, {"-tls", "maybe"}, {"-clients", "wget"}} {
		var out, errb bytes.Buffer
		if err := run(t.Context(), args, &out, &errb); err == nil {
			t.Errorf("%v: no error", args)
		}
	}
}
