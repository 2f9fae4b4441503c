package mediaclient_test

// Tests of the core promise where features meet: a download that reports success holds exactly the
// media's bytes (encryption × resumption × ranges answered in chunks × size limits × the 308 cache),
// and no credential leaves the homeserver's origin (header keys in any case, a proxy in front of the
// guard, errors that are logged whole).

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto/attachment"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mxfetch/mxfetch/mediaclient"
	"github.com/mxfetch/mxfetch/testserver"
)

// addEncrypted encrypts plaintext as a Matrix client does and adds the ciphertext to srv.
func addEncrypted(srv *testserver.Server, plaintext []byte, opts testserver.MediaOptions) *event.EncryptedFileInfo {
	ef := attachment.NewEncryptedFile()
	ciphertext := bytes.Clone(plaintext)
	ef.EncryptInPlace(ciphertext)
	uri := srv.AddMedia(ciphertext, opts)
	return &event.EncryptedFileInfo{EncryptedFile: *ef, URL: uri.CUString()}
}

// readAll reads a Media whole and closes it.
func readAll(t testing.TB, m *mediaclient.Media, err error) ([]byte, error) {
	t.Helper()
	if err != nil {
		return nil, err
	}
	defer m.Close()
	return io.ReadAll(m)
}

// TestEncryptedResumed: a body that breaks mid-way is resumed below the decryption, so the plaintext
// is whole and verified — never the raw ciphertext of the resumed part.
func TestEncryptedResumed(t *testing.T) {
	plaintext := content(200_000, 9)
	for _, tc := range []struct {
		name string
		b    testserver.Behavior
	}{
		{"CDN truncates once", testserver.Behavior{V3Redirect: testserver.Always, Faults: []testserver.Fault{{At: testserver.RoleCDN, Count: 1, Truncate: true, TruncateAt: 70_000}}}},
		{"CDN resets twice, no validators", testserver.Behavior{V3Redirect: testserver.Always, CDN: testserver.Serving{NoValidators: true}, Faults: []testserver.Fault{{At: testserver.RoleCDN, Count: 2, Truncate: true, Reset: true, TruncateAt: 30_000}}}},
		{"homeserver in 16 KiB ranges, truncated once", testserver.Behavior{Direct: testserver.Serving{RangeChunk: 16 << 10, NoValidators: true, IgnoreIfRange: true}, Faults: []testserver.Fault{{Count: 1, Truncate: true, TruncateAt: 70_000}}}},
		{"server ignores Range", testserver.Behavior{Direct: testserver.Serving{IgnoreRange: true}, Faults: []testserver.Fault{{Count: 1, Truncate: true, TruncateAt: 70_000}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.b
			srv, c := setup(t, testserver.Config{Behavior: &b}, mediaclient.Options{API: mediaclient.APIV3})
			file := addEncrypted(srv, plaintext, testserver.MediaOptions{})
			m, err := c.DownloadEncrypted(t.Context(), file)
			got, err := readAll(t, m, err)
			if err != nil || !sameBytes(got, plaintext) {
				t.Fatalf("got %d bytes (%v); want the %d plaintext bytes", len(got), err, len(plaintext))
			}
			var ranged int
			for _, r := range srv.Requests() {
				if r.Header.Get("Range") != "" {
					ranged++
				}
			}
			if ranged == 0 {
				t.Error("no request carried Range: the break was not resumed")
			}
			if credentialsAt(srv, testserver.OriginCDN) != 0 {
				t.Error("token at the CDN")
			}

			// The mautrix wrapper's bytes method keeps its promise too.
			cli, err := mautrix.NewClient(srv.URL, "", srv.AccessToken)
			if err != nil {
				t.Fatal(err)
			}
			w, err := mediaclient.Wrap(cli, mediaclient.Options{API: mediaclient.APIV3, RetryWaitMin: time.Millisecond, RetryWaitMax: time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			srv.SetBehavior(b) // the fault fires again
			if got, err := w.DownloadEncryptedBytes(t.Context(), file); err != nil || !sameBytes(got, plaintext) {
				t.Fatalf("wrapper: %d bytes, %v", len(got), err)
			}
		})
	}
}

// TestEncryptedResumeMismatch: when what the resume delivers is not the same media, the reader gets an
// error and the plaintext is never handed out as verified.
func TestEncryptedResumeMismatch(t *testing.T) {
	plaintext := content(100_000, 3)
	b := testserver.Behavior{V3Redirect: testserver.Always, Faults: []testserver.Fault{{At: testserver.RoleCDN, Count: 1, Truncate: true, TruncateAt: 10_000}}}
	srv, c := setup(t, testserver.Config{Behavior: &b}, mediaclient.Options{API: mediaclient.APIV3})
	file := addEncrypted(srv, plaintext, testserver.MediaOptions{})
	uri, _ := file.URL.Parse()
	m, err := c.DownloadEncrypted(t.Context(), file)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	first := make([]byte, 1000)
	if _, err := io.ReadFull(m, first); err != nil {
		t.Fatal(err)
	}
	srv.SetContent(uri.FileID, content(100_000, 4)) // a new version: new ETag, same length
	_, err = io.ReadAll(m)
	if !errors.Is(err, mediaclient.ErrChanged) {
		t.Fatalf("err = %v; want ErrChanged", err)
	}
}

// TestRangesInChunks: a server that answers ranges with at most a chunk (matrix-media-repo: 10 MiB,
// without validators, ignoring If-Range) is asked again until the total is reached, both when a
// broken body is resumed and when a partial copy is finished with an offset.
func TestRangesInChunks(t *testing.T) {
	const size, chunk = 300_000, 64 << 10
	want := content(size, 11)
	direct := testserver.Serving{RangeChunk: chunk, NoValidators: true, IgnoreIfRange: true}

	t.Run("resume of a broken body", func(t *testing.T) {
		b := testserver.Behavior{Direct: direct, Faults: []testserver.Fault{{Count: 1, Truncate: true, TruncateAt: 20_000}}}
		srv, c := setup(t, testserver.Config{Behavior: &b}, mediaclient.Options{API: mediaclient.APIV3})
		uri := srv.AddMedia(want, testserver.MediaOptions{})
		got, m, err := fetch(t, c, uri)
		if err != nil || !sameBytes(got, want) {
			t.Fatalf("got %d bytes, %v; want %d", len(got), err, size)
		}
		// One plain request that broke at 20,000, then ranges of 64 KiB from there to the end.
		wantRanged := (size - 20_000 + chunk - 1) / chunk
		if n := len(srv.Requests()); n != 1+wantRanged {
			t.Errorf("%d requests; want 1 + %d ranged", n, wantRanged)
		}
		steps := map[mediaclient.Step]int{}
		for _, h := range m.Hops() {
			steps[h.Step]++
		}
		if steps[mediaclient.StepResume] != 1 || steps[mediaclient.StepNextRange] != wantRanged-1 {
			t.Errorf("steps %v; want one resume and %d next ranges", steps, wantRanged-1)
		}
	})
	t.Run("partial copy finished with an offset", func(t *testing.T) {
		b := testserver.Behavior{Direct: direct}
		srv, c := setup(t, testserver.Config{Behavior: &b}, mediaclient.Options{API: mediaclient.APIV3})
		uri := srv.AddMedia(want, testserver.MediaOptions{})
		m, err := c.Download(t.Context(), uri, mediaclient.DownloadOptions{Offset: 1000})
		if err != nil {
			t.Fatal(err)
		}
		if m.Offset != 1000 || m.ContentLength != size-1000 || m.Size() != size {
			t.Errorf("offset %d, length %d, size %d", m.Offset, m.ContentLength, m.Size())
		}
		got, err := readAll(t, m, nil)
		if err != nil || !sameBytes(got, want[1000:]) {
			t.Fatalf("got %d bytes, %v; want %d", len(got), err, size-1000)
		}
	})
	t.Run("through a redirect whose CDN chunks too, with the 308 cache", func(t *testing.T) {
		b := testserver.Behavior{V3Redirect: testserver.Always, Redirect: 308, CDN: direct, Faults: []testserver.Fault{{At: testserver.RoleCDN, Count: 2, Truncate: true, Reset: true, TruncateAt: 5_000}}}
		srv, c := setup(t, testserver.Config{Behavior: &b}, mediaclient.Options{API: mediaclient.APIV3})
		uri := srv.AddMedia(want, testserver.MediaOptions{})
		for range 2 {
			if got, _, err := fetch(t, c, uri); err != nil || !sameBytes(got, want) {
				t.Fatalf("got %d bytes, %v", len(got), err)
			}
		}
		if credentialsAt(srv, testserver.OriginCDN) != 0 {
			t.Error("token at the CDN")
		}
	})
}

// TestHostileRanges: an answer to a range request that does not fit what was asked is never taken
// for media bytes: the download fails (or, for what fits, finishes exactly).
func TestHostileRanges(t *testing.T) {
	want := content(100_000, 12)
	for _, tc := range []struct {
		name    string
		fault   testserver.RangeFault
		first   bool // the fault fires on the first request (no Range)
		wantErr error
	}{
		{"206 to a request without Range", testserver.RangeUnasked, true, mediaclient.ErrUnexpectedStatus},
		{"206 that starts elsewhere", testserver.RangeWrongStart, false, mediaclient.ErrRangeMismatch},
		{"206 longer than the rest", testserver.RangeTooLong, false, mediaclient.ErrRangeMismatch},
		{"206 with another total", testserver.RangeWrongTotal, false, mediaclient.ErrChanged},
		{"206 with a malformed total", testserver.RangeBadTotal, false, mediaclient.ErrRangeMismatch},
		{"206 with an unknown total", testserver.RangeStarTotal, false, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			faults := []testserver.Fault{{Count: 1, Range: tc.fault}}
			if !tc.first {
				faults = append([]testserver.Fault{{Count: 1, Truncate: true, TruncateAt: 30_000}}, faults...)
			}
			b := testserver.Behavior{Faults: faults}
			srv, c := setup(t, testserver.Config{Behavior: &b}, mediaclient.Options{API: mediaclient.APIV3})
			uri := srv.AddMedia(want, testserver.MediaOptions{})
			got, _, err := fetch(t, c, uri)
			if tc.wantErr == nil {
				if err != nil || !sameBytes(got, want) {
					t.Fatalf("got %d bytes, %v; want the media", len(got), err)
				}
				return
			}
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v; want %v", err, tc.wantErr)
			}
			if len(got) > len(want) || !sameBytes(got, want[:len(got)]) {
				t.Errorf("%d bytes delivered, not a prefix of the media", len(got))
			}
		})
	}
	// A partial copy finished with an offset: the 206 must start there.
	b := testserver.Behavior{Faults: []testserver.Fault{{Count: 1, Range: testserver.RangeWrongStart}}}
	srv, c := setup(t, testserver.Config{Behavior: &b}, mediaclient.Options{API: mediaclient.APIV3})
	uri := srv.AddMedia(want, testserver.MediaOptions{})
	if _, err := c.Download(t.Context(), uri, mediaclient.DownloadOptions{Offset: 5000}); !errors.Is(err, mediaclient.ErrRangeMismatch) {
		t.Errorf("offset download from a 206 that starts elsewhere: %v", err)
	}
}

// TestSizeLimitAcrossSegments: the size limit holds for the media's total, whatever answers it comes in.
func TestSizeLimitAcrossSegments(t *testing.T) {
	want := content(200_000, 13)
	b := testserver.Behavior{Direct: testserver.Serving{RangeChunk: 32 << 10, NoValidators: true}, NoContentLength: true}
	srv, c := setup(t, testserver.Config{Behavior: &b}, mediaclient.Options{API: mediaclient.APIV3, MaxSize: 150_000})
	uri := srv.AddMedia(want, testserver.MediaOptions{})
	got, _, err := fetch(t, c, uri)
	if !errors.Is(err, mediaclient.ErrTooLarge) || len(got) > 150_000 {
		t.Fatalf("got %d bytes, %v; want ErrTooLarge after at most the limit", len(got), err)
	}
	// Known up front (a total in Content-Range): refused before any byte.
	srv.SetBehavior(testserver.Behavior{Direct: testserver.Serving{RangeChunk: 32 << 10}})
	if _, err := c.Download(t.Context(), uri, mediaclient.DownloadOptions{Offset: 10}); !errors.Is(err, mediaclient.ErrTooLarge) {
		t.Errorf("offset download of an oversized media: %v", err)
	}
}

// TestResumeWithoutValidator: Matrix media is immutable, so a download whose server gives neither
// ETag nor Last-Modified is still resumed, checked by the total length.
func TestResumeWithoutValidator(t *testing.T) {
	want := content(150_000, 14)
	b := testserver.Behavior{V3Redirect: testserver.Always, CDN: testserver.Serving{NoValidators: true}, Faults: []testserver.Fault{{At: testserver.RoleCDN, Count: 1, Truncate: true, Reset: true, TruncateAt: 40_000}}}
	srv, c := setup(t, testserver.Config{Behavior: &b}, mediaclient.Options{API: mediaclient.APIV3})
	uri := srv.AddMedia(want, testserver.MediaOptions{})
	got, _, err := fetch(t, c, uri)
	if err != nil || !sameBytes(got, want) {
		t.Fatalf("got %d bytes, %v", len(got), err)
	}
	last := srv.RequestsTo(testserver.OriginCDN)
	if r := last[len(last)-1]; r.Header.Get("Range") != "bytes=40000-" || r.Header.Get("If-Range") != "" {
		t.Errorf("resume sent Range %q If-Range %q; want bytes=40000- and no If-Range", r.Header.Get("Range"), r.Header.Get("If-Range"))
	}
	// A thumbnail may be generated anew: without a validator it is not resumed.
	srv.SetBehavior(b)
	m, err := c.Thumbnail(t.Context(), uri, mediaclient.ThumbnailOptions{Width: 32, Height: 32})
	if _, err := readAll(t, m, err); !errors.Is(err, mediaclient.ErrTruncated) {
		t.Errorf("thumbnail without validator: %v; want ErrTruncated", err)
	}
}

// TestVersionsShared: /versions is fetched once at a time for all waiting calls; each call leaves
// when its own context ends; a failure is remembered for a while instead of asked again by every call.
func TestVersionsShared(t *testing.T) {
	var versions atomic.Int64
	release := make(chan struct{})
	hang := atomic.Bool{}
	hang.Store(true)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/_matrix/client/versions" {
			versions.Add(1)
			if hang.Load() {
				select {
				case <-release:
				case <-r.Context().Done():
				}
			}
			http.Error(w, `{"errcode":"M_UNKNOWN"}`, http.StatusInternalServerError)
			return
		}
		http.Error(w, `{"errcode":"M_NOT_FOUND","error":"no"}`, http.StatusNotFound)
	}))
	defer hs.Close()
	defer close(release)
	c, err := mediaclient.New(mediaclient.Options{HomeserverURL: hs.URL, AccessToken: "t", MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseIdleConnections()
	uri := id.ContentURI{Homeserver: "example.org", FileID: "abc"}
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
			defer cancel()
			_, errs[i] = c.Download(ctx, uri)
		})
	}
	wg.Wait() // each returned at its own deadline, although /versions still hangs
	for i, err := range errs {
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("call %d: %v; want its deadline", i, err)
		}
	}
	if n := versions.Load(); n != 1 {
		t.Errorf("/versions asked %d times while it hung; want once", n)
	}

	// Once it has failed, calls use v3 at once and do not ask again.
	hang.Store(false)
	release <- struct{}{}
	for range 200 { // the shared fetch ends with the release; wait for its result to be recorded
		if _, err := c.Download(t.Context(), uri); errors.Is(err, mautrix.MNotFound) && versions.Load() == 1 {
			break
		}
	}
	before := versions.Load()
	for range 5 {
		if _, err := c.Download(t.Context(), uri); !errors.Is(err, mautrix.MNotFound) {
			t.Fatalf("err = %v; want M_NOT_FOUND from v3", err)
		}
	}
	if n := versions.Load(); n != before {
		t.Errorf("/versions asked %d more times after it failed; want none within the failure window", n-before)
	}
}

// TestCredentialHeaderCase: credentials given under non-canonical keys are still recognised and
// kept off every other origin.
func TestCredentialHeaderCase(t *testing.T) {
	b := testserver.Behavior{V3Redirect: testserver.Always}
	srv, c := setup(t, testserver.Config{Behavior: &b}, mediaclient.Options{
		API: mediaclient.APIV3, AccessToken: noToken,
		Header:            http.Header{"authorization": {"Bearer lower"}, "cookie": {"c=1"}, "x-api-key": {"k"}, "x-trace": {"t"}},
		CredentialHeaders: []string{"X-API-KEY"},
	})
	uri := srv.AddMedia([]byte("case"), testserver.MediaOptions{})
	got, m, err := fetch(t, c, uri)
	if err != nil || string(got) != "case" {
		t.Fatal(got, err)
	}
	cdn := srv.RequestsTo(testserver.OriginCDN)[0]
	for _, h := range []string{"Authorization", "Cookie", "X-Api-Key"} {
		if v := cdn.Header.Get(h); v != "" {
			t.Errorf("CDN received %s: %q", h, v)
		}
	}
	if cdn.Header.Get("X-Trace") != "t" {
		t.Error("a plain header did not follow")
	}
	home := srv.RequestsTo(testserver.OriginHomeserver)[0]
	if home.Header.Get("Authorization") != "Bearer lower" || home.Header.Get("X-Api-Key") != "k" {
		t.Errorf("homeserver headers %v", home.Header)
	}
	if hops := m.Hops(); !hops[0].Credentials || hops[1].Credentials {
		t.Errorf("hops %s; want credentials on the first only", hopSummary(hops))
	}
}

// TestGuardFailsClosedThroughProxy: through a proxy, a redirect to a name that cannot be resolved
// here, or to a number a proxy would read as an address, is refused before the proxy is asked.
func TestGuardFailsClosedThroughProxy(t *testing.T) {
	var proxied atomic.Int64
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proxied.Add(1)
		http.Error(w, "the proxy was asked", http.StatusBadGateway)
	}))
	defer proxy.Close()
	proxyURL, _ := url.Parse(proxy.URL)
	for _, loc := range []string{"http://no-such-host.invalid/x", "http://2130706433/x", "http://0x7f.1/x", "http://127.1/x"} {
		t.Run(loc, func(t *testing.T) {
			b := testserver.Behavior{V1Redirect: testserver.Always, Location: &loc}
			srv := testserver.New(t, testserver.Config{Behavior: &b})
			uri := srv.AddMedia([]byte("x"), testserver.MediaOptions{})
			tr := mediaclient.NewTransport()
			// The homeserver is reached directly; everything else through the proxy.
			home, _ := url.Parse(srv.URL)
			tr.Proxy = func(r *http.Request) (*url.URL, error) {
				if r.URL.Host == home.Host {
					return nil, nil
				}
				return proxyURL, nil
			}
			defer tr.CloseIdleConnections()
			c := newClient(t, srv, mediaclient.Options{API: mediaclient.APIV1, Transport: tr})
			before := proxied.Load()
			_, _, err := fetch(t, c, uri)
			if !errors.Is(err, mediaclient.ErrRedirectRefused) || proxied.Load() != before {
				t.Errorf("err = %v, proxy asked %d times; want refused before the proxy", err, proxied.Load()-before)
			}
		})
	}
}

// TestErrorsHoldNoSecret: the request inside a returned mautrix.HTTPError has no credential header and
// no signed query, and the error text says "mediaclient:" once.
func TestErrorsHoldNoSecret(t *testing.T) {
	b := testserver.Behavior{V1Redirect: testserver.Always, Faults: []testserver.Fault{{At: testserver.RoleCDN, Status: 403}}}
	srv, c := setup(t, testserver.Config{Behavior: &b}, mediaclient.Options{API: mediaclient.APIV1})
	uri := srv.AddMedia([]byte("x"), testserver.MediaOptions{})
	for _, tc := range []struct {
		name string
		uri  id.ContentURI
	}{
		{"homeserver 404", id.ContentURI{Homeserver: uri.Homeserver, FileID: "missing"}},
		{"CDN 403", uri},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := fetch(t, c, tc.uri)
			var he mautrix.HTTPError
			if !errors.As(err, &he) || he.Response == nil || he.Response.Request == nil {
				t.Fatalf("err = %v; want a mautrix.HTTPError with its response", err)
			}
			req := he.Response.Request
			if req.Header.Get("Authorization") != "" || req.URL.RawQuery != "" || strings.Contains(req.URL.String(), "sig=") {
				t.Errorf("request in the error: %v %v", req.URL, req.Header)
			}
			if he.Request != nil && he.Request.Header.Get("Authorization") != "" {
				t.Errorf("HTTPError.Request holds the token")
			}
			if n := strings.Count(err.Error(), "mediaclient:"); n != 1 {
				t.Errorf("%q says mediaclient: %d times", err, n)
			}
			if strings.Contains(err.Error(), srv.AccessToken) {
				t.Errorf("error text holds the token")
			}
		})
	}
	// The CDN's refusal names the CDN.
	_, _, err := fetch(t, c, uri)
	if !strings.Contains(err.Error(), srv.Origin(testserver.OriginCDN)) {
		t.Errorf("%q does not name the CDN", err)
	}
	_, _, err = fetch(t, c, id.ContentURI{Homeserver: uri.Homeserver, FileID: "a"})
	for _, sentinel := range []error{mediaclient.ErrTooManyRedirects, mediaclient.ErrTruncated} {
		if strings.HasPrefix(sentinel.Error(), "mediaclient:") {
			t.Errorf("sentinel %q repeats the prefix", sentinel)
		}
	}
	_ = err
}

// TestTargetRefusedFallsBack: a redirect target that refuses even after a fresh redirect makes a v3
// download ask the homeserver for the bytes without allow_redirect.
func TestTargetRefusedFallsBack(t *testing.T) {
	for _, status := range []int{403, 503} {
		b := testserver.Behavior{V3Redirect: testserver.WhenAsked, Faults: []testserver.Fault{{At: testserver.RoleCDN, Status: status}}}
		srv, c := setup(t, testserver.Config{Behavior: &b}, mediaclient.Options{API: mediaclient.APIV3, MaxRetries: 1})
		uri := srv.AddMedia([]byte("from the homeserver"), testserver.MediaOptions{})
		got, m, err := fetch(t, c, uri)
		if err != nil || string(got) != "from the homeserver" || fallbacks(m) != string(mediaclient.FallbackTargetRefused) {
			t.Fatalf("%d: got %q, %v, fallbacks %q", status, got, err, fallbacks(m))
		}
		reqs := srv.RequestsTo(testserver.OriginHomeserver)
		if last := reqs[len(reqs)-1]; last.Query().Has("allow_redirect") {
			t.Errorf("%d: the fallback still sent allow_redirect", status)
		}
	}
}

// TestHopsTellRetries: a retried 5xx is a retry of the chain, not another hop of it.
func TestHopsTellRetries(t *testing.T) {
	b := testserver.Behavior{V3Redirect: testserver.Always, Faults: []testserver.Fault{{Count: 2, Status: 503}}}
	srv, c := setup(t, testserver.Config{Behavior: &b}, mediaclient.Options{API: mediaclient.APIV3})
	uri := srv.AddMedia([]byte("retried"), testserver.MediaOptions{})
	_, m, err := fetch(t, c, uri)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, h := range m.Hops() {
		got = append(got, string(h.Step)+"/"+strings.Repeat("r", h.Attempt))
	}
	want := "request/ retry/r retry/rr redirect/rr"
	if strings.Join(got, " ") != want {
		t.Errorf("hops %v; want %s", got, want)
	}
	if h := m.Hops()[3]; h.Method != http.MethodGet || !strings.HasPrefix(h.Path, "/_cdn/") {
		t.Errorf("hop %+v: want the method and the path without the query", h)
	}
}

// TestOffsetIfRangeIgnored: a server that ignores If-Range (matrix-media-repo) answers a range of the
// media as it is now; when its validator is not the partial copy's, the caller learns the media
// changed instead of getting bytes of another version to append.
func TestOffsetIfRangeIgnored(t *testing.T) {
	b := testserver.Behavior{Direct: testserver.Serving{IgnoreIfRange: true}}
	srv, c := setup(t, testserver.Config{Behavior: &b}, mediaclient.Options{API: mediaclient.APIV3})
	uri := srv.AddMedia(content(10_000, 1), testserver.MediaOptions{})
	first, err := c.Download(t.Context(), uri)
	if err != nil {
		t.Fatal(err)
	}
	old := first.Validator()
	first.Close()
	srv.SetContent(uri.FileID, content(10_000, 2))
	if _, err := c.Download(t.Context(), uri, mediaclient.DownloadOptions{Offset: 4000, IfRange: old}); !errors.Is(err, mediaclient.ErrChanged) {
		t.Fatalf("err = %v; want ErrChanged", err)
	}
	// With the current validator the range is taken.
	m, err := c.Download(t.Context(), uri)
	if err != nil {
		t.Fatal(err)
	}
	cur := m.Validator()
	m.Close()
	m, err = c.Download(t.Context(), uri, mediaclient.DownloadOptions{Offset: 4000, IfRange: cur})
	if got, err := readAll(t, m, err); err != nil || !sameBytes(got, content(10_000, 2)[4000:]) {
		t.Fatalf("got %d bytes, %v", len(got), err)
	}
}

// TestTraceSeesEveryHop: the Hop hook sees each request as it happens, the resumes made while the
// body is read included, in the order of Media.Hops.
func TestTraceSeesEveryHop(t *testing.T) {
	b := testserver.Behavior{V3Redirect: testserver.Always, Faults: []testserver.Fault{{At: testserver.RoleCDN, Count: 1, Truncate: true, TruncateAt: 1000}}}
	srv, c := setup(t, testserver.Config{Behavior: &b}, mediaclient.Options{API: mediaclient.APIV3})
	uri := srv.AddMedia(content(5000, 1), testserver.MediaOptions{})
	var seen []mediaclient.Hop
	ctx := mediaclient.WithTrace(t.Context(), &mediaclient.Trace{Hop: func(h mediaclient.Hop) { seen = append(seen, h) }})
	m, err := c.Download(ctx, uri)
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != 2 {
		t.Errorf("%d hops seen before the body was read; want the 307 and the CDN's answer", len(seen))
	}
	if _, err := readAll(t, m, nil); err != nil {
		t.Fatal(err)
	}
	if got, want := hopSummary(seen), hopSummary(m.Hops()); got != want || len(seen) != 4 {
		t.Errorf("seen %s; want %s (with the resume)", got, want)
	}
}

// TestTraceSeesRetries: the trace hears of each retry and resume, with its cause, before the hop it
// announces.
func TestTraceSeesRetries(t *testing.T) {
	b := testserver.Behavior{Faults: []testserver.Fault{
		{Count: 1, Status: 503},
		{Count: 1, Truncate: true, TruncateAt: 1000},
		{Count: 1, Stall: testserver.StallBody, StallAfter: 3000},
	}}
	srv, c := setup(t, testserver.Config{Behavior: &b}, mediaclient.Options{API: mediaclient.APIV3, StallTimeout: stallWindow})
	want := content(5000, 2)
	uri := srv.AddMedia(want, testserver.MediaOptions{})
	var events []string
	ctx := mediaclient.WithTrace(t.Context(), &mediaclient.Trace{
		Hop: func(h mediaclient.Hop) { events = append(events, fmt.Sprintf("hop %s %d", h.Step, h.Status)) },
		Retry: func(r mediaclient.Retry) {
			e := fmt.Sprintf("%s %d from %d: status %d", r.Step, r.Attempt, r.Offset, r.Status)
			switch {
			case r.Err == nil:
			case errors.Is(r.Err, mediaclient.ErrStalled):
				e += ", stalled"
			default:
				e += ", broke off"
			}
			events = append(events, e)
		},
	})
	m, err := c.Download(ctx, uri)
	if err != nil {
		t.Fatal(err)
	}
	got, err := readAll(t, m, nil)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("read %d bytes, %v", len(got), err)
	}
	wantEvents := []string{
		"hop request 503",
		"retry 1 from 0: status 503",
		"hop retry 200",
		"resume 1 from 1000: status 0, broke off",
		"hop resume 206",
		"resume 2 from 4000: status 0, stalled", // 3000 bytes into the answer from 1000,
		"hop resume 206",
	}
	if strings.Join(events, "\n") != strings.Join(wantEvents, "\n") {
		t.Errorf("trace:\n%s\nwant:\n%s", strings.Join(events, "\n"), strings.Join(wantEvents, "\n"))
	}
}

// mutatingTransport breaks the RoundTripper contract the way some middleware does: it writes into
// the request's headers.
type mutatingTransport struct{ base http.RoundTripper }

func (m mutatingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	req.Header.Set("X-Hop", req.URL.Host)
	return m.base.RoundTrip(req)
}

// TestTransportThatWritesHeaders: below a transport that writes into request headers, every hop has
// headers of its own: parallel downloads do not share (and race on) one header map, and what the
// transport wrote on one hop does not travel to the next.
func TestTransportThatWritesHeaders(t *testing.T) {
	b := testserver.Behavior{V3Redirect: testserver.Always}
	srv := testserver.New(t, testserver.Config{Behavior: &b})
	tr := mediaclient.NewTransport()
	defer tr.CloseIdleConnections()
	c := newClient(t, srv, mediaclient.Options{API: mediaclient.APIV3, Transport: mutatingTransport{tr}})
	want := content(4096, 5)
	uris := make([]id.ContentURI, 16)
	for i := range uris {
		uris[i] = srv.AddMedia(want, testserver.MediaOptions{})
	}
	var wg sync.WaitGroup
	for _, uri := range uris {
		wg.Go(func() {
			if got, _, err := fetch(t, c, uri); err != nil || !sameBytes(got, want) {
				t.Errorf("%s: %d bytes, %v", uri, len(got), err)
			}
		})
	}
	wg.Wait()
	for _, r := range srv.RequestsTo(testserver.OriginCDN) {
		if r.HasCredentials() {
			t.Errorf("credentials at the CDN")
		}
	}
}
