package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mxfetch/mxfetch/internal/testbin"
	"github.com/mxfetch/mxfetch/testserver"
)

// running is the built command running with its stderr read line by line.
type running struct {
	t      *testing.T
	cmd    *exec.Cmd
	lines  chan string
	stderr strings.Builder // every line read so far
}

// start runs the built binary with env added to the environment.
func start(t *testing.T, env []string, args ...string) *running {
	t.Helper()
	return startCmd(t, exec.Command(testbin.Build(t), args...), env...)
}

// startCmd runs cmd, which runs the built binary, with env added to the environment.
func startCmd(t *testing.T, cmd *exec.Cmd, env ...string) *running {
	t.Helper()
	cmd.Env = append(os.Environ(), "MATRIX_HOMESERVER=", "MATRIX_ACCESS_TOKEN=", "HTTP_PROXY=", "http_proxy=", "HTTPS_PROXY=", "https_proxy=", "NO_PROXY=", "no_proxy=")
	cmd.Env = append(cmd.Env, env...)
	pipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := &running{t: t, cmd: cmd, lines: make(chan string, 100)}
	go func() {
		defer close(r.lines)
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			r.lines <- sc.Text()
		}
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return r
}

// waitFor reads stderr until a line contains want, while the program runs (at most 20 s).
func (r *running) waitFor(want string) {
	r.t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case line, ok := <-r.lines:
			if !ok {
				r.t.Fatalf("the program ended before printing %q:\n%s", want, r.stderr.String())
			}
			r.stderr.WriteString(line + "\n")
			if strings.Contains(line, want) {
				return
			}
		case <-timeout:
			r.t.Fatalf("no %q within 20 s:\n%s", want, r.stderr.String())
		}
	}
}

// stop sends sig and returns the exit status and the rest of stderr.
func (r *running) stop(sig os.Signal) (int, string) {
	r.t.Helper()
	if err := r.cmd.Process.Signal(sig); err != nil {
		r.t.Fatal(err)
	}
	for line := range r.lines {
		r.stderr.WriteString(line + "\n")
	}
	r.cmd.Wait()
	return r.cmd.ProcessState.ExitCode(), r.stderr.String()
}

// breakThenStall makes the first answer break off after 10000 bytes, which the command resumes at
// once, and every later answer stall after its headers: a run that sits in a stall with exactly
// 10000 bytes written, as the note on the resume shows.
func breakThenStall() *testserver.Behavior {
	return &testserver.Behavior{Faults: []testserver.Fault{
		{Count: 1, Truncate: true, TruncateAt: 10000},
		{Stall: testserver.StallBody, StallAfter: 0},
	}}
}

// TestInterruptKeepsPartial: Ctrl-C during a --continue download exits 130 and says where the
// partial copy is kept; a later --continue run finishes it from there.
func TestInterruptKeepsPartial(t *testing.T) {
	srv := testserver.New(t, testserver.Config{Behavior: breakThenStall()})
	want := bytes.Repeat([]byte("0123456789abcdef"), 10_000)
	uri := srv.AddMedia(want, testserver.MediaOptions{FileName: "big.bin"}).String()
	dir := t.TempDir()
	run := start(t, nil, args(hs(srv), []string{"--api", "v3", "--continue", "-o", dir, uri})...)
	run.waitFor("resuming at byte 10000")
	code, stderr := run.stop(syscall.SIGINT)
	if code != 130 {
		t.Errorf("exit %d; want 130:\n%s", code, stderr)
	}
	m := regexp.MustCompile(`(?m)^mxfetch: ` + regexp.QuoteMeta(uri) + `: interrupted; kept the partial copy (\S+\.part) \(10000 bytes\) for a later --continue run$`).FindStringSubmatch(stderr)
	if m == nil {
		t.Fatalf("no line naming the kept copy:\n%s", stderr)
	}
	if filepath.Dir(m[1]) != dir {
		t.Errorf("kept copy %s; want it in %s", m[1], dir)
	}
	if kept, err := os.ReadFile(m[1]); err != nil || !bytes.Equal(kept, want[:10000]) {
		t.Fatalf("the kept copy: %d bytes, %v; want the first 10000 bytes of the media", len(kept), err)
	}
	if strings.Contains(stderr, "failed") {
		t.Errorf("an interruption reported as a failure:\n%s", stderr)
	}

	srv.SetBehavior(testserver.Behavior{})
	srv.ResetLog()
	r := cli(t, "", args(hs(srv), []string{"--api", "v3", "--continue", "--json", "-o", dir, uri})...)
	if res := r.results(t); r.code != 0 || len(res) != 1 || res[0].SHA256 != sum(want) {
		t.Fatalf("the next --continue run: exit %d %+v\n%s", r.code, res, r.stderr)
	}
	if d := downloads(srv); len(d) != 1 || d[0].Header.Get("Range") != "bytes=10000-" {
		t.Errorf("the next run asked %d times (Range %q); want once, from byte 10000", len(d), d[0].Header.Get("Range"))
	}
	if names := dirNames(t, dir); len(names) != 1 || names[0] != "big.bin" {
		t.Errorf("left %v", names)
	}
}

// TestTerminateRemoves: SIGTERM during a plain download exits 143, removes what was written and
// says so.
func TestTerminateRemoves(t *testing.T) {
	srv := testserver.New(t, testserver.Config{Behavior: breakThenStall()})
	uri := srv.AddMedia(bytes.Repeat([]byte("x"), 100_000), testserver.MediaOptions{FileName: "big.bin"}).String()
	dir := t.TempDir()
	run := start(t, nil, args(hs(srv), []string{"--api", "v3", "-o", dir, uri})...)
	run.waitFor("resuming at byte 10000")
	code, stderr := run.stop(syscall.SIGTERM)
	if code != 143 {
		t.Errorf("exit %d; want 143:\n%s", code, stderr)
	}
	if !strings.Contains(stderr, "mxfetch: "+uri+": terminated; removed the unfinished download (10000 bytes)\n") {
		t.Errorf("no line saying what was removed:\n%s", stderr)
	}
	if names := dirNames(t, dir); len(names) != 0 {
		t.Errorf("left %v", names)
	}
}

// forwardProxy is a plain HTTP forward proxy on loopback that sends requests for proxiedHost to
// loopback, streaming answers as they come. It counts the requests it forwards.
func forwardProxy(t *testing.T, hits *atomic.Int64) *httptest.Server {
	t.Helper()
	upstream := &http.Transport{Proxy: nil}
	t.Cleanup(upstream.CloseIdleConnections)
	p := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, port, err := net.SplitHostPort(r.URL.Host)
		if !r.URL.IsAbs() || err != nil || host != proxiedHost {
			http.Error(w, "not a proxy request for "+proxiedHost, http.StatusBadGateway)
			return
		}
		hits.Add(1)
		out := r.Clone(r.Context())
		out.RequestURI = ""
		out.URL.Host = net.JoinHostPort("127.0.0.1", port)
		out.Header.Del("Proxy-Connection")
		resp, err := upstream.RoundTrip(out)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		rc := http.NewResponseController(w)
		rc.Flush()
		buf := make([]byte, 32<<10)
		for {
			n, err := resp.Body.Read(buf)
			if n > 0 {
				if _, werr := w.Write(buf[:n]); werr != nil {
					return
				}
				rc.Flush()
			}
			if err != nil {
				if err != io.EOF {
					panic(http.ErrAbortHandler) // pass the break on
				}
				return
			}
		}
	}))
	t.Cleanup(p.Close)
	return p
}

// proxiedHost is a name only the test proxy knows: Go never sends requests for loopback addresses
// through a proxy, so the homeserver is addressed by this name.
const proxiedHost = "homeserver.mxfetch.test"

// TestNotesThroughProxy: through a proxy (HTTP_PROXY), retry and resume notes and -v lines appear
// as they happen, while the download still runs.
func TestNotesThroughProxy(t *testing.T) {
	b := breakThenStall()
	b.Faults = append([]testserver.Fault{{Count: 1, Status: 503, RetryAfter: "0"}}, b.Faults...)
	srv := testserver.New(t, testserver.Config{Behavior: b})
	uri := srv.AddMedia(bytes.Repeat([]byte("p"), 100_000), testserver.MediaOptions{}).String()
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(srv.URL, "http://"))
	home := "http://" + net.JoinHostPort(proxiedHost, port)
	var hits atomic.Int64
	proxy := forwardProxy(t, &hits)
	run := start(t, []string{"HTTP_PROXY=" + proxy.URL}, "--homeserver", home, "--token", srv.AccessToken, "--api", "v3", "-v", "-o", t.TempDir(), uri)
	id := strings.TrimPrefix(uri, "mxc://")
	for _, want := range []string{
		"request 1: GET " + home + "/_matrix/media/v3/download/" + id + " → 503 Service Unavailable, credentials sent",
		"retrying after 503 Service Unavailable from " + home + " (retry 1 of 4)",
		"request 2 (retry): GET " + home + "/_matrix/media/v3/download/" + id + " → 200 OK, credentials sent",
		"resuming at byte 10000 after the body from " + home + " broke off",
		"request 3 (resume): GET " + home + "/_matrix/media/v3/download/" + id + " → 206 Partial Content, credentials sent",
	} {
		run.waitFor(want) // each line comes while the download is under way: it is stalled now
	}
	if n := hits.Load(); n != 3 {
		t.Errorf("the proxy forwarded %d requests; want 3", n)
	}
	if n := len(downloads(srv)); n != 3 {
		t.Errorf("the server saw %d downloads; want 3", n)
	}
	if code, stderr := run.stop(syscall.SIGINT); code != 130 || !strings.Contains(stderr, "interrupted; removed the unfinished download (10000 bytes)") {
		t.Errorf("exit %d; want 130 and a line saying what was removed:\n%s", code, stderr)
	}
}

// TestInterruptInProcess: a signal while one download waits for its body and another waits for
// its turn: exit 130, a line for the one under way, one for those not begun, and nothing on disk.
func TestInterruptInProcess(t *testing.T) {
	ctx, cancel := context.WithCancelCause(t.Context())
	srv := testserver.New(t, testserver.Config{
		Behavior: &testserver.Behavior{Faults: []testserver.Fault{{Stall: testserver.StallBody}}},
		Logf:     func(string, ...any) { cancel(&signalError{sig: syscall.SIGINT}) }, // the headers are out
	})
	a := srv.AddMedia([]byte("first"), testserver.MediaOptions{}).String()
	b := srv.AddMedia([]byte("second"), testserver.MediaOptions{}).String()
	dir := t.TempDir()
	r := cliCtx(t, ctx, "", args(hs(srv), []string{"--api", "v3", "-j", "1", "--json", "-o", dir, a, b})...)
	if r.code != 130 {
		t.Errorf("exit %d; want 130", r.code)
	}
	want := "mxfetch: " + a + ": interrupted before any byte arrived; nothing was written\nmxfetch: interrupted before 1 download(s) began\n"
	if r.stderr != want {
		t.Errorf("stderr %q; want %q", r.stderr, want)
	}
	res := r.results(t)
	if len(res) != 2 || res[0].OK || res[1].OK || res[0].Error != "interrupted" || res[1].Error != "interrupted" {
		t.Errorf("results %+v", res)
	}
	if len(downloads(srv)) != 1 {
		t.Errorf("%d downloads asked for; want 1", len(downloads(srv)))
	}
	if names := dirNames(t, dir); len(names) != 0 {
		t.Errorf("left %v", names)
	}
	// Stopped before any download: one line all the same.
	r = cliCtx(t, ctx, "", args(hs(srv), []string{"--api", "v3", "-o", dir, a})...)
	if r.code != 130 || r.stderr != "mxfetch: interrupted before 1 download(s) began\n" {
		t.Errorf("exit %d, stderr %q", r.code, r.stderr)
	}
}

// TestSignalCopies: the copies of a signal that a supervisor sends to the process and to its group
// are dropped; only a signal after the grace period gets its default action (ends the process).
func TestSignalCopies(t *testing.T) {
	sigs := make(chan os.Signal)
	done := make(chan struct{})
	over := make(chan time.Time)
	released := make(chan struct{})
	ctx, cancel := context.WithCancelCause(t.Context())
	go watchSignals(sigs, done, cancel, func() <-chan time.Time { return over }, func() { close(released) })
	defer close(done)
	within := func(what string, ch any) { // every step is bounded: a broken watch fails, never hangs
		t.Helper()
		timeout := time.After(10 * time.Second)
		var ok bool
		switch c := ch.(type) {
		case os.Signal:
			select {
			case sigs <- c:
				ok = true
			case <-timeout:
			}
		case <-chan struct{}:
			select {
			case <-c:
				ok = true
			case <-timeout:
			}
		case chan time.Time:
			select {
			case c <- time.Time{}:
				ok = true
			case <-timeout:
			}
		}
		if !ok {
			t.Fatalf("%s: not within 10 s", what)
		}
	}
	within("the first signal taken", syscall.SIGTERM)
	within("the context cancelled", ctx.Done())
	if se := stoppedBy(ctx); se == nil || se.status() != 143 {
		t.Fatalf("cause %v; want SIGTERM, status 143", context.Cause(ctx))
	}
	within("a copy taken, not left for the default action", syscall.SIGTERM)
	within("another taken", syscall.SIGINT)
	select {
	case <-released:
		t.Fatal("released before the grace period ended")
	default:
	}
	within("the grace period ended", over)
	within("released", (<-chan struct{})(released))
	if se := stoppedBy(ctx); se.status() != 143 {
		t.Errorf("the copies changed the cause to %v", se)
	}
}
