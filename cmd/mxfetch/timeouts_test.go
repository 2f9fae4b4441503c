package main

import (
	"bytes"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mxfetch/mxfetch/mediaclient"
	"github.com/mxfetch/mxfetch/testserver"
)

func TestParseSeconds(t *testing.T) {
	for _, c := range []struct {
		in   string
		want time.Duration
	}{
		{"2", 2 * time.Second},
		{"2.5", 2500 * time.Millisecond},
		{"0.05", 50 * time.Millisecond},
		{"0", 0},
		{"1m30s", 90 * time.Second},
		{"300ms", 300 * time.Millisecond},
		{" 10 ", 10 * time.Second},
	} {
		if got, err := parseSeconds(c.in); err != nil || got != c.want {
			t.Errorf("parseSeconds(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
	for _, in := range []string{"", "-1", "-2s", "ten", "1e300", "NaN", "Inf", "5 s"} {
		if got, err := parseSeconds(in); err == nil {
			t.Errorf("parseSeconds(%q) = %v; want an error", in, got)
		}
	}
}

// TestTimeoutFlags: each flag reaches the library's options; 0 turns a timeout off; curl's pair
// fills in the missing half as curl does.
func TestTimeoutFlags(t *testing.T) {
	opts := func(a ...string) mediaclient.Options {
		t.Helper()
		o, _, err := parseArgs(append(a, "mxc://s/x"))
		if err == nil {
			err = o.validateTimeouts()
		}
		if err != nil {
			t.Fatalf("%q: %v", a, err)
		}
		var m mediaclient.Options
		o.applyTimeouts(&m)
		return m
	}
	m := opts("--connect-timeout", "2.5", "--stall-timeout", "1m", "--max-time", "90", "--speed-limit", "1K", "--speed-time", "7")
	if m.ConnectTimeout != 2500*time.Millisecond || m.StallTimeout != time.Minute || m.HeaderTimeout != time.Minute ||
		m.Timeout != 90*time.Second || m.LowSpeedLimit != 1024 || m.LowSpeedTime != 7*time.Second {
		t.Errorf("options %+v", m)
	}
	if m := opts(); m.ConnectTimeout != 0 || m.StallTimeout != 0 || m.HeaderTimeout != 0 || m.Timeout != 0 || m.LowSpeedLimit != 0 || m.LowSpeedTime != 0 {
		t.Errorf("no flags: %+v; want the library's defaults (zero)", m)
	}
	if m := opts("--stall-timeout", "0", "--connect-timeout", "0", "--max-time", "0"); m.StallTimeout >= 0 || m.HeaderTimeout >= 0 || m.ConnectTimeout >= 0 || m.Timeout != 0 {
		t.Errorf("0: %+v; want negative (none) and no cap", m)
	}
	if m := opts("-Y", "100"); m.LowSpeedLimit != 100 || m.LowSpeedTime != 30*time.Second {
		t.Errorf("--speed-limit alone: %+v", m)
	}
	if m := opts("-y5"); m.LowSpeedLimit != 1 || m.LowSpeedTime != 5*time.Second {
		t.Errorf("--speed-time alone: %+v", m)
	}
	if m := opts("-m2.5"); m.Timeout != 2500*time.Millisecond {
		t.Errorf("-m2.5: %+v", m)
	}
	for _, bad := range [][]string{
		{"--stall-timeout", "soon"}, {"--max-time", "-1"}, {"--speed-time", "0"}, {"--speed-limit", "fast"}, {"--connect-timeout", "1e300"},
	} {
		if r := cli(t, "", append(bad, "mxc://s/x")...); r.code != 2 || !strings.Contains(r.stderr, strings.TrimLeft(bad[0], "-")) {
			t.Errorf("%q: exit %d, %q; want a usage error naming the flag", bad, r.code, r.stderr)
		}
	}
}

// TestStallForever: a server that sends the headers and then nothing fails within the stall timeout
// times the tries (one request and the resumes), leaves no file, and the failure line names the stall.
func TestStallForever(t *testing.T) {
	b := testserver.Behavior{Faults: []testserver.Fault{{Stall: testserver.StallBody, StallAfter: 0}}}
	srv := testserver.New(t, testserver.Config{Behavior: &b})
	uri := srv.AddMedia(bytes.Repeat([]byte("s"), 100_000), testserver.MediaOptions{FileName: "stuck.bin"}).String()
	for _, cont := range []bool{false, true} {
		srv.ResetLog()
		dir := t.TempDir()
		a := args(hs(srv), []string{"--api", "v3", "--stall-timeout", "50ms", "-o", dir, uri})
		if cont {
			a = append(a, "--continue")
		}
		start := time.Now()
		r := cli(t, "", a...)
		elapsed := time.Since(start)
		if r.code != 1 {
			t.Errorf("continue=%v: exit %d; want 1", cont, r.code)
		}
		// One request and three resumes, each cut after 50 ms: far below the default minute.
		if n := len(downloads(srv)); n != 4 {
			t.Errorf("continue=%v: %d requests; want 4 (the first and three resumes)", cont, n)
		}
		if elapsed > 5*time.Second {
			t.Errorf("continue=%v: took %v", cont, elapsed)
		}
		if names := dirNames(t, dir); len(names) != 0 {
			t.Errorf("continue=%v: left %v", cont, names)
		}
		fail := regexp.MustCompile(`(?m)^mxfetch: `+regexp.QuoteMeta(uri)+`: [^r].*stalled.*$`).FindAllString(r.stderr, -1)
		if len(fail) != 1 || strings.Count(r.stderr, "\n") != 4 {
			t.Errorf("continue=%v: want one failure line naming the stall:\n%s", cont, r.stderr)
		}
		if n := strings.Count(r.stderr, "resuming at byte 0 after the body from "+srv.URL+" stalled (no byte for 50ms)"); n != 3 {
			t.Errorf("continue=%v: %d resume notes; want 3:\n%s", cont, n, r.stderr)
		}
	}
}

// TestStallBeforeHeaders: a server that never answers is retried after the stall timeout, and the
// failure says so. (It is a CDN: the homeserver may hold a request for the timeout_ms it is sent,
// which the wait for its headers adds.)
func TestStallBeforeHeaders(t *testing.T) {
	b := testserver.Behavior{V3Redirect: testserver.Always, Faults: []testserver.Fault{{At: testserver.RoleCDN, Stall: testserver.StallHeaders}}}
	srv := testserver.New(t, testserver.Config{Behavior: &b})
	uri := srv.AddMedia([]byte("never"), testserver.MediaOptions{}).String()
	dir := t.TempDir()
	cdn := srv.Origin(testserver.OriginCDN)
	r := cli(t, "", args(hs(srv), []string{"--api", "v3", "--stall-timeout", "0.05", "--retries", "1", "-o", dir, uri})...)
	// The first try and one retry; then, since the target kept failing on v3, the plain request
	// without allow_redirect (which this server answers with a redirect all the same) and its retry.
	if n := len(srv.RequestsTo(testserver.OriginCDN)); r.code != 1 || n != 4 {
		t.Errorf("exit %d after %d CDN requests; want 1 after 4", r.code, n)
	}
	if !strings.Contains(r.stderr, "retrying after stalled: no response headers within 50ms ("+cdn+") (retry 1 of 1") {
		t.Errorf("no retry note naming the stall:\n%s", r.stderr)
	}
	if !regexp.MustCompile(`(?m)^mxfetch: ` + regexp.QuoteMeta(uri) + `: .*no response headers within 50ms`).MatchString(r.stderr) {
		t.Errorf("the failure does not name the stall:\n%s", r.stderr)
	}
	if names := dirNames(t, dir); len(names) != 0 {
		t.Errorf("left %v", names)
	}
}

// TestMaxTime: --max-time bounds the whole download, however the server behaves.
func TestMaxTime(t *testing.T) {
	b := testserver.Behavior{Faults: []testserver.Fault{{Drip: 1, DripEvery: 20 * time.Millisecond}}}
	srv := testserver.New(t, testserver.Config{Behavior: &b})
	uri := srv.AddMedia(bytes.Repeat([]byte("d"), 10_000), testserver.MediaOptions{}).String()
	dir := t.TempDir()
	start := time.Now()
	r := cli(t, "", args(hs(srv), []string{"--api", "v3", "--max-time", "200ms", "-o", dir, uri})...)
	if r.code != 1 || time.Since(start) > 5*time.Second {
		t.Errorf("exit %d after %v", r.code, time.Since(start))
	}
	if !strings.Contains(r.stderr, "--max-time 200ms") {
		t.Errorf("the failure does not name --max-time:\n%s", r.stderr)
	}
	if names := dirNames(t, dir); len(names) != 0 {
		t.Errorf("left %v", names)
	}
}

// TestSlowButMoving: a body that drips a byte every 20 ms, never idle for the 200 ms stall timeout,
// is not cut off.
func TestSlowButMoving(t *testing.T) {
	b := testserver.Behavior{Faults: []testserver.Fault{{Drip: 64, DripEvery: 20 * time.Millisecond}}}
	srv := testserver.New(t, testserver.Config{Behavior: &b})
	want := bytes.Repeat([]byte("slow"), 400)
	uri := srv.AddMedia(want, testserver.MediaOptions{}).String()
	r := cli(t, "", args(hs(srv), []string{"--api", "v3", "--stall-timeout", "200ms", "-o", "-", uri})...)
	if r.code != 0 || r.stdout != string(want) || len(downloads(srv)) != 1 {
		t.Errorf("exit %d, %d bytes, %d requests; want the media in one request:\n%s", r.code, len(r.stdout), len(downloads(srv)), r.stderr)
	}
}

// TestSpeedLimit: a body slower than --speed-limit for --speed-time counts as stalled.
func TestSpeedLimit(t *testing.T) {
	b := testserver.Behavior{Faults: []testserver.Fault{{Drip: 1, DripEvery: 10 * time.Millisecond}}}
	srv := testserver.New(t, testserver.Config{Behavior: &b})
	uri := srv.AddMedia(bytes.Repeat([]byte("t"), 10_000), testserver.MediaOptions{}).String()
	r := cli(t, "", args(hs(srv), []string{"--api", "v3", "--speed-limit", "10K", "--speed-time", "0.1", "-o", t.TempDir(), uri})...)
	if r.code != 1 || !strings.Contains(r.stderr, "too slow") {
		t.Errorf("exit %d:\n%s", r.code, r.stderr)
	}
}

// TestBarStalled: the rate on a bar follows the download; once no byte has come for a couple of
// seconds it falls to 0 and the bar says how long the download has been stalled.
func TestBarStalled(t *testing.T) {
	start := time.Now()
	at := func(d time.Duration) time.Time { return start.Add(d) }
	for _, total := range []int64{1 << 20, -1} {
		tr := &tracker{pr: &progress{}, name: "slow.bin", total: total, start: start}
		// 64 KiB a second for four seconds…
		var line string
		for i := range 4 {
			tr.Write(make([]byte, 64<<10))
			tr.last.Store(at(time.Duration(i+1) * time.Second).UnixNano())
			line = tr.line(100, at(time.Duration(i+1)*time.Second))
		}
		if !strings.Contains(line, "64.0 KiB/s") || strings.Contains(line, "stalled") {
			t.Errorf("total %d, moving: %q; want 64.0 KiB/s", total, line)
		}
		// …then nothing.
		if line := tr.line(100, at(5*time.Second)); strings.Contains(line, "stalled") {
			t.Errorf("total %d, after 1s without a byte: %q; not stalled yet", total, line)
		}
		line = tr.line(100, at(16*time.Second+300*time.Millisecond))
		if !strings.Contains(line, "0 B/s") || !strings.Contains(line, "stalled 12s") || strings.Contains(line, "ETA") {
			t.Errorf("total %d, 12s without a byte: %q; want 0 B/s and stalled 12s", total, line)
		}
		if narrow := tr.line(60, at(16*time.Second)); !strings.Contains(narrow, "stalled 12s") || len([]rune(narrow)) > 60 {
			t.Errorf("total %d, narrow: %q", total, narrow)
		}
		// Bytes again: the rate comes back.
		tr.Write(make([]byte, 64<<10))
		tr.last.Store(at(17 * time.Second).UnixNano())
		if line := tr.line(100, at(17*time.Second)); strings.Contains(line, "stalled") || strings.Contains(line, " 0 B/s") {
			t.Errorf("total %d, moving again: %q", total, line)
		}
	}
	// A bar that never got a byte is stalled from its start.
	tr := &tracker{pr: &progress{}, name: "none.bin", total: 100, start: start}
	if line := tr.line(100, at(3*time.Second)); !strings.Contains(line, "stalled 3s") || !strings.Contains(line, "0 B/s") {
		t.Errorf("no byte yet: %q", line)
	}
}

// TestUploadWait: media that is not uploaded yet (504 M_NOT_YET_UPLOADED) is asked for again within
// --upload-wait, and reported at once without it.
func TestUploadWait(t *testing.T) {
	b := testserver.Behavior{Faults: []testserver.Fault{{Count: 1, Status: http.StatusGatewayTimeout, ErrCode: "M_NOT_YET_UPLOADED"}}}
	srv := testserver.New(t, testserver.Config{Behavior: &b})
	want := []byte("uploaded by now")
	uri := srv.AddMedia(want, testserver.MediaOptions{}).String()
	r := cli(t, "", args(hs(srv), []string{"--api", "v3", "-o", "-", uri})...)
	if r.code != 1 || !strings.Contains(r.stderr, "M_NOT_YET_UPLOADED") {
		t.Errorf("without --upload-wait: exit %d:\n%s", r.code, r.stderr)
	}
	srv.SetBehavior(b) // the fault fires again
	r = cli(t, "", args(hs(srv), []string{"--api", "v3", "--upload-wait", "5", "-o", "-", uri})...)
	if r.code != 0 || r.stdout != string(want) {
		t.Errorf("with --upload-wait: exit %d, %q:\n%s", r.code, r.stdout, r.stderr)
	}
}
