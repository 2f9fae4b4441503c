package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mxfetch/mxfetch/internal/testbin"
)

func TestMain(m *testing.M) { testbin.Main(m) }

// TestShortRun runs the whole benchmark with tiny sizes so that the program cannot rot: every client
// (curl only when installed) does every piece of work, plain and TLS, into every destination, and
// the report, the samples and the chart are written and can be written again from the samples.
func TestShortRun(t *testing.T) {
	// The children are this program: build it so that os.Executable is the real thing.
	bin := testbin.Build(t)
	out := filepath.Join(t.TempDir(), "out")
	tmpfs := "/dev/shm"
	if st, err := os.Stat(tmpfs); err != nil || !st.IsDir() {
		t.Skip("no /dev/shm")
	}
	stdout, err := runCmd(bin, "-large", "2M", "-files", "40", "-file-size", "4096", "-parallel", "4", "-many", "80",
		"-rounds", "1", "-first-reps", "1", "-disk", t.TempDir(), "-out", out)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, stdout)
	}
	for _, row := range []string{
		"| large plain → null | ceiling | 1.1 |", "| large tls → null | mxfetch-lib | 1.1 |", "| small plain → null | mautrix | 1.1 |", "| small tls → null | mautrix+transport | 1.1 |",
		"| small tls → null | net/http | 1.1 |", "| large plain → tmpfs | mxfetch-cli | 1.1 |", "| small tls → disk | mxfetch-cli | 1.1 |",
		"| many plain → tmpfs | mxfetch-cli | 1.1 |", "| first tls → tmpfs | mxfetch-cli | 1.1 |",
	} {
		if !strings.Contains(stdout, row) {
			t.Errorf("no row %q in:\n%s", row, stdout)
		}
	}
	var res results
	data, err := os.ReadFile(filepath.Join(out, "results.json"))
	if err != nil || json.Unmarshal(data, &res) != nil {
		t.Fatalf("results.json: %v", err)
	}
	for _, s := range res.Samples {
		if s.Proto != "HTTP/1.1" {
			t.Errorf("%s %s %s: protocol %q, want HTTP/1.1 only", s.Client, tlsName(s.TLS), s.Scenario, s.Proto)
		}
		if (s.Client == "mxfetch-cli" || s.Client == "mxfetch-lib") && s.AllocBytes == 0 {
			t.Errorf("%s %s: no allocation figure", s.Client, s.Scenario)
		}
	}
	if png, _ := os.ReadFile(filepath.Join(out, "ratios.png")); !bytes.HasPrefix(png, []byte("\x89PNG")) {
		t.Error("ratios.png is not a PNG")
	}
	report, _ := os.ReadFile(filepath.Join(out, "results.md"))
	again, err := runCmd(bin, "-from", filepath.Join(out, "results.json"))
	if err != nil || again != string(report) {
		t.Errorf("-from: %v; the report differs:\n%s", err, again)
	}
}

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{{"-large", "0"}, {"-files", "0"}, {"-tls", "maybe"}, {"-clients", "wget"}, {"-dests", "tape"}, {"-many", "10"}} {
		var out, errb bytes.Buffer
		if err := run(t.Context(), args, &out, &errb); err == nil {
			t.Errorf("%v: no error", args)
		}
	}
}

func TestRatios(t *testing.T) {
	k := key{false, scSmall, destTmpfs}
	ss := []sample{
		{Round: 1, Client: "curl", Scenario: scSmall, Dest: destTmpfs, Seconds: 2},
		{Round: 1, Client: "mxfetch-cli", Scenario: scSmall, Dest: destTmpfs, Seconds: 1},
		{Round: 2, Client: "curl", Scenario: scSmall, Dest: destTmpfs, Seconds: 1},
		{Round: 2, Client: "mxfetch-cli", Scenario: scSmall, Dest: destTmpfs, Seconds: 2},
		{Round: 3, Client: "mxfetch-cli", Scenario: scSmall, Dest: destTmpfs, Seconds: 1}, // no curl this round
	}
	if got := spreadOf(ratios(ss, k, "mxfetch-cli", "curl")); got != (spread{0.5, 1.25, 2}) {
		t.Errorf("ratios: %+v", got)
	}
}
