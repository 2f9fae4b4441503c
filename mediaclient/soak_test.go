package mediaclient_test

import (
	"crypto/sha256"
	"errors"
	"math/rand/v2"
	"os"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mxfetch/mxfetch/internal/leakcheck"
	"github.com/mxfetch/mxfetch/mediaclient"
	"github.com/mxfetch/mxfetch/testserver"
)

// TestFaultSoak runs thousands of downloads at parallelism 64 against a server that resets
// connections, answers 503 and 429, truncates and stalls bodies, answers ranges in chunks, serves
// without validators and hands out expired URLs; a third of the items are encrypted attachments and
// a tenth are downloaded with a size limit below their size. Every download ends
// with the exact bytes or a typed error; no credential reaches an origin other than the homeserver;
// no goroutine or file descriptor is left behind.
func TestFaultSoak(t *testing.T) {
	n, parallel := 5000, 64
	if testing.Short() {
		n = 500
	}
	leakcheck.Check(t)
	fdsBefore := openFDs(t)

	srv, err := testserver.Start(testserver.Config{Profile: testserver.ProfileMediaRepo})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	faults := []testserver.Behavior{
		{},
		{Faults: []testserver.Fault{{Count: 1, Status: 503}}},
		{Faults: []testserver.Fault{{Count: 1, Status: 429, RetryAfter: "0"}}},
		{Faults: []testserver.Fault{{Count: 1, Status: 429, RetryAfterMS: 1}}},
		{Faults: []testserver.Fault{{At: testserver.RoleCDN, Count: 1, Truncate: true}}},
		{Faults: []testserver.Fault{{At: testserver.RoleCDN, Count: 1, Truncate: true, Reset: true}}},
		{Faults: []testserver.Fault{{At: testserver.RoleCDN, Count: 1, Reset: true}}},
		{Faults: []testserver.Fault{{Count: 1, Reset: true}}},
		{ExpiredURLs: 1},
		// Without validators (immutable media is resumed all the same), in ranges answered in chunks,
		// stalled mid-body, and through permanent redirects remembered in the 308 cache.
		{CDN: testserver.Serving{NoValidators: true}, Faults: []testserver.Fault{{At: testserver.RoleCDN, Count: 1, Truncate: true, Reset: true}}},
		{CDN: testserver.Serving{RangeChunk: 4 << 10, NoValidators: true, IgnoreIfRange: true}, Faults: []testserver.Fault{{At: testserver.RoleCDN, Count: 1, Truncate: true}}},
		{Faults: []testserver.Fault{{At: testserver.RoleCDN, Count: 1, Stall: testserver.StallBody, StallAfter: 512}}},
		{Redirect: 308, Faults: []testserver.Fault{{At: testserver.RoleCDN, Count: 2, Truncate: true, Reset: true}}},
		{Faults: []testserver.Fault{{At: testserver.RoleCDN, Status: 503}}}, // never recovers: a typed error
	}
	type item struct {
		uri       id.ContentURI
		encrypted *event.EncryptedFileInfo // every fourth item is an encrypted attachment
		limit     int64                    // a size limit below the media's size: ErrTooLarge
		sum       [32]byte                 // of the plaintext
		dead      bool
	}
	items := make([]item, n)
	for i := range items {
		b := faults[rng.IntN(len(faults))]
		redirect, _ := testserver.ProfileBehavior(testserver.ProfileMediaRepo)
		if b.Redirect == 0 {
			b.Redirect = redirect.Redirect
		}
		b.V3Redirect, b.V1Redirect, b.CDNRejectsAuth = redirect.V3Redirect, redirect.V1Redirect, true
		data := content(1024+rng.IntN(32<<10), byte(i))
		it := item{sum: sha256.Sum256(data), dead: len(b.Faults) == 1 && b.Faults[0].Count == 0}
		switch i % 10 {
		case 0, 4, 8:
			it.encrypted = addEncrypted(srv, data, testserver.MediaOptions{Behavior: &b})
		case 5:
			it.uri, it.limit, it.dead = srv.AddMedia(data, testserver.MediaOptions{Behavior: &b}), int64(len(data)-1), true
		default:
			it.uri = srv.AddMedia(data, testserver.MediaOptions{Behavior: &b})
		}
		items[i] = it
	}
	tr := mediaclient.NewTransport()
	c, err := mediaclient.New(mediaclient.Options{
		HomeserverURL: srv.URL, AccessToken: srv.AccessToken, Transport: tr,
		RetryWaitMin: time.Millisecond, RetryWaitMax: 2 * time.Millisecond, MaxRetryAfter: 5 * time.Millisecond,
		// Long enough that a read starved of CPU under -race is not taken for a stall, short enough
		// that the stalled items end quickly.
		StallTimeout: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	next := make(chan int)
	var mu sync.Mutex
	okCount, failed := 0, 0
	for range parallel {
		wg.Go(func() {
			for i := range next {
				it := items[i]
				var m *mediaclient.Media
				var err error
				switch {
				case it.encrypted != nil:
					m, err = c.DownloadEncrypted(t.Context(), it.encrypted)
				default:
					m, err = c.Download(t.Context(), it.uri, mediaclient.DownloadOptions{MaxSize: it.limit})
				}
				got, err := readAll(t, m, err)
				mu.Lock()
				switch {
				case err == nil && it.dead:
					t.Errorf("download %d: succeeded; want a typed error", i)
				case err == nil && sha256.Sum256(got) == it.sum:
					okCount++
				case err == nil:
					t.Errorf("download %d: wrong bytes", i)
				case !typed(err):
					t.Errorf("download %d: untyped error %v", i, err)
				case !items[i].dead:
					t.Errorf("download %d: %v", i, err)
				default:
					failed++
				}
				mu.Unlock()
			}
		})
	}
	for i := range items {
		next <- i
	}
	close(next)
	wg.Wait()
	for _, r := range srv.Requests() {
		if r.Origin != srv.URL && r.HasCredentials() {
			t.Fatalf("credentials at %s", r.Origin)
		}
	}
	t.Logf("%d downloads: %d exact, %d typed errors, %d requests", n, okCount, failed, len(srv.Requests()))
	tr.CloseIdleConnections()
	srv.Close()
	if fds := openFDs(t); fds > fdsBefore+2 {
		t.Errorf("open file descriptors: %d before, %d after", fdsBefore, fds)
	}
}

// typed reports whether err is an *Error with a cause a caller can branch on.
func typed(err error) bool {
	var e *mediaclient.Error
	var he mautrix.HTTPError
	return errors.As(err, &e) && (errors.As(err, &he) || errors.Is(err, mediaclient.ErrTruncated) || errors.Is(err, mediaclient.ErrTooLarge) ||
		errors.Is(err, mediaclient.ErrRedirectRefused) || errors.Is(err, mediaclient.ErrTooManyRedirects))
}

func openFDs(t *testing.T) int {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd")
	}
	return len(entries)
}
