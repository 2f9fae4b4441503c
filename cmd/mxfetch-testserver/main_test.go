package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"maunium.net/go/mautrix/event"

	"github.com/mxfetch/mxfetch/internal/testbin"
	"github.com/mxfetch/mxfetch/testserver"
)

func TestMain(m *testing.M) { testbin.Main(m) }

// startup reads the program's startup lines up to "ready", keyed by their first word ("media" lines
// are collected in order; "scenario" and "file" lines are keyed by their first two words, the
// scenario's name second).
func startup(t *testing.T, r io.Reader) (map[string]string, [][2]string) {
	t.Helper()
	fields := map[string]string{}
	var media [][2]string
	lines := bufio.NewScanner(r)
	for lines.Scan() && lines.Text() != "ready" {
		f := strings.Fields(lines.Text())
		switch {
		case len(f) == 3 && f[0] == "media":
			media = append(media, [2]string{f[1], f[2]})
		case len(f) == 3 && f[0] == "scenario":
			fields["scenario "+f[2]] = f[1]
		case len(f) == 3 && f[0] == "file":
			fields["file "+f[1]] = f[2]
		case len(f) >= 2:
			fields[f[0]] = f[1]
		default:
			t.Fatalf("startup line %q", lines.Text())
		}
	}
	if lines.Err() != nil || fields["homeserver"] == "" {
		t.Fatalf("startup: %v %v", fields, lines.Err())
	}
	return fields, media
}

// download fetches an mxc URI through client v1 with the token, within limit.
func download(t *testing.T, hs, token, mxc string, limit time.Duration, header ...string) (int, http.Header, []byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), limit)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", hs+"/_matrix/client/v1/media/download/"+strings.TrimPrefix(mxc, "mxc://"), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, body, err
}

// rss returns the resident set size of a process in bytes, from /proc.
func rss(t *testing.T, pid int) int64 {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("VmRSS %q", v)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// TestProgram builds the program, starts it with preloaded files (one of them large and sparse),
// downloads through the printed URLs, stops it with SIGTERM and starts it again: the media IDs stay.
func TestProgram(t *testing.T) {
	bin := testbin.Build(t)
	dir := t.TempDir()
	content := bytes.Repeat([]byte("preloaded "), 500)
	os.WriteFile(filepath.Join(dir, "notes.txt"), content, 0o644)
	const bigSize = 512 << 20
	big, err := os.Create(filepath.Join(dir, "big.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if err := big.Truncate(bigSize); err != nil { // sparse: no disk space used
		t.Fatal(err)
	}
	big.WriteAt([]byte("tail"), bigSize-4)
	big.Close()
	os.Mkdir(filepath.Join(dir, "subdir"), 0o755)

	var uris [][2]string
	for round := range 2 {
		cmd := exec.Command(bin, "-addr", "127.0.0.1:0", "-preload", dir, "-profile", "synapse", "-token", "s3cret")
		stdout, _ := cmd.StdoutPipe()
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer cmd.Process.Kill()
		fields, media := startup(t, stdout)
		if fields["token"] != "s3cret" || len(media) != 2 || media[0][1] != "big.bin" || media[1][1] != "notes.txt" {
			t.Fatalf("startup output: %v %v", fields, media)
		}
		if round == 0 {
			uris = media
		} else if fmt.Sprint(media) != fmt.Sprint(uris) {
			t.Errorf("after a restart the media are %v; want the same as before, %v", media, uris)
		}
		status, h, body, err := download(t, fields["homeserver"], "s3cret", media[1][0], 10*time.Second)
		if err != nil || status != 200 || sha256.Sum256(body) != sha256.Sum256(content) || h.Get("Content-Type") != "text/plain; charset=utf-8" {
			t.Fatalf("download: %d %s, %d bytes, %v", status, h.Get("Content-Type"), len(body), err)
		}
		status, _, body, err = download(t, fields["homeserver"], "s3cret", media[0][0], 10*time.Second, "Range", "bytes=-8")
		if err != nil || status != 206 || string(body) != "\x00\x00\x00\x00tail" {
			t.Fatalf("the end of the big file: %d %q %v", status, body, err)
		}
		if got := rss(t, cmd.Process.Pid); got > bigSize/4 {
			t.Errorf("resident size %d MiB while serving a %d MiB file; want it streamed from disk", got>>20, bigSize>>20)
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

	// A changed file is new media.
	later := time.Now().Add(time.Hour)
	os.Chtimes(filepath.Join(dir, "notes.txt"), later, later)
	srv := testserver.New(t, testserver.Config{})
	files, err := preload(srv, dir, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		defer f.Close()
	}
	ids := srv.MediaIDs()
	if len(ids) != 2 || "mxc://"+srv.ServerName+"/"+ids[0] != uris[0][0] || "mxc://"+srv.ServerName+"/"+ids[1] == uris[1][0] {
		t.Errorf("after touching notes.txt: %v; want big.bin's ID kept and notes.txt's changed (were %v)", ids, uris)
	}
}

// serve runs the program in this process with args and returns its startup output. It stops the
// program when the test ends, or when stop is called, which returns the rest of its output.
func serve(t *testing.T, args ...string) (fields map[string]string, media [][2]string, stop func() string) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	r, w := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := run(ctx, append([]string{"-addr", "127.0.0.1:0", "-q"}, args...), w, io.Discard)
		w.CloseWithError(err)
		done <- err
	}()
	var once sync.Once
	var rest []byte
	stop = func() string {
		once.Do(func() {
			cancel()
			rest, _ = io.ReadAll(r)
			if err := <-done; err != nil {
				t.Errorf("run: %v", err)
			}
		})
		return string(rest)
	}
	t.Cleanup(func() { stop() })
	fields, media = startup(t, r)
	return fields, media, stop
}

// TestFlagsReachTheServer runs the program in this process with serving and fault flags and
// downloads a preloaded file through them.
func TestFlagsReachTheServer(t *testing.T) {
	dir := t.TempDir()
	content := make([]byte, 10000)
	for i := range content {
		content[i] = byte(i % 251)
	}
	os.WriteFile(filepath.Join(dir, "data.bin"), content, 0o644)

	fields, media, _ := serve(t, "-profile", "synapse", "-preload", dir, "-range-chunk", "3000", "-no-validators",
		"-stall", "1000", "-count", "1")
	hs, token, mxc := fields["homeserver"], fields["token"], media[0][0]
	if status, _, body, err := download(t, hs, token, mxc, 50*time.Millisecond); status != 200 || len(body) != 1000 || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("-stall 1000: got %d, %d bytes, %v; want 1000 bytes, then nothing", status, len(body), err)
	}
	status, h, body, err := download(t, hs, token, mxc, 10*time.Second, "Range", "bytes=100-")
	if err != nil || status != 206 || h.Get("Content-Range") != "bytes 100-3099/10000" || !bytes.Equal(body, content[100:3100]) {
		t.Errorf("-range-chunk 3000: got %d %q, %d bytes, %v", status, h.Get("Content-Range"), len(body), err)
	}
	if h.Get("ETag") != "" || h.Get("Last-Modified") != "" {
		t.Errorf("-no-validators: ETag %q, Last-Modified %q", h.Get("ETag"), h.Get("Last-Modified"))
	}

	fields, media, _ = serve(t, "-profile", "media-repo", "-preload", dir, "-redirect-status", "308", "-chain", "cdn-tls,cdn",
		"-at", "cdn", "-fault-status", "503", "-retry-after", "7")
	req, _ := http.NewRequestWithContext(t.Context(), "GET", fields["homeserver"]+"/_matrix/media/v3/download/"+strings.TrimPrefix(media[0][0], "mxc://")+"?allow_redirect=true", nil)
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); resp.StatusCode != 308 || !strings.HasPrefix(loc, fields["cdn-tls"]+"/") {
		t.Errorf("-redirect-status 308 -chain cdn-tls,cdn: got %d to %q", resp.StatusCode, loc)
	}
}

// TestConformanceMode publishes the catalogue, downloads one scenario's item and reads the report
// in its three forms, then on exit.
func TestConformanceMode(t *testing.T) {
	fields, _, stop := serve(t, "-conformance")
	report := fields["report"]
	direct := fields["scenario direct"]
	if !strings.HasPrefix(report, "http://127.0.0.1:") || direct == "" || fields["scenario range-chunks"] == "" {
		t.Fatalf("startup: %v", fields)
	}
	var file event.EncryptedFileInfo
	if err := json.Unmarshal([]byte(fields["file encrypted-wrong-hash"]), &file); err != nil || string(file.URL) != fields["scenario encrypted-wrong-hash"] || file.Hashes.SHA256 == "" {
		t.Errorf("the encrypted scenario's file information: %q, %v", fields["file encrypted-wrong-hash"], err)
	}
	if status, _, _, err := download(t, fields["homeserver"], fields["token"], direct, 10*time.Second); status != 200 || err != nil {
		t.Fatalf("download: %d %v", status, err)
	}
	get := func(path string) (string, string) {
		resp, err := http.Get(report + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.Header.Get("Content-Type"), string(body)
	}
	var rep testserver.Report
	if ct, body := get("report.json"); ct != "application/json" || json.Unmarshal([]byte(body), &rep) != nil || len(rep.Results) != len(testserver.Catalogue()) {
		t.Fatalf("report.json: %s %.200s", ct, body)
	}
	if ct, body := get("report.json"); !strings.Contains(body, `"evidence": []`) {
		t.Errorf("report.json: an item not tried has no empty evidence list: %s %.300s", ct, body)
	}
	for _, res := range rep.Results {
		want := testserver.NotTried
		if res.Name == "direct" {
			want = testserver.Pass
		}
		if res.Verdict != want {
			t.Errorf("%s: %s; want %s", res.Name, res.Verdict, want)
		}
	}
	if ct, body := get(""); !strings.HasPrefix(ct, "text/html") || !strings.Contains(body, `data-name="direct" data-verdict="pass"`) {
		t.Errorf("HTML report: %s %.200s", ct, body)
	}
	if _, body := get("report.txt"); !strings.Contains(body, "1 pass, 0 fail, 0 observed") {
		t.Errorf("text report: %s", body)
	}
	if rest := stop(); !strings.Contains(rest, "PASS       direct") || !strings.Contains(rest, "1 pass, 0 fail") {
		t.Errorf("report on exit: %s", rest)
	}
}

// TestFlagsToBehavior checks how each behaviour and fault flag maps onto the server's data.
func TestFlagsToBehavior(t *testing.T) {
	mediaRepo, _ := testserver.ProfileBehavior(testserver.ProfileMediaRepo)
	for _, tc := range []struct {
		args  []string
		check func(b testserver.Behavior) bool
	}{
		{nil, func(b testserver.Behavior) bool { return b.Direct == mediaRepo.Direct && len(b.Faults) == 0 }},
		{[]string{"-range-chunk", "100"}, func(b testserver.Behavior) bool {
			return b.Direct.RangeChunk == 100 && b.CDN.RangeChunk == 100
		}},
		{[]string{"-profile", "synapse", "-at", "cdn", "-no-validators", "-ignore-range", "-ignore-if-range"}, func(b testserver.Behavior) bool {
			return b.Direct == testserver.Serving{} && b.CDN == testserver.Serving{NoValidators: true, IgnoreRange: true, IgnoreIfRange: true}
		}},
		{[]string{"-redirect-status", "302", "-chain", "cdn-host, homeserver"}, func(b testserver.Behavior) bool {
			return b.Redirect == 302 && fmt.Sprint(b.Chain) == "[cdn-host homeserver]"
		}},
		{[]string{"-fault-status", "429", "-retry-after", "2", "-count", "3", "-at", "homeserver"}, func(b testserver.Behavior) bool {
			return len(b.Faults) == 1 && b.Faults[0] == testserver.Fault{At: testserver.RoleHomeserver, Count: 3, Status: 429, RetryAfter: "2"}
		}},
		{[]string{"-truncate", "0", "-reset"}, func(b testserver.Behavior) bool {
			return len(b.Faults) == 1 && b.Faults[0] == testserver.Fault{At: testserver.RoleAny, Truncate: true, Reset: true}
		}},
		{[]string{"-truncate", "5"}, func(b testserver.Behavior) bool {
			return len(b.Faults) == 1 && b.Faults[0].Truncate && b.Faults[0].TruncateAt == 5
		}},
		{[]string{"-stall", "headers", "-stall-for", "2s"}, func(b testserver.Behavior) bool {
			return len(b.Faults) == 1 && b.Faults[0].Stall == testserver.StallHeaders && b.Faults[0].StallFor == 2*time.Second
		}},
		{[]string{"-stall", "0"}, func(b testserver.Behavior) bool {
			return len(b.Faults) == 1 && b.Faults[0].Stall == testserver.StallBody && b.Faults[0].StallAfter == 0
		}},
		{[]string{"-drip", "10", "-drip-every", "1s"}, func(b testserver.Behavior) bool {
			return len(b.Faults) == 1 && b.Faults[0].Drip == 10 && b.Faults[0].DripEvery == time.Second
		}},
		{[]string{"-range-fault", "star-total"}, func(b testserver.Behavior) bool {
			return len(b.Faults) == 1 && b.Faults[0].Range == testserver.RangeStarTotal
		}},
	} {
		o, err := parse(tc.args, io.Discard)
		if err != nil {
			t.Errorf("%v: %v", tc.args, err)
			continue
		}
		cfg, err := o.config()
		if err != nil || cfg.Behavior == nil || !tc.check(*cfg.Behavior) {
			t.Errorf("%v: got %+v, %v", tc.args, cfg.Behavior, err)
		}
	}
}

func TestRunBadFlags(t *testing.T) {
	for _, args := range [][]string{{"-profile", "nope"}, {"-bogus"}, {"extra"}, {"-at", "moon"}, {"-chain", "cdn,elsewhere"},
		{"-redirect-status", "200"}, {"-range-chunk", "-1"}, {"-fault-status", "1000"}, {"-truncate", "-2"},
		{"-stall", "soon"}, {"-stall", "-5"}, {"-range-fault", "odd"}, {"-count", "2"}, {"-stall-for", "1s"},
		{"-drip", "-1"}, {"-retry-after", "5"}, {"-conformance", "-tls"}} {
		var out, errb bytes.Buffer
		if err := run(t.Context(), args, &out, &errb); err == nil || errors.Is(err, flag.ErrHelp) {
			t.Errorf("%v: got %v; want an error", args, err)
		}
	}
}

// TestHelpAndREADME checks that -h succeeds and that README's test server section names every flag.
func TestHelpAndREADME(t *testing.T) {
	var errb bytes.Buffer
	if err := run(t.Context(), []string{"-h"}, io.Discard, &errb); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-h: %v", err)
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, _ := strings.Cut(string(readme), "\n## The test server\n")
	section, _, _ = strings.Cut(section, "\n## ")
	inGroup := map[string]bool{}
	for _, g := range groups {
		for _, name := range g.flags {
			inGroup[name] = true
			if !strings.Contains(errb.String(), "\n  -"+name) {
				t.Errorf("-h does not list -%s", name)
			}
			if !strings.Contains(section, "`-"+name) {
				t.Errorf("README's test server section does not name -%s", name)
			}
		}
	}
	flagSet(&options{}).VisitAll(func(f *flag.Flag) {
		if !inGroup[f.Name] {
			t.Errorf("-%s is in no group of the help", f.Name)
		}
	})
}
