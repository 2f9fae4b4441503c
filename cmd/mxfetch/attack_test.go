//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package main

// The command line attacked as a hostile homeserver (and a hostile neighbour in a shared directory)
// would: each test names what mxfetch must do and fails while it does not.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mxfetch/mxfetch/internal/testbin"
	"github.com/mxfetch/mxfetch/testserver"
)

// command returns the built binary ready to run with args, in an environment without the variables
// that would change its behaviour.
func command(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(testbin.Build(t), args...)
	cmd.Env = append(os.Environ(), "MATRIX_HOMESERVER=", "MATRIX_ACCESS_TOKEN=", "HTTP_PROXY=", "http_proxy=", "HTTPS_PROXY=", "https_proxy=", "NO_PROXY=", "no_proxy=")
	return cmd
}

// TestAttackUmask: a downloaded file gets the permissions the user's umask allows, as curl, wget
// and touch give it: under umask 077 the media of a private room is not readable by others.
// Not parallel: the umask belongs to the process.
func TestAttackUmask(t *testing.T) {
	srv := testserver.New(t, testserver.Config{Profile: testserver.ProfileSynapse})
	uri := srv.AddMedia([]byte("private"), testserver.MediaOptions{FileName: "p.txt"}).String()
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	for _, extra := range [][]string{nil, {"--continue"}} {
		dir := t.TempDir()
		r := cli(t, "", args(hs(srv), extra, []string{"--api", "v3", "-o", dir, uri})...)
		st, err := os.Stat(filepath.Join(dir, "p.txt"))
		if r.code != 0 || err != nil {
			t.Fatalf("%v: exit %d %s; %v", extra, r.code, r.stderr, err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%v: mode %v under umask 077; want 0600 (0666 less the umask)", extra, st.Mode().Perm())
		}
	}
}

// TestAttackDevStdout: -o /dev/stdout with stdout redirected to a file (">" or ">>") writes into
// that file through the descriptor, as the help promises ("written to as it is, never replaced"):
// no "exists" refusal, and with --clobber no rename over the file the shell opened, which loses
// what ">>" was appending to.
func TestAttackDevStdout(t *testing.T) {
	if _, err := os.Stat("/dev/stdout"); err != nil {
		t.Skip("no /dev/stdout here")
	}
	srv := testserver.New(t, testserver.Config{Profile: testserver.ProfileSynapse})
	data := []byte("media bytes\n")
	uri := srv.AddMedia(data, testserver.MediaOptions{}).String()
	earlier := []byte("an earlier line of the log\n")
	for _, extra := range [][]string{nil, {"--clobber"}} {
		path := filepath.Join(t.TempDir(), "log.txt")
		os.WriteFile(path, earlier, 0o644)
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0) // the shell's >>
		if err != nil {
			t.Fatal(err)
		}
		before, _ := f.Stat()
		cmd := command(t, args(hs(srv), extra, []string{"--api", "v3", "-o", "/dev/stdout", uri})...)
		var stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = f, &stderr
		err = cmd.Run()
		f.Close()
		after, serr := os.Stat(path)
		got, _ := os.ReadFile(path)
		switch {
		case err != nil:
			t.Errorf("%v -o /dev/stdout >> log.txt: %v\n%s", extra, err, stderr.String())
		case serr != nil || !os.SameFile(before, after):
			t.Errorf("%v -o /dev/stdout >> log.txt: the file the shell opened was replaced by another (now %q)", extra, got)
		case !bytes.Equal(got, append(earlier, data...)):
			t.Errorf("%v -o /dev/stdout >> log.txt: the file holds %q; want %q", extra, got, append(earlier, data...))
		}
	}
}

// TestAttackStderrClosed: a reader of stderr that goes away (mxfetch -v … 2>&1 | head -1) does not
// kill the download: curl ignores SIGPIPE and goes on; mxfetch dies of it mid-download, with its
// hidden temporary file left in the output directory and the media not saved.
func TestAttackStderrClosed(t *testing.T) {
	data := content(100_000, 7)
	release := make(chan struct{})
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	var n atomic.Int32
	srv := hostile(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		switch n.Add(1) {
		case 1: // breaks off after 1000 bytes
			w.Header().Set("Content-Length", "100000")
			w.Write(data[:1000])
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		case 2: // the resume waits until stderr is closed, then breaks off again
			<-release
			w.Header().Set("Content-Range", "bytes 1000-99999/100000")
			w.Header().Set("Content-Length", "99000")
			w.WriteHeader(http.StatusPartialContent)
			w.Write(data[1000:2000])
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		default:
			w.Header().Set("Content-Range", "bytes 2000-99999/100000")
			w.Header().Set("Content-Length", "98000")
			w.WriteHeader(http.StatusPartialContent)
			w.Write(data[2000:])
		}
	})
	t.Cleanup(free) // before the server's Close: a waiting handler is let go
	dir := t.TempDir()
	cmd := command(t, "--homeserver", srv.URL, "--api", "v3", "-o", dir, "mxc://hostile.test/abc")
	pipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() {
		line, _ := bufio.NewReader(pipe).ReadString('\n')
		if !strings.Contains(line, "resuming at byte 1000") {
			t.Errorf("first line on stderr: %q", line)
		}
		pipe.Close() // the reader goes away, as head -1 does
		free()
		exited <- cmd.Wait()
	}()
	select {
	case err = <-exited:
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		t.Fatal("mxfetch did not end within 20 s")
	}
	got, _ := os.ReadFile(filepath.Join(dir, "abc"))
	if err != nil || !bytes.Equal(got, data) {
		t.Errorf("exit %v (%v); the file holds %d of %d bytes; want the download finished although stderr went away", err, cmd.ProcessState, len(got), len(data))
	}
	if names := dirNames(t, dir); len(names) != 1 || names[0] != "abc" {
		t.Errorf("directory holds %v; want [abc]", names)
	}
}

// TestAttackHangup: SIGHUP (the terminal closed, an ssh session dropped) ends the run like SIGTERM:
// exit 129, the unfinished download removed and the removal said. Today the default action kills the
// process and leaves the hidden temporary file, however large, in the output directory.
func TestAttackHangup(t *testing.T) {
	srv := testserver.New(t, testserver.Config{Behavior: breakThenStall()})
	uri := srv.AddMedia(bytes.Repeat([]byte("x"), 100_000), testserver.MediaOptions{FileName: "big.bin"}).String()
	dir := t.TempDir()
	run := start(t, nil, args(hs(srv), []string{"--api", "v3", "-o", dir, uri})...)
	run.waitFor("resuming at byte 10000")
	code, stderr := run.stop(syscall.SIGHUP)
	if code != 129 {
		t.Errorf("exit %d; want 129 (128 + SIGHUP):\n%s", code, stderr)
	}
	if names := dirNames(t, dir); len(names) != 0 {
		t.Errorf("left %v", names)
	}
}

// lineWatch is a stderr that closes seen when a line containing want is written.
type lineWatch struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	want string
	seen chan struct{}
	once sync.Once
}

func (w *lineWatch) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if strings.Contains(w.buf.String(), w.want) {
		w.once.Do(func() { close(w.seen) })
	}
	return len(p), nil
}

func (w *lineWatch) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// TestAttackFIFOWithoutReader: -o FIFO with nobody reading it must still obey Ctrl-C (and
// --max-time): today the open of the FIFO blocks for ever, the first SIGINT or SIGTERM is swallowed,
// and only a second signal a second later kills the process (exit without the promised line).
func TestAttackFIFOWithoutReader(t *testing.T) {
	srv := testserver.New(t, testserver.Config{Profile: testserver.ProfileSynapse})
	uri := srv.AddMedia([]byte("nobody reads this"), testserver.MediaOptions{}).String()
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skip("no FIFOs here:", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	stderr := &lineWatch{want: "→ 200 OK", seen: make(chan struct{})}
	done := make(chan int, 1)
	go func() {
		err := run(ctx, args(hs(srv), []string{"--api", "v3", "-v", "-o", fifo, uri}), strings.NewReader(""), io.Discard, stderr)
		done <- exitCode(err)
	}()
	select {
	case <-stderr.seen:
	case code := <-done:
		t.Fatalf("exit %d before the answer came:\n%s", code, stderr)
	case <-time.After(20 * time.Second):
		t.Fatalf("no answer within 20 s:\n%s", stderr)
	}
	cancel() // what Ctrl-C does
	select {
	case code := <-done:
		if code == 0 {
			t.Errorf("exit 0 after the cancellation:\n%s", stderr)
		}
	case <-time.After(5 * time.Second):
		t.Errorf("run still blocked 5 s after its context was cancelled: it waits for a reader of the FIFO")
		if rd, err := os.OpenFile(fifo, os.O_RDONLY, 0); err == nil { // let it go
			io.Copy(io.Discard, rd)
			rd.Close()
		}
		<-done
	}
}

// TestAttackJSONFailedPath: the --json object of a failed download says nothing was written: path
// null and bytes 0 when no file (and no kept copy) is there. Today it names the file that was
// removed ("path":"DIR/f.bin","bytes":4000, or the -o FILE that was never created).
func TestAttackJSONFailedPath(t *testing.T) {
	b := testserver.Behavior{Faults: []testserver.Fault{{Truncate: true, TruncateAt: 1000}}}
	srv := testserver.New(t, testserver.Config{Behavior: &b})
	uri := srv.AddMedia(content(50_000, 3), testserver.MediaOptions{FileName: "f.bin"}).String()
	dir := t.TempDir()
	for _, out := range []string{dir, filepath.Join(dir, "named.bin")} {
		r := cli(t, "", args(hs(srv), []string{"--api", "v3", "--json", "-o", out, uri})...)
		res := r.results(t)
		if r.code != 1 || len(res) != 1 || res[0].OK {
			t.Fatalf("-o %s: exit %d %+v", out, r.code, res)
		}
		if res[0].Path != "" || res[0].Bytes != 0 {
			t.Errorf("-o %s: a failed download reported as path %q, bytes %d; the directory holds %v", out, res[0].Path, res[0].Bytes, dirNames(t, dir))
		}
	}
	if names := dirNames(t, dir); len(names) != 0 {
		t.Errorf("left %v", names)
	}
}

// failingWriter is a stdout that cannot be written (a full disk, a closed descriptor).
type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, syscall.ENOSPC }

// TestAttackJSONStdoutError: --json results that cannot be written make the run fail and say so;
// today the run exits 0 with no result anywhere (mxfetch --json … > /dev/full).
func TestAttackJSONStdoutError(t *testing.T) {
	srv := testserver.New(t, testserver.Config{Profile: testserver.ProfileSynapse})
	uri := srv.AddMedia([]byte("fine"), testserver.MediaOptions{}).String()
	var stderr bytes.Buffer
	err := run(t.Context(), args(hs(srv), []string{"--api", "v3", "--json", "-o", t.TempDir(), uri}), strings.NewReader(""), failingWriter{}, &stderr)
	if exitCode(err) == 0 || stderr.Len() == 0 {
		t.Errorf("exit %d, stderr %q; want a failure saying the results could not be written", exitCode(err), stderr.String())
	}
}

// TestAttackTokenEchoed: a homeserver that quotes the request's Authorization header in its error
// ("unknown token: Bearer …") does not get the token printed on stderr or in --json, where CI logs
// keep it.
func TestAttackTokenEchoed(t *testing.T) {
	const token = "syt_attack_secret_token"
	srv := hostile(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		json.NewEncoder(w).Encode(map[string]string{"errcode": "M_UNKNOWN_TOKEN", "error": "unknown token: " + r.Header.Get("Authorization")})
	})
	for _, extra := range [][]string{{"--json"}, {"-v"}} {
		var stdout, stderr bytes.Buffer
		err := run(t.Context(), args([]string{"--homeserver", srv.URL, "--token", token, "--api", "v3", "-o", t.TempDir()}, extra, []string{"mxc://hostile.test/abc"}), strings.NewReader(""), &stdout, &stderr)
		if exitCode(err) != 1 {
			t.Errorf("%v: exit %d", extra, exitCode(err))
		}
		if strings.Contains(stdout.String()+stderr.String(), token) {
			t.Errorf("%v: the access token is printed:\n%s%s", extra, stdout.String(), stderr.String())
		}
	}
}

// TestAttackServerNames: names a server (or a content URI from an event) chooses never start with
// "-" (a file "-rf" in a download directory is an option to the next "rm *" or "tar cf x *"), and
// Windows device names are refused in all their spellings (COM¹, LPT², COM0, CONIN$, CONOUT$).
func TestAttackServerNames(t *testing.T) {
	names := map[string]string{ // media ID → Content-Disposition file name ("" sends none)
		"dash":    "-rf --no-preserve-root",
		"dash2":   "--checkpoint-action=exec=sh x.sh",
		"-n":      "",
		"com1sup": "COM\u00b9.txt",
		"lpt2sup": "LPT\u00b2",
		"com0":    "COM0.log",
		"conin":   "CONIN$",
		"conout":  "conout$.txt",
	}
	srv := hostile(t, func(w http.ResponseWriter, r *http.Request) {
		id := r.URL.Path[strings.LastIndexByte(r.URL.Path, '/')+1:]
		w.Header().Set("Content-Type", "application/octet-stream")
		if name := names[id]; name != "" {
			w.Header().Set("Content-Disposition", "attachment; filename*=UTF-8''"+strings.NewReplacer("$", "%24", " ", "%20", "\u00b9", "%C2%B9", "\u00b2", "%C2%B2", "=", "%3D").Replace(name))
		}
		io.WriteString(w, id)
	})
	dir := t.TempDir()
	var uris []string
	for id := range names {
		uris = append(uris, "mxc://hostile.test/"+id)
	}
	r := cli(t, "", args([]string{"--homeserver", srv.URL, "--api", "v3", "--json", "-o", dir}, uris)...)
	if r.code != 0 {
		t.Fatalf("exit %d %s", r.code, r.stderr)
	}
	for _, x := range r.results(t) {
		base := filepath.Base(x.Path)
		stem, _, _ := strings.Cut(strings.ToUpper(base), ".")
		switch {
		case strings.HasPrefix(base, "-"):
			t.Errorf("%s saved as %q: a name that starts with -", x.URI, base)
		case stem == "CONIN$" || stem == "CONOUT$" || stem == "COM0" || stem == "COM\u00b9" || stem == "LPT\u00b2":
			t.Errorf("%s saved as %q: a Windows device name", x.URI, base)
		}
	}
}

// TestAttackForeignPartial: in a directory others can write to, a partial copy planted under the
// predictable name .mxfetch-<id>-<hash>.part by another user is never adopted: today --continue
// appends the media to the other user's file (who can read it as it arrives and rewrite it later),
// keeps the planted bytes as the start of the media, links that file to the final name and reports
// success. Needs root to plant a file owned by another user.
func TestAttackForeignPartial(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to plant a file owned by another user")
	}
	srv := testserver.New(t, testserver.Config{Profile: testserver.ProfileSynapse})
	want := content(20_000, 5)
	uri := srv.AddMedia(want, testserver.MediaOptions{FileName: "m.bin"}).String()
	dir := t.TempDir()
	os.Chmod(dir, 0o1777) // a shared directory: sticky and writable by all
	part := filepath.Join(dir, keptPart(t, srv, dir, uri))
	kept, _ := os.ReadFile(part)
	forged := bytes.Repeat([]byte("F"), len(kept)) // the planter's bytes, of the kept length
	os.WriteFile(part, forged, 0o666)
	const nobody = 65534
	for _, p := range []string{part, part + ".json"} {
		if err := os.Chown(p, nobody, nobody); err != nil {
			t.Skip("cannot give a file to another user:", err)
		}
		os.Chmod(p, 0o666)
	}
	r := cli(t, "", args(hs(srv), []string{"--api", "v3", "--continue", "--json", "-o", dir, uri})...)
	got, _ := os.ReadFile(filepath.Join(dir, "m.bin"))
	st, err := os.Stat(filepath.Join(dir, "m.bin"))
	if err != nil {
		t.Fatalf("exit %d %s; %v", r.code, r.stderr, err)
	}
	if owner := st.Sys().(*syscall.Stat_t).Uid; int(owner) != os.Getuid() {
		t.Errorf("m.bin belongs to uid %d, the user who planted the partial copy", owner)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("m.bin is not the media (exit %d): it starts with %q", r.code, got[:min(len(got), 16)])
	}
}
