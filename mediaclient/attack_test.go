package mediaclient_test

// Attacks on the contract where features meet: a hostile server (answers the test server cannot
// play come from small loopback servers) and a careless caller. The first part holds one test per
// defect these attacks found (each failed before its fix), naming the rule it broke; the second part,
// after the marker, holds tests that prove a property that no other test covers.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/mxfetch/mxfetch/internal/leakcheck"
	"github.com/mxfetch/mxfetch/mediaclient"
	"github.com/mxfetch/mxfetch/testserver"
)

// hostileURI is the content URI the loopback servers below serve.
var hostileURI = id.ContentURI{Homeserver: "example.org", FileID: "hostile"}

// hostileClient returns a Client for a loopback homeserver at base, with millisecond backoff.
func hostileClient(t *testing.T, base string, opts mediaclient.Options) *mediaclient.Client {
	t.Helper()
	opts.HomeserverURL = base
	if opts.API == "" {
		opts.API = mediaclient.APIV3
	}
	if opts.RetryWaitMin == 0 {
		opts.RetryWaitMin, opts.RetryWaitMax = time.Millisecond, 2*time.Millisecond
	}
	c, err := mediaclient.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// within runs f in a goroutine and reports whether it returned within d (a bound, not a
// synchronisation: a correct client returns at once or within its own millisecond timeouts).
func within(d time.Duration, f func()) bool {
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}

// ---------------------------------------------------------------------------------------------
// Defects found by attack: each test below failed before the fix it names.
// ---------------------------------------------------------------------------------------------

// TestAttackIfRangeIgnoredMixesVersions: rule 9 and ErrChanged's promise ("bytes of two versions are
// never mixed"). A partial copy of version A is finished with DownloadOptions{Offset, IfRange: A}.
// A server that ignores If-Range (matrix-media-repo does) answers 206 with the bytes of version B
// and ETag B. The client must see that the 206 carries another validator than the one it asked for
// and fail with ErrChanged; before the fix the first answer's validator is never compared with IfRange, and
// the caller gets version B's tail after version A's head as a success.
func TestAttackIfRangeIgnoredMixesVersions(t *testing.T) {
	const size, offset = 50_000, 20_000
	oldBytes, newBytes := content(size, 1), content(size, 2)
	b := testserver.Behavior{Direct: testserver.Serving{IgnoreIfRange: true}}
	srv, c := setup(t, testserver.Config{Behavior: &b}, mediaclient.Options{API: mediaclient.APIV3})
	uri := srv.AddMedia(oldBytes, testserver.MediaOptions{})
	m, err := c.Download(t.Context(), uri)
	if err != nil {
		t.Fatal(err)
	}
	validator := m.Validator()
	m.Close()
	if validator == "" {
		t.Fatal("no validator to resume with")
	}
	srv.SetContent(uri.FileID, newBytes) // a new ETag, the same length

	m, err = c.Download(t.Context(), uri, mediaclient.DownloadOptions{Offset: offset, IfRange: validator})
	got, err := readAll(t, m, err)
	if err == nil {
		mixed := append(append([]byte(nil), oldBytes[:offset]...), got...)
		t.Fatalf("success with %d bytes (mixed copy is version A: %v, version B: %v, Media.Validator %q, asked %q); want ErrChanged",
			len(got), sameBytes(mixed, oldBytes), sameBytes(mixed, newBytes), m.Validator(), validator)
	}
	if !errors.Is(err, mediaclient.ErrChanged) {
		t.Fatalf("err = %v; want ErrChanged", err)
	}
}

// TestAttackOffsetPastLimitPanics: rule 7 (a size limit) and rule 8 (every error is an *Error). A
// careless caller asks for an Offset beyond MaxSize of a media whose total the server does not give
// (Content-Range: bytes N-M/*). The answer must be ErrTooLarge (before the fix, Read sliced its
// buffer with a negative bound and panicked).
func TestAttackOffsetPastLimitPanics(t *testing.T) {
	b := testserver.Behavior{Faults: []testserver.Fault{{Range: testserver.RangeStarTotal}}}
	srv, c := setup(t, testserver.Config{Behavior: &b}, mediaclient.Options{API: mediaclient.APIV3})
	uri := srv.AddMedia(content(1000, 3), testserver.MediaOptions{})
	m, err := c.Download(t.Context(), uri, mediaclient.DownloadOptions{Offset: 200, MaxSize: 100})
	if err != nil {
		if !errors.Is(err, mediaclient.ErrTooLarge) {
			t.Fatalf("err = %v; want ErrTooLarge", err)
		}
		return
	}
	defer m.Close()
	var n int
	func() {
		defer func() {
			if p := recover(); p != nil {
				err = fmt.Errorf("panic: %v", p)
			}
		}()
		n, err = m.Read(make([]byte, 4096))
	}()
	if !errors.Is(err, mediaclient.ErrTooLarge) || n > 0 {
		t.Fatalf("Read = %d, %v; want 0 bytes and ErrTooLarge", n, err)
	}
}

// TestAttackEmptyReadSpins: io.Reader's contract — a Read with an empty buffer returns at once.
// Media.Read(p[:0]) in the middle of a body looped forever before the fix (body.Read treats 0, nil as "read
// again"), burning a core until the Media is closed from elsewhere.
func TestAttackEmptyReadSpins(t *testing.T) {
	srv, c := setup(t, testserver.Config{}, mediaclient.Options{API: mediaclient.APIV3})
	m, err := c.Download(t.Context(), srv.AddMedia(content(100_000, 4), testserver.MediaOptions{}))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if _, err := io.ReadFull(m, make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); m.Read(nil) }()
	select {
	case <-done:
	case <-time.After(time.Second):
		t.Error("Read(nil) did not return within a second")
		m.Close() // ends the loop
		<-done
	}
}

// TestAttackUnknownTotalShortRange: rule 9 — success only once the media's total is known and
// reached. A 206 whose Content-Range total is "*" says nothing about where the media ends; a server
// that answers open ranges in chunks that way must be asked for the next range (until it answers 416
// or gives a total), or the download must fail. Today the end of the first such chunk is reported as
// the end of the media: an Offset download of 5,000 bytes ends with io.EOF after 1,000, and a resumed
// chunked body likewise.
func TestAttackUnknownTotalShortRange(t *testing.T) {
	const size, chunk = 5000, 1000
	want := content(size, 5)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rng := r.Header.Get("Range")
		if rng == "" {
			// The whole media, chunked, cut after 1,000 bytes.
			w.WriteHeader(http.StatusOK)
			w.Write(want[:chunk])
			http.NewResponseController(w).Flush()
			panic(http.ErrAbortHandler)
		}
		from, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimPrefix(rng, "bytes="), "-"), 10, 64)
		if err != nil || from >= size {
			w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
			return
		}
		last := min(from+chunk, size) - 1
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/*", from, last))
		w.Header().Set("Content-Length", strconv.FormatInt(last-from+1, 10))
		w.WriteHeader(http.StatusPartialContent)
		w.Write(want[from : last+1])
	}))
	defer hs.Close()
	c := hostileClient(t, hs.URL, mediaclient.Options{})

	t.Run("offset", func(t *testing.T) {
		m, err := c.Download(t.Context(), hostileURI, mediaclient.DownloadOptions{Offset: 1000})
		got, err := readAll(t, m, err)
		if err == nil && !sameBytes(got, want[1000:]) {
			t.Fatalf("success with %d bytes; want the %d bytes from 1000 on, or an error", len(got), size-1000)
		}
	})
	t.Run("resumed", func(t *testing.T) {
		got, _, err := fetch(t, c, hostileURI)
		if err == nil && !sameBytes(got, want) {
			t.Fatalf("success with %d bytes; want the %d bytes of the media, or an error", len(got), size)
		}
	})
	t.Run("mautrix wrapper DownloadBytes", func(t *testing.T) {
		cli, err := mautrix.NewClient(hs.URL, "", "")
		if err != nil {
			t.Fatal(err)
		}
		w, err := mediaclient.Wrap(cli, mediaclient.Options{API: mediaclient.APIV3, RetryWaitMin: time.Millisecond, RetryWaitMax: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		got, err := w.DownloadBytes(t.Context(), hostileURI)
		if err == nil && !sameBytes(got, want) {
			t.Fatalf("DownloadBytes (\"never a short body\"): %d bytes and no error; want %d", len(got), size)
		}
	})
}

// TestAttackOverrunPastKnownTotal: rule 9 — "a 206 that does not fit the total is never taken for
// media bytes", and a download never delivers more than the media. The first answer gives the total
// (Content-Length 5,000) and breaks at 1,000; the resume is answered with more than the rest, in an
// answer that does not state its own end: a 206 whose Content-Range has no total ("bytes
// 1000-6023/*"), or a chunked 200 (the whole media anew, three bytes too long). body.Read bounds a
// read by the segment's end only, never by the known total, so the bytes past the total reach the
// reader with a nil error before the download fails, and the error then reads "got 6024 of 5000
// bytes: truncated body".
func TestAttackOverrunPastKnownTotal(t *testing.T) {
	const size, cut = 5000, 1000
	want := content(size, 6)
	for _, tc := range []struct {
		name   string
		resume func(w http.ResponseWriter)
	}{
		{"206 without a total", func(w http.ResponseWriter) {
			body := append(append([]byte(nil), want[cut:]...), make([]byte, 1024)...)
			w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/*", cut, cut+len(body)-1))
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
			w.WriteHeader(http.StatusPartialContent)
			w.Write(body)
		}},
		{"chunked 200", func(w http.ResponseWriter) {
			w.WriteHeader(http.StatusOK)
			http.NewResponseController(w).Flush() // no Content-Length
			w.Write(append(append([]byte(nil), want...), 1, 2, 3))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Header.Get("Range") == "" {
					w.Header().Set("Content-Length", strconv.Itoa(size))
					w.WriteHeader(http.StatusOK)
					w.Write(want[:cut])
					http.NewResponseController(w).Flush()
					panic(http.ErrAbortHandler)
				}
				tc.resume(w)
			}))
			defer hs.Close()
			c := hostileClient(t, hs.URL, mediaclient.Options{MaxRetries: -1})
			got, _, err := fetch(t, c, hostileURI)
			if len(got) > size {
				t.Fatalf("%d bytes delivered (err %v); the media has %d: bytes past the total reached the reader", len(got), err, size)
			}
			if err == nil && !sameBytes(got, want) {
				t.Fatalf("success with the wrong bytes")
			}
		})
	}
}

// TestAttackStalledErrorBody: rule 10 and issue "a stalled server never hangs a bot". A server that
// sends the headers of an error or redirect answer and then nothing: the client reads that body (to
// parse the Matrix error, to decide on a retry, to drain the connection) with no stall timer, so the
// call hangs for as long as the server likes, whatever StallTimeout and HeaderTimeout say. It must end
// with ErrStalled (or another typed error) within those timeouts.
func TestAttackStalledErrorBody(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
	}{
		{"404 Matrix error", http.StatusNotFound},
		{"500 retried", http.StatusInternalServerError},
		{"429", http.StatusTooManyRequests},
		{"307 redirect", http.StatusTemporaryRedirect},
	} {
		t.Run(tc.name, func(t *testing.T) {
			release := make(chan struct{})
			hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tc.status == http.StatusTemporaryRedirect {
					w.Header().Set("Location", "/elsewhere")
				}
				w.Header().Set("Content-Type", "application/json")
				w.Header().Set("Content-Length", "100")
				w.WriteHeader(tc.status)
				w.Write([]byte(`{"errcode":`))
				http.NewResponseController(w).Flush()
				select { // then nothing
				case <-release:
				case <-r.Context().Done():
				}
			}))
			defer hs.Close()
			defer close(release)
			c := hostileClient(t, hs.URL, mediaclient.Options{StallTimeout: 50 * time.Millisecond, HeaderTimeout: 50 * time.Millisecond, MaxRetries: 1})
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			var err error
			if !within(time.Second, func() { _, err = c.Download(ctx, hostileURI) }) {
				t.Error("Download still waiting on a stalled answer body after 1 s (StallTimeout 50 ms)")
				cancel()
				return
			}
			var me *mediaclient.Error
			if !errors.As(err, &me) {
				t.Errorf("err = %v; want an *Error", err)
			}
		})
	}
}

// TestAttackNegativeHeaderTimeoutStillArmed: Options.HeaderTimeout documents "a negative value means
// none". On the homeserver the client adds the timeout_ms it sent (ServerUploadWait) to
// HeaderTimeout, so -1 plus 20 ms arms a 20 ms header timeout: a homeserver that answers after 200 ms
// is cut off (ErrStalled after the retries) although the caller turned header timeouts off.
func TestAttackNegativeHeaderTimeoutStillArmed(t *testing.T) {
	b := testserver.Behavior{Faults: []testserver.Fault{{Stall: testserver.StallHeaders, StallFor: 200 * time.Millisecond}}}
	srv, c := setup(t, testserver.Config{Behavior: &b}, mediaclient.Options{
		API: mediaclient.APIV3, HeaderTimeout: -1, ServerUploadWait: 20 * time.Millisecond, MaxRetries: 1,
	})
	uri := srv.AddMedia([]byte("slow but fine"), testserver.MediaOptions{})
	got, _, err := fetch(t, c, uri)
	if err != nil || string(got) != "slow but fine" {
		t.Fatalf("got %q, %v; want the media (no header timeout was asked for)", got, err)
	}
}

// TestAttackRedirectTargetPoisonsClient: rule 1 — "a v1 answer of 404/405 M_UNRECOGNIZED falls back
// to v3 and is remembered per homeserver". The answer that counts is the homeserver's answer to the
// v1 request. Today any answer that comes from the homeserver's origin counts, even one reached
// through a redirect target's Location: a CDN (a third party) that bounces the chain to an unknown
// path of the homeserver (404 M_UNRECOGNIZED, as Synapse answers any unknown path) makes the Client
// believe the homeserver has no client v1 media, and every later download of that Client goes to
// media v3 — where a homeserver with frozen unauthenticated media answers 404.
func TestAttackRedirectTargetPoisonsClient(t *testing.T) {
	cdn := httptest.NewServer(nil)
	defer cdn.Close()
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch p := r.URL.Path; {
		case p == "/_matrix/client/versions":
			w.Write([]byte(`{"versions":["v1.11"]}`))
		case p == "/_matrix/client/v1/media/download/example.org/bounced":
			http.Redirect(w, r, cdn.URL+"/object", http.StatusTemporaryRedirect)
		case p == "/_matrix/client/v1/media/download/example.org/fine" && r.Header.Get("Authorization") == "Bearer t":
			w.Write([]byte("fine"))
		case strings.HasPrefix(p, "/_matrix/media/v3/"):
			mautrix.MNotFound.WithMessage("unauthenticated media is frozen").Write(w)
		default:
			mautrix.MUnrecognized.WithMessage("Unrecognized request").Write(w)
		}
	}))
	defer hs.Close()
	cdn.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, hs.URL+"/_matrix/nowhere", http.StatusTemporaryRedirect)
	})
	c := hostileClient(t, hs.URL, mediaclient.Options{API: mediaclient.APIAuto, AccessToken: "t"})
	m, err := c.Download(t.Context(), id.ContentURI{Homeserver: "example.org", FileID: "bounced"})
	if err == nil {
		if fb := m.Fallbacks(); len(fb) > 0 {
			t.Errorf("fallbacks %v after a redirect target's answer", fb)
		}
		m.Close()
	}
	got, m, err := fetch(t, c, id.ContentURI{Homeserver: "example.org", FileID: "fine"})
	if err != nil || string(got) != "fine" || m.API != mediaclient.APIV1 {
		t.Fatalf("next download: %q, %v; want it from client v1 (the homeserver never said it lacks v1)", got, err)
	}
}

// TestAttackErrorHoldsSignedLocation: rule 11 — no error carries a signed query string. A redirect
// status the client does not follow (300) comes back as a mautrix.HTTPError whose Response.Header
// still holds the Location with the CDN's signature; logging the error whole (%+v, or a JSON dump of
// the response) writes the signed URL out.
func TestAttackErrorHoldsSignedLocation(t *testing.T) {
	b := testserver.Behavior{V3Redirect: testserver.Always, Redirect: http.StatusMultipleChoices}
	srv, c := setup(t, testserver.Config{Behavior: &b}, mediaclient.Options{API: mediaclient.APIV3})
	uri := srv.AddMedia([]byte("x"), testserver.MediaOptions{})
	_, _, err := fetch(t, c, uri)
	var he mautrix.HTTPError
	if !errors.As(err, &he) || he.Response == nil {
		t.Fatalf("err = %v; want a mautrix.HTTPError", err)
	}
	if loc := he.Response.Header.Get("Location"); strings.Contains(loc, "?") {
		t.Errorf("the error's response holds Location %q", loc)
	}
}

// TestAttackResumeBudgetSpentTwice: rule 9 and Options.DisableResume's promise: a break is resumed
// within the budget (three resumes). When the resumed answer is a 200 (a server that ignores Range)
// and breaks while the client skips the bytes it already has, that one break costs two resumes: the
// broken segment is left in place and read again. Three breaks must leave the fourth answer to
// finish the media; before the fix the download failed after the third.
func TestAttackResumeBudgetSpentTwice(t *testing.T) {
	want := content(100_000, 7)
	b := testserver.Behavior{Direct: testserver.Serving{IgnoreRange: true}, Faults: []testserver.Fault{
		{Count: 1, Truncate: true, TruncateAt: 60_000},
		{Count: 2, Truncate: true, TruncateAt: 10_000}, // both break inside the skipped part
	}}
	srv, c := setup(t, testserver.Config{Behavior: &b}, mediaclient.Options{API: mediaclient.APIV3})
	uri := srv.AddMedia(want, testserver.MediaOptions{})
	got, _, err := fetch(t, c, uri)
	if err != nil || !sameBytes(got, want) {
		t.Fatalf("got %d bytes, %v after %d requests; want the media after three breaks and three resumes", len(got), err, len(srv.Requests()))
	}
}

// TestAttackCloseDuringEncryptedReadRaces: Media.Close "may be called while a Read is in progress in
// another goroutine". For an encrypted attachment Close closes the decrypting reader (its error field
// and mautrix's stream, whose hash it sums) while the Read goroutine uses them: a data race, which
// `go test -race` reports.
func TestAttackCloseDuringEncryptedReadRaces(t *testing.T) {
	b := testserver.Behavior{Faults: []testserver.Fault{{Stall: testserver.StallBody, StallAfter: 1000}}}
	srv, c := setup(t, testserver.Config{Behavior: &b}, mediaclient.Options{API: mediaclient.APIV3})
	file := addEncrypted(srv, content(50_000, 8), testserver.MediaOptions{})
	m, err := c.DownloadEncrypted(t.Context(), file)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() {
		_, err := io.ReadAll(m)
		done <- err
	}()
	m.Close()
	if err := <-done; err == nil {
		t.Error("a read cut by Close ended without error")
	}
}

// TestAttackTimeoutBoundsVersions: Options.Timeout "bounds a whole call: every request, retry and
// wait". The wait for /versions happens before the call's deadline is set, so a call against a
// homeserver whose /versions and downloads both hang takes two Timeouts (one for /versions, one for
// the download), not one.
func TestAttackTimeoutBoundsVersions(t *testing.T) {
	const timeout = 400 * time.Millisecond
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done() // every answer hangs
	}))
	defer hs.Close()
	c := hostileClient(t, hs.URL, mediaclient.Options{API: mediaclient.APIAuto, AccessToken: "t", Timeout: timeout})
	start := time.Now()
	_, err := c.Download(t.Context(), hostileURI)
	if el := time.Since(start); el > timeout+300*time.Millisecond {
		t.Errorf("Download returned after %v (%v); want about its Timeout of %v", el.Round(time.Millisecond), err, timeout)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v; want DeadlineExceeded", err)
	}
}

// TestAttackCachedTargetBringsCredentialsBack: rule 4 — credentials go to the homeserver's origin
// "and never again once the chain has left that origin". A chain of 308s that leaves the homeserver
// and comes back to a URL on its origin chosen by the redirect target (home → CDN → home/_cdn/…) is
// remembered by the 308 cache; the next download (and every resume once the target is cached) starts
// at that remembered URL as if it were the homeserver's own request, and sends it Authorization and
// Cookie. A path on the homeserver's host that a third party picked must never get them.
func TestAttackCachedTargetBringsCredentialsBack(t *testing.T) {
	b := testserver.Behavior{V3Redirect: testserver.Always, Redirect: http.StatusPermanentRedirect,
		Chain: []testserver.OriginName{testserver.OriginCDN, testserver.OriginHomeserver}}
	srv, c := setup(t, testserver.Config{Behavior: &b}, mediaclient.Options{API: mediaclient.APIV3, Header: http.Header{"Cookie": {"session=1"}}})
	uri := srv.AddMedia([]byte("bytes"), testserver.MediaOptions{})
	for run := range 2 {
		got, m, err := fetch(t, c, uri)
		if err != nil || string(got) != "bytes" {
			t.Fatalf("run %d: %q, %v", run, got, err)
		}
		for _, h := range m.Hops() {
			if h.Credentials && h.Step != mediaclient.StepRequest {
				t.Errorf("run %d: %s hop to %s%s carried credentials", run, h.Step, h.Origin, h.Path)
			}
		}
	}
	for _, r := range srv.Requests() {
		if r.Role != testserver.RoleHomeserver && r.HasCredentials() {
			t.Errorf("redirect target %s%s received Authorization %q, Cookie %q", r.Origin, r.Path, r.Header.Get("Authorization"), r.Header.Get("Cookie"))
		}
	}
}

// TestAttackDownloadBytesTrustsContentLength: rule 7 (bounded memory) at the mautrix wrapper.
// DownloadBytes sizes its buffer from the first answer's Content-Length before a byte has arrived: a
// server that announces 200 MiB, sends four bytes and hangs up makes every call allocate 200 MiB (up
// to 1 GiB per call). The buffer should grow with what arrives (mautrix's own DownloadBytes uses
// io.ReadAll).
func TestAttackDownloadBytesTrustsContentLength(t *testing.T) {
	const claimed = 200 << 20
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(claimed))
		w.WriteHeader(http.StatusOK)
		w.Write([]byte("tiny"))
		http.NewResponseController(w).Flush()
		panic(http.ErrAbortHandler)
	}))
	defer hs.Close()
	cli, err := mautrix.NewClient(hs.URL, "", "")
	if err != nil {
		t.Fatal(err)
	}
	w, err := mediaclient.Wrap(cli, mediaclient.Options{API: mediaclient.APIV3, DisableResume: true, MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Client().CloseIdleConnections()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err = w.DownloadBytes(t.Context(), hostileURI)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, mediaclient.ErrTruncated) {
		t.Errorf("err = %v; want ErrTruncated", err)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 32<<20 {
		t.Errorf("DownloadBytes allocated %d MiB for a body of 4 bytes", grew>>20)
	}
}

// ---------------------------------------------------------------------------------------------
// Properties that hold (tests that pass, kept for the coverage they add).
// ---------------------------------------------------------------------------------------------

// TestHoldsSizeLimitAtExactSize: MaxSize equal to the media's size is not "larger than the limit",
// whether the size is known up front, unknown (chunked) or learned across 206 chunks.
func TestHoldsSizeLimitAtExactSize(t *testing.T) {
	want := content(70_000, 9)
	for _, tc := range []struct {
		name string
		b    testserver.Behavior
	}{
		{"Content-Length", testserver.Behavior{}},
		{"chunked", testserver.Behavior{NoContentLength: true}},
		{"206 chunks after a break", testserver.Behavior{Direct: testserver.Serving{RangeChunk: 16 << 10, NoValidators: true}, Faults: []testserver.Fault{{Count: 1, Truncate: true, TruncateAt: 1000}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.b
			srv, c := setup(t, testserver.Config{Behavior: &b}, mediaclient.Options{API: mediaclient.APIV3, MaxSize: int64(len(want))})
			uri := srv.AddMedia(want, testserver.MediaOptions{})
			if got, _, err := fetch(t, c, uri); err != nil || !sameBytes(got, want) {
				t.Fatalf("got %d bytes, %v", len(got), err)
			}
			srv.SetBehavior(b)
			m, err := c.Download(t.Context(), uri, mediaclient.DownloadOptions{MaxSize: int64(len(want)) - 1})
			if _, err := readAll(t, m, err); !errors.Is(err, mediaclient.ErrTooLarge) {
				t.Fatalf("one byte over: %v; want ErrTooLarge", err)
			}
		})
	}
}

// TestHoldsLastByteAndEOF: an Offset at the last byte gets a 206 of one byte; reads after EOF return
// EOF again, Close twice is fine, and WriteTo delivers what Read does.
func TestHoldsLastByteAndEOF(t *testing.T) {
	want := content(10_000, 10)
	srv, c := setup(t, testserver.Config{}, mediaclient.Options{API: mediaclient.APIV3})
	uri := srv.AddMedia(want, testserver.MediaOptions{})
	m, err := c.Download(t.Context(), uri, mediaclient.DownloadOptions{Offset: int64(len(want) - 1)})
	if err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	if n, err := m.WriteTo(&sb); err != nil || n != 1 || sb.String() != string(want[len(want)-1:]) || m.Offset != int64(len(want)-1) {
		t.Fatalf("WriteTo = %d, %v, offset %d", n, err, m.Offset)
	}
	for range 2 {
		if n, err := m.Read(make([]byte, 10)); n != 0 || err != io.EOF {
			t.Fatalf("read after EOF = %d, %v", n, err)
		}
	}
	if m.Close() != nil || m.Close() != nil {
		t.Error("Close twice failed")
	}
}

// TestHoldsCredentialsEverywhere: Authorization, Cookie and a custom credential header never reach a
// redirect target on any hop of a download that is retried after a 503, re-resolved after an expired
// URL, stalled, reset and resumed, answered in 206 chunks, and (308) served from the cache on the second
// run; and a chain of 307s that comes back to the homeserver's origin after leaving it does not bring
// them back, on any resume either.
func TestHoldsCredentialsEverywhere(t *testing.T) {
	want := content(120_000, 11)
	for _, tc := range []struct {
		name     string
		redirect int
		chain    []testserver.OriginName
	}{
		{"308 through two CDNs, cached", http.StatusPermanentRedirect, []testserver.OriginName{testserver.OriginCDN, testserver.OriginCDNHost}},
		{"307 back to the homeserver's origin", http.StatusTemporaryRedirect, []testserver.OriginName{testserver.OriginCDN, testserver.OriginHomeserver}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := testserver.Behavior{
				V3Redirect: testserver.Always, Redirect: tc.redirect, Chain: tc.chain, ExpiredURLs: 1,
				CDN: testserver.Serving{RangeChunk: 32 << 10},
				Faults: []testserver.Fault{
					{Count: 1, Status: 503},
					{At: testserver.RoleCDN, Count: 1, Stall: testserver.StallBody, StallAfter: 5000},
					{At: testserver.RoleCDN, Count: 1, Truncate: true, Reset: true, TruncateAt: 9000},
				},
			}
			srv, c := setup(t, testserver.Config{Behavior: &b}, mediaclient.Options{
				API: mediaclient.APIV3, StallTimeout: stallWindow,
				Header:            http.Header{"cookie": {"session=1"}, "x-secret": {"s"}},
				CredentialHeaders: []string{"x-SECRET"},
			})
			uri := srv.AddMedia(want, testserver.MediaOptions{})
			home := srv.Origin(testserver.OriginHomeserver)
			steps := map[mediaclient.Step]bool{}
			for run := range 2 {
				srv.SetBehavior(b) // the faults fire again
				got, m, err := fetch(t, c, uri)
				if err != nil || !sameBytes(got, want) {
					t.Fatalf("run %d: %d bytes, %v", run, len(got), err)
				}
				for _, h := range m.Hops() {
					steps[h.Step] = true
					if h.Credentials && (h.Origin != home || h.Step == mediaclient.StepRedirect || h.Step == mediaclient.StepCached) {
						t.Errorf("run %d: hop %+v carried credentials", run, h)
					}
				}
			}
			statuses, ranged := map[int]bool{}, 0
			for _, r := range srv.Requests() {
				statuses[r.Status] = true
				if r.Header.Get("Range") != "" {
					ranged++
				}
			}
			if !statuses[503] || !statuses[403] || !steps[mediaclient.StepRetry] || !steps[mediaclient.StepReResolve] || ranged < 4 {
				t.Errorf("statuses %v, steps %v, %d ranged requests: the test did not exercise retry, re-resolve and resume", statuses, steps, ranged)
			}
			for _, r := range srv.Requests() {
				if r.Role == testserver.RoleHomeserver {
					continue
				}
				for _, h := range []string{"Authorization", "Cookie", "X-Secret"} {
					if r.Header.Get(h) != "" {
						t.Errorf("%s %s received %s", r.Origin, r.Path, h)
					}
				}
			}
		})
	}
}

// TestHoldsCloseDuringRead: Close from another goroutine ends a Read that waits on a stalled body,
// with an error and without a data race (go test -race).
func TestHoldsCloseDuringRead(t *testing.T) {
	b := testserver.Behavior{Faults: []testserver.Fault{{Stall: testserver.StallBody, StallAfter: 1000}}}
	srv, c := setup(t, testserver.Config{Behavior: &b}, mediaclient.Options{API: mediaclient.APIV3})
	m, err := c.Download(t.Context(), srv.AddMedia(content(50_000, 8), testserver.MediaOptions{}))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() {
		_, err := io.ReadAll(m)
		done <- err
	}()
	m.Close()
	err = <-done
	var me *mediaclient.Error
	if err == nil || !errors.As(err, &me) {
		t.Errorf("read cut by Close: %v; want an *Error", err)
	}
	if m.Close() != nil {
		t.Error("second Close failed")
	}
}

// TestHoldsNoLeakAfterStallsAndClose: after stalled, timed-out, cancelled and closed downloads, no
// goroutine of the client is left once its idle connections are closed.
func TestHoldsNoLeakAfterStallsAndClose(t *testing.T) {
	before := leakcheck.Snapshot()
	b := testserver.Behavior{Faults: []testserver.Fault{{Stall: testserver.StallBody, StallAfter: 500}}}
	srv := testserver.New(t, testserver.Config{Behavior: &b})
	c := newClient(t, srv, mediaclient.Options{API: mediaclient.APIV3, StallTimeout: stallWindow, MaxRetries: 1})
	uri := srv.AddMedia(content(20_000, 12), testserver.MediaOptions{})
	if _, _, err := fetch(t, c, uri); !errors.Is(err, mediaclient.ErrStalled) {
		t.Fatalf("stalled: %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Millisecond)
	if m, err := c.Download(ctx, uri); err == nil {
		io.Copy(io.Discard, m)
		m.Close()
	}
	cancel()
	var wg sync.WaitGroup
	for range 4 {
		m, err := c.Download(t.Context(), uri)
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() { io.Copy(io.Discard, m) })
		m.Close()
	}
	wg.Wait()
	c.CloseIdleConnections()
	srv.Close()
	for _, g := range leakcheck.Wait(before, 2*time.Second) {
		if strings.Contains(g, "mediaclient") {
			t.Errorf("goroutine left running:\n%s", g)
		}
	}
}

// TestHoldsWholeAnswerOfAnotherLength: after a break, a 200 (the whole media anew) whose
// Content-Length is not the total the first answer gave is another media: ErrChanged, and what the
// reader got is a prefix of the media.
func TestHoldsWholeAnswerOfAnotherLength(t *testing.T) {
	const size, cut = 5000, 1000
	want := content(size, 13)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Range") == "" {
			w.Header().Set("Content-Length", strconv.Itoa(size))
			w.WriteHeader(http.StatusOK)
			w.Write(want[:cut])
			http.NewResponseController(w).Flush()
			panic(http.ErrAbortHandler)
		}
		w.Header().Set("Content-Length", strconv.Itoa(size+3))
		w.Write(append(append([]byte(nil), want...), 1, 2, 3)) // 200, three bytes longer
	}))
	defer hs.Close()
	c := hostileClient(t, hs.URL, mediaclient.Options{MaxRetries: -1})
	got, _, err := fetch(t, c, hostileURI)
	if !errors.Is(err, mediaclient.ErrChanged) || !sameBytes(got, want[:len(got)]) {
		t.Fatalf("got %d bytes, %v; want a prefix and ErrChanged", len(got), err)
	}
}

// TestHoldsCancelDuringResume: a context cancelled while a resume waits for headers that never come
// ends the read at once with an *Error that matches context.Canceled (not ErrStalled, not a hang).
func TestHoldsCancelDuringResume(t *testing.T) {
	want := content(10_000, 14)
	gotRange := make(chan struct{}, 1)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Range") == "" {
			w.Header().Set("Content-Length", strconv.Itoa(len(want)))
			w.WriteHeader(http.StatusOK)
			w.Write(want[:3000])
			http.NewResponseController(w).Flush()
			panic(http.ErrAbortHandler)
		}
		gotRange <- struct{}{}
		<-r.Context().Done() // no headers, ever
	}))
	defer hs.Close()
	c := hostileClient(t, hs.URL, mediaclient.Options{})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	m, err := c.Download(ctx, hostileURI)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	done := make(chan error, 1)
	go func() {
		_, err := io.ReadAll(m)
		done <- err
	}()
	select {
	case <-gotRange:
	case err := <-done:
		t.Fatalf("read ended before the resume: %v", err)
	}
	cancel()
	select {
	case err = <-done:
	case <-time.After(3 * time.Second):
		t.Fatal("read still running 3 s after the cancel")
	}
	var me *mediaclient.Error
	if !errors.Is(err, context.Canceled) || !errors.As(err, &me) || errors.Is(err, mediaclient.ErrStalled) {
		t.Fatalf("err = %v; want an *Error matching context.Canceled", err)
	}
}

// TestAttackOffsetPastTheEnd: rule 9 — success means exactly the media's bytes. A partial copy
// longer than the media (10,010 bytes of a 10,000-byte media, with the right validator) is finished
// with DownloadOptions{Offset: 10010, IfRange}; the server ignores Range and sends the whole media.
// The answer shows the media is shorter than the offset, so the call must fail (one request, a typed
// error). Today the skip breaks off at the end, that break is "resumed", and the next Read finds the
// position at the total and reports io.EOF: success, 0 bytes, Media.ContentLength -10 — and the
// caller keeps a 10,010-byte file as the media.
func TestAttackOffsetPastTheEnd(t *testing.T) {
	b := testserver.Behavior{Direct: testserver.Serving{IgnoreRange: true}}
	srv, c := setup(t, testserver.Config{Behavior: &b}, mediaclient.Options{API: mediaclient.APIV3})
	want := content(10_000, 15)
	uri := srv.AddMedia(want, testserver.MediaOptions{})
	m, err := c.Download(t.Context(), uri)
	if err != nil {
		t.Fatal(err)
	}
	v := m.Validator()
	m.Close()
	srv.ResetLog()
	m, err = c.Download(t.Context(), uri, mediaclient.DownloadOptions{Offset: int64(len(want)) + 10, IfRange: v})
	var length int64
	if err == nil {
		length = m.ContentLength
	}
	_, err = readAll(t, m, err)
	if err == nil || errors.Is(err, mediaclient.ErrTruncated) || len(srv.Requests()) != 1 {
		t.Fatalf("err = %v (ContentLength %d) after %d requests; want one request and an error that is not a truncation", err, length, len(srv.Requests()))
	}
}
