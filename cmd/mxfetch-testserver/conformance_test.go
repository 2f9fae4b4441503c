package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mxfetch/mxfetch/internal/conformancetable"
	"github.com/mxfetch/mxfetch/testserver"
)

// TestCatalogueWithMxfetchCLI builds the mxfetch command (the CLI's module in the repository's
// workspace), starts the kit as a developer of another client would (-conformance -cert-out), runs
// the command once per scenario with SSL_CERT_FILE, and reads the report. The CLI passes every
// scenario the log can judge but these, which it ends with an error the log cannot see (the test
// checks the exit status and that no file was left):
//   - location-file, location-data, location-javascript: a refused redirect on client v1 is final;
//   - range-unasked: a 206 to a request without Range is refused;
//   - encrypted-wrong-hash: the SHA-256 is checked at the end, and nothing is written;
//   - not-yet-uploaded: the CLI does not wait out M_NOT_YET_UPLOADED (the library's UploadWait is 0);
//
// and the stalled bodies, where the CLI's stall timeout (the library's default, 60 s) is longer than
// the test waits: it interrupts the command after a second.
func TestCatalogueWithMxfetchCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the mxfetch command")
	}
	const pkg = "github.com/mxfetch/mxfetch/cmd/mxfetch"
	if out, err := exec.Command("go", "list", pkg).CombinedOutput(); err != nil {
		t.Skipf("cannot run the mxfetch command: %s is not in this build's workspace (go.work at the repository's root): %s", pkg, bytes.TrimSpace(out))
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "mxfetch")
	if out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
	cert := filepath.Join(dir, "kit.pem")
	fields, _, _ := serve(t, "-conformance", "-cert-out", cert)

	type outcome struct {
		code   int
		stderr string
	}
	outcomes := map[string]outcome{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	catalogue := testserver.Catalogue()
	for i := range catalogue {
		sc := &catalogue[i]
		mxc := fields["scenario "+sc.Name]
		if mxc == "" {
			t.Fatalf("%s: not in the startup output", sc.Name)
		}
		args := []string{"--homeserver", fields["homeserver"], "--token", fields["token"], "-q", "-o", filepath.Join(dir, sc.Name+".out")}
		if file := fields["file "+sc.Name]; file != "" {
			path := filepath.Join(dir, sc.Name+".json")
			os.WriteFile(path, []byte(file), 0o644)
			args = append(args, "--encrypted-file", path)
		}
		limit := 20 * time.Second
		if stallsForever(sc) {
			limit = time.Second
		}
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(t.Context(), limit)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, append(args, mxc)...)
			cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
			cmd.WaitDelay = 5 * time.Second
			cmd.Env = append(os.Environ(), "SSL_CERT_FILE="+cert)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			code := 0
			var exit *exec.ExitError
			if errors.As(err, &exit) {
				code = exit.ExitCode()
			} else if err != nil {
				t.Errorf("%s: %v", sc.Name, err)
			}
			mu.Lock()
			outcomes[sc.Name] = outcome{code, stderr.String()}
			mu.Unlock()
		})
	}
	wg.Wait()

	resp, err := http.Get(fields["report"] + "report.json")
	if err != nil {
		t.Fatal(err)
	}
	var rep testserver.Report
	err = json.NewDecoder(resp.Body).Decode(&rep)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	fails := map[string]testserver.Verdict{ // the scenarios the CLI ends with an error
		"redirect-chain-6":           testserver.Pass,
		"redirect-loop":              testserver.Pass,
		"location-userinfo":          testserver.Pass,
		"https-to-http":              testserver.Pass,
		"location-file":              testserver.Observed,
		"location-data":              testserver.Observed,
		"location-javascript":        testserver.Observed,
		"range-unasked":              testserver.Observed,
		"encrypted-wrong-hash":       testserver.Observed,
		"not-yet-uploaded":           testserver.Observed,
		"stalled-body":               testserver.Observed,
		"stalled-body-no-validators": testserver.Observed,
	}
	for i, res := range rep.Results {
		sc := &catalogue[i]
		want, failed := fails[res.Name]
		if !failed {
			want = testserver.Pass
		}
		if res.Name != sc.Name || res.Verdict != want {
			t.Errorf("%s: %s (%s); want %s", res.Name, res.Verdict, res.Why, want)
		}
		o := outcomes[res.Name]
		out, err := os.ReadFile(filepath.Join(dir, res.Name+".out"))
		switch {
		case failed && (o.code == 0 || err == nil):
			t.Errorf("%s: exit status %d, output file %v; want a failure that leaves no file\n%s", res.Name, o.code, err, o.stderr)
		case !failed && (o.code != 0 || err != nil || hex.EncodeToString(sha(out)) != res.SHA256):
			t.Errorf("%s: exit status %d, %d bytes (%v); want the item\n%s", res.Name, o.code, len(out), err, o.stderr)
		}
	}
	if o := outcomes["not-yet-uploaded"]; !strings.Contains(o.stderr, "M_NOT_YET_UPLOADED") {
		t.Errorf("not-yet-uploaded: the CLI's error does not name M_NOT_YET_UPLOADED: %q", o.stderr)
	}
	readme := readmeColumn(t, 2)
	for _, res := range rep.Results {
		want, failed := fails[res.Name]
		if !failed {
			want = testserver.Pass
		}
		if readme[res.Name] != want {
			t.Errorf("README: the CLI's verdict on %s is %q; the test expects %s", res.Name, readme[res.Name], want)
		}
	}
	var text bytes.Buffer
	rep.WriteText(&text)
	t.Log("\n" + text.String())
}

// readmeColumn reads one column of the README's conformance table (internal/conformancetable).
func readmeColumn(t *testing.T, column int) map[string]testserver.Verdict {
	t.Helper()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	verdicts, problems := conformancetable.Verdicts(string(readme), column)
	for _, p := range problems {
		t.Errorf("README: %s", p)
	}
	return verdicts
}

// stallsForever reports whether a scenario's body stalls until the client gives up.
func stallsForever(sc *testserver.Scenario) bool {
	for _, f := range sc.Behavior.Faults {
		if f.Stall != testserver.NoStall && f.StallFor == 0 {
			return true
		}
	}
	return false
}

func sha(b []byte) []byte {
	sum := sha256.Sum256(b)
	return sum[:]
}
