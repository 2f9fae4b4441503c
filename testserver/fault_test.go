package testserver_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"testing"
	"time"

	"github.com/mxfetch/mxfetch/internal/leakcheck"

	"github.com/mxfetch/mxfetch/testserver"
)

func TestHostileRanges(t *testing.T) {
	const size = 10000
	content := testContent(size)
	junk := bytes.Repeat([]byte{0xee}, testserver.RangeJunk)
	for _, tc := range []struct {
		kind         testserver.RangeFault
		rng          string // "" sends no Range
		contentRange string
		body         []byte
	}{
		{testserver.RangeUnasked, "", "bytes 0-4999/10000", content[:5000]},
		{testserver.RangeWrongStart, "bytes=4000-", "bytes 2000-9999/10000", content[2000:]},
		{testserver.RangeWrongStart, "bytes=0-", "bytes 1-9999/10000", content[1:]},
		{testserver.RangeTooLong, "bytes=4000-", "bytes 4000-11023/10000", append(content[4000:size:size], junk...)},
		{testserver.RangeWrongTotal, "bytes=4000-", "bytes 4000-11023/11024", append(content[4000:size:size], junk...)},
		{testserver.RangeBadTotal, "bytes=4000-", "bytes 4000-9999/x", content[4000:]},
		{testserver.RangeStarTotal, "bytes=4000-", "bytes 4000-9999/*", content[4000:]},
	} {
		srv := testserver.New(t, testserver.Config{Behavior: &testserver.Behavior{Faults: []testserver.Fault{{Count: 1, Range: tc.kind}}}})
		uri := srv.AddMedia(content, testserver.MediaOptions{})
		// A request the fault cannot answer does not use it up.
		other := []string{"Range", "bytes=4000-"}
		if tc.rng != "" {
			other = nil
		}
		if a := get(t, srv, v3(srv, uri, ""), other...); a.status != 200 && a.status != 206 || a.err != nil || a.header.Get("Content-Range") == tc.contentRange {
			t.Errorf("%v: a request it cannot answer got %d %q", tc.kind, a.status, a.header.Get("Content-Range"))
		}
		var h []string
		if tc.rng != "" {
			h = []string{"Range", tc.rng}
		}
		a := get(t, srv, v3(srv, uri, ""), h...)
		if a.status != 206 || a.err != nil || a.header.Get("Content-Range") != tc.contentRange || !bytes.Equal(a.body, tc.body) {
			t.Errorf("%v %q: got %d %q, %d bytes (%v); want 206 %q, %d bytes", tc.kind, tc.rng, a.status, a.header.Get("Content-Range"), len(a.body), a.err, tc.contentRange, len(tc.body))
		}
		if a := get(t, srv, v3(srv, uri, ""), h...); a.header.Get("Content-Range") == tc.contentRange {
			t.Errorf("%v: fired twice with Count 1", tc.kind)
		}
	}
}

// TestFaultsWhereBytesAreServed shows that a body fault waits for the origin that serves bytes: a
// homeserver that redirects does not use it up.
func TestFaultsWhereBytesAreServed(t *testing.T) {
	content := testContent(10000)
	truncated := func(a answer) bool {
		return a.status == 200 && len(a.body) == 1000 && errors.Is(a.err, io.ErrUnexpectedEOF)
	}
	whole := func(a answer) bool { return a.status == 200 && a.err == nil && bytes.Equal(a.body, content) }

	srv := testserver.New(t, testserver.Config{Behavior: &testserver.Behavior{V3Redirect: testserver.WhenAsked,
		Faults: []testserver.Fault{{Count: 1, Truncate: true, TruncateAt: 1000}}}})
	uri := srv.AddMedia(content, testserver.MediaOptions{})
	r := get(t, srv, v3(srv, uri, "?allow_redirect=true"))
	if r.status != 307 {
		t.Fatalf("redirect: got %d", r.status)
	}
	if a := get(t, srv, r.header.Get("Location")); !whole(a) {
		t.Errorf("CDN with a homeserver fault: got %d, %d bytes, %v; want the whole body", a.status, len(a.body), a.err)
	}
	if a := get(t, srv, v3(srv, uri, "")); !truncated(a) {
		t.Errorf("homeserver serving itself after a redirect: got %d, %d bytes, %v; want the fault", a.status, len(a.body), a.err)
	}
	if a := get(t, srv, v3(srv, uri, "")); !whole(a) {
		t.Errorf("after the fault: got %d, %d bytes", a.status, len(a.body))
	}

	srv = testserver.New(t, testserver.Config{Behavior: &testserver.Behavior{V3Redirect: testserver.Always,
		Faults: []testserver.Fault{{At: testserver.RoleAny, Count: 1, Truncate: true, TruncateAt: 1000}}}})
	uri = srv.AddMedia(content, testserver.MediaOptions{})
	for i, want := range []func(answer) bool{truncated, whole} {
		r := get(t, srv, v3(srv, uri, ""))
		if a := get(t, srv, r.header.Get("Location")); r.status != 307 || !want(a) {
			t.Errorf("RoleAny, download %d: redirect %d, CDN %d, %d bytes, %v", i, r.status, a.status, len(a.body), a.err)
		}
	}

	// A fault that replaces the answer fires on a redirect too.
	srv = testserver.New(t, testserver.Config{Behavior: &testserver.Behavior{V3Redirect: testserver.Always,
		Faults: []testserver.Fault{{Count: 1, Status: 503}}}})
	uri = srv.AddMedia(content, testserver.MediaOptions{})
	if a, b := get(t, srv, v3(srv, uri, "")), get(t, srv, v3(srv, uri, "")); a.status != 503 || b.status != 307 {
		t.Errorf("status fault on a redirecting homeserver: got %d then %d; want 503 then 307", a.status, b.status)
	}
}

// open sends a GET with ctx and returns the response without reading its body.
func open(ctx context.Context, t *testing.T, c *http.Client, rawURL string) (*http.Response, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c.Do(req)
}

func TestStalls(t *testing.T) {
	const size = 10000
	content := testContent(size)
	srv := testserver.New(t, testserver.Config{Profile: testserver.ProfileSynapse})
	c := srv.Client()
	defer c.CloseIdleConnections()
	add := func(f testserver.Fault) string {
		f.Count = 1
		uri := srv.AddMedia(content, testserver.MediaOptions{Behavior: &testserver.Behavior{Faults: []testserver.Fault{f}}})
		return v3(srv, uri, "")
	}
	// fetch downloads u within limit and reports what arrived and how long it took.
	fetch := func(u string, limit time.Duration) (status int, body []byte, elapsed time.Duration, err error) {
		ctx, cancel := context.WithTimeout(t.Context(), limit)
		defer cancel()
		start := time.Now()
		resp, err := open(ctx, t, c, u)
		if err != nil {
			return 0, nil, time.Since(start), err
		}
		defer resp.Body.Close()
		body, err = io.ReadAll(resp.Body)
		return resp.StatusCode, body, time.Since(start), err
	}
	const forever, long = 50 * time.Millisecond, 10 * time.Second

	t.Run("before headers, forever", func(t *testing.T) {
		u := add(testserver.Fault{Stall: testserver.StallHeaders})
		if status, _, _, err := fetch(u, forever); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("got %d, %v; want the deadline while waiting for headers", status, err)
		}
		if status, body, _, err := fetch(u, long); status != 200 || err != nil || !bytes.Equal(body, content) {
			t.Errorf("after the stall: got %d, %d bytes, %v", status, len(body), err)
		}
	})
	t.Run("before headers, a while", func(t *testing.T) {
		u := add(testserver.Fault{Stall: testserver.StallHeaders, StallFor: 30 * time.Millisecond})
		if status, body, elapsed, err := fetch(u, long); status != 200 || err != nil || !bytes.Equal(body, content) || elapsed < 30*time.Millisecond {
			t.Errorf("got %d, %d bytes, %v after %v; want the whole body after at least 30ms", status, len(body), err, elapsed)
		}
	})
	for _, after := range []int64{0, 1000} {
		t.Run(fmt.Sprintf("after %d body bytes, forever", after), func(t *testing.T) {
			u := add(testserver.Fault{Stall: testserver.StallBody, StallAfter: after})
			ctx, cancel := context.WithTimeout(t.Context(), forever)
			defer cancel()
			resp, err := open(ctx, t, c, u)
			if err != nil {
				t.Fatalf("headers: %v", err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if resp.StatusCode != 200 || resp.ContentLength != size || int64(len(body)) != after || !bytes.Equal(body, content[:after]) || !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("after %d: got %d, Content-Length %d, %d bytes, %v; want 200 with the full length, %d bytes, then the deadline",
					after, resp.StatusCode, resp.ContentLength, len(body), err, after)
			}
		})
	}
	t.Run("in the body, a while", func(t *testing.T) {
		u := add(testserver.Fault{Stall: testserver.StallBody, StallAfter: 1000, StallFor: 30 * time.Millisecond})
		if status, body, elapsed, err := fetch(u, long); status != 200 || err != nil || !bytes.Equal(body, content) || elapsed < 30*time.Millisecond {
			t.Errorf("got %d, %d bytes, %v after %v; want the whole body after at least 30ms", status, len(body), err, elapsed)
		}
	})
	t.Run("drip", func(t *testing.T) {
		u := add(testserver.Fault{Drip: 1000, DripEvery: 3 * time.Millisecond})
		if status, body, elapsed, err := fetch(u, long); status != 200 || err != nil || !bytes.Equal(body, content) || elapsed < 27*time.Millisecond {
			t.Errorf("got %d, %d bytes, %v after %v; want the whole body after at least 9 pauses of 3ms", status, len(body), err, elapsed)
		}
	})
	t.Run("combined with a cut", func(t *testing.T) {
		u := add(testserver.Fault{Drip: 300, DripEvery: time.Millisecond, Truncate: true, TruncateAt: 1000})
		if status, body, _, err := fetch(u, long); status != 200 || !errors.Is(err, io.ErrUnexpectedEOF) || !bytes.Equal(body, content[:1000]) {
			t.Errorf("got %d, %d bytes, %v; want 1000 bytes, then unexpected EOF", status, len(body), err)
		}
	})
}

// TestCloseEndsStalls shows that Close neither waits for a stall nor leaves a goroutine behind.
func TestCloseEndsStalls(t *testing.T) {
	leakcheck.Check(t)
	srv, err := testserver.Start(testserver.Config{Profile: testserver.ProfileSynapse})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	content := testContent(10000)
	inBody := srv.AddMedia(content, testserver.MediaOptions{Behavior: &testserver.Behavior{Faults: []testserver.Fault{{Stall: testserver.StallBody, StallAfter: 1000}}}})
	noHeaders := srv.AddMedia(content, testserver.MediaOptions{Behavior: &testserver.Behavior{Faults: []testserver.Fault{{Stall: testserver.StallHeaders}}}})
	c := srv.Client()
	defer c.CloseIdleConnections()

	resp, err := open(t.Context(), t, c, v3(srv, inBody, ""))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if _, err := io.ReadFull(resp.Body, make([]byte, 1000)); err != nil {
		t.Fatalf("the bytes before the stall: %v", err)
	}
	sent := make(chan struct{})
	headersErr := make(chan error, 1)
	go func() {
		ctx := httptrace.WithClientTrace(t.Context(), &httptrace.ClientTrace{WroteRequest: func(httptrace.WroteRequestInfo) { close(sent) }})
		resp, err := open(ctx, t, c, v3(srv, noHeaders, ""))
		if err == nil {
			resp.Body.Close()
		}
		headersErr <- err
	}()
	<-sent

	closed := make(chan struct{})
	go func() {
		srv.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close waits for a stalled answer")
	}
	if n, err := io.Copy(io.Discard, resp.Body); err == nil {
		t.Errorf("stalled body: %d more bytes and no error after Close", n)
	}
	if err := <-headersErr; err == nil {
		t.Error("stalled headers: no error after Close")
	}
}
