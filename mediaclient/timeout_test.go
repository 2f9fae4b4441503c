package mediaclient_test

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/mxfetch/mxfetch/mediaclient"
	"github.com/mxfetch/mxfetch/testserver"
)

// Millisecond timeouts: the stalls below last until the client gives up or the server closes, so a
// test that waited for anything else would hang, not pass.
const (
	// stallWindow is the stall and header timeout of tests that count requests: short, but long
	// enough that a read starved of CPU (the race detector, parallel test binaries on 2 cores) is not
	// taken for a stall and does not add a request.
	stallWindow = 250 * time.Millisecond
	shortStall  = stallWindow
	// longEnough is a stall window no loaded test machine misses by accident.
	longEnough = 2 * time.Second
)

// TestStallBeforeHeaders: a hop that sends no headers is a stall, retried like a connection error.
func TestStallBeforeHeaders(t *testing.T) {
	for _, tc := range []struct {
		name  string
		count int
		ok    bool
	}{
		{"once", 1, true},
		{"forever", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := testserver.Behavior{V3Redirect: testserver.Always, Faults: []testserver.Fault{{At: testserver.RoleCDN, Count: tc.count, Stall: testserver.StallHeaders}}}
			srv, c := setup(t, testserver.Config{Behavior: &b}, mediaclient.Options{API: mediaclient.APIV3, HeaderTimeout: shortStall, MaxRetries: 2})
			want := content(10_000, 1)
			uri := srv.AddMedia(want, testserver.MediaOptions{})
			got, _, err := fetch(t, c, uri)
			if tc.ok {
				if err != nil || !sameBytes(got, want) {
					t.Fatalf("got %d bytes, %v", len(got), err)
				}
				if n := len(srv.RequestsTo(testserver.OriginCDN)); n != 2 {
					t.Errorf("CDN asked %d times; want the stalled request and one retry", n)
				}
				return
			}
			if !errors.Is(err, mediaclient.ErrStalled) || errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("err = %v; want ErrStalled", err)
			}
			// The first try and two retries; then, since the target kept failing on v3, the plain
			// request without allow_redirect (which this server answers with a redirect all the same)
			// and its two retries.
			if n := len(srv.RequestsTo(testserver.OriginCDN)); n != 6 {
				t.Errorf("CDN asked %d times; want 6", n)
			}
			var me *mediaclient.Error
			if !errors.As(err, &me) || len(me.Hops) == 0 || !errors.Is(me.Hops[len(me.Hops)-1].Err, mediaclient.ErrStalled) {
				t.Errorf("the last hop does not name the stall: %+v", me)
			}
		})
	}
}

// TestStallMidBody: a body that stops delivering is resumed through a fresh chain to the exact
// bytes; one that stalls every time ends in ErrStalled after the resumes.
func TestStallMidBody(t *testing.T) {
	want := content(100_000, 2)
	for _, tc := range []struct {
		name  string
		b     testserver.Behavior
		count int
	}{
		{"CDN stalls once", testserver.Behavior{V3Redirect: testserver.Always}, 1},
		{"CDN stalls once, no validators", testserver.Behavior{V3Redirect: testserver.Always, CDN: testserver.Serving{NoValidators: true}}, 1},
		{"CDN stalls every time", testserver.Behavior{V3Redirect: testserver.Always}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.b
			// Each answer stalls after 20,000 bytes: four answers (the first and three resumes) fall
			// short of the media when every one stalls.
			b.Faults = []testserver.Fault{{At: testserver.RoleCDN, Count: tc.count, Stall: testserver.StallBody, StallAfter: 20_000}}
			srv, c := setup(t, testserver.Config{Behavior: &b}, mediaclient.Options{API: mediaclient.APIV3, StallTimeout: shortStall})
			uri := srv.AddMedia(want, testserver.MediaOptions{})
			got, m, err := fetch(t, c, uri)
			if tc.count == 0 {
				if !errors.Is(err, mediaclient.ErrStalled) || !errors.Is(err, mediaclient.ErrTruncated) {
					t.Fatalf("err = %v; want ErrStalled", err)
				}
				if !sameBytes(got, want[:len(got)]) {
					t.Error("the bytes before the stall are not the media's")
				}
				if n := len(srv.RequestsTo(testserver.OriginCDN)); n != 4 {
					t.Errorf("CDN asked %d times; want 1 + 3 resumes", n)
				}
				return
			}
			if err != nil || !sameBytes(got, want) {
				t.Fatalf("got %d bytes, %v", len(got), err)
			}
			resumed := false
			for _, h := range m.Hops() {
				resumed = resumed || h.Step == mediaclient.StepResume
			}
			cdn := srv.RequestsTo(testserver.OriginCDN)
			if !resumed || len(cdn) != 2 || cdn[1].Header.Get("Range") != "bytes=20000-" {
				t.Errorf("resumed %v, CDN requests %d; want one resume from 20000", resumed, len(cdn))
			}
			if credentialsAt(srv, testserver.OriginCDN) != 0 {
				t.Error("token at the CDN")
			}
		})
	}
}

// TestSlowButSteady: a body that drips slowly but is never idle for the stall window is not cut off.
func TestSlowButSteady(t *testing.T) {
	want := content(2_000, 3)
	b := testserver.Behavior{Faults: []testserver.Fault{{Drip: 100, DripEvery: 5 * time.Millisecond}}}
	srv, c := setup(t, testserver.Config{Behavior: &b}, mediaclient.Options{API: mediaclient.APIV3, StallTimeout: longEnough})
	uri := srv.AddMedia(want, testserver.MediaOptions{})
	got, m, err := fetch(t, c, uri)
	if err != nil || !sameBytes(got, want) || len(m.Hops()) != 1 {
		t.Fatalf("got %d bytes, %v, %d hops; want the media in one piece", len(got), err, len(m.Hops()))
	}
}

// TestLowSpeedLimit: a body slower than LowSpeedLimit over LowSpeedTime is given up on.
func TestLowSpeedLimit(t *testing.T) {
	b := testserver.Behavior{Faults: []testserver.Fault{{Drip: 10, DripEvery: 5 * time.Millisecond}}}
	srv, c := setup(t, testserver.Config{Behavior: &b}, mediaclient.Options{API: mediaclient.APIV3, LowSpeedLimit: 1 << 20, LowSpeedTime: 20 * time.Millisecond, DisableResume: true})
	uri := srv.AddMedia(content(10_000, 4), testserver.MediaOptions{})
	if _, _, err := fetch(t, c, uri); !errors.Is(err, mediaclient.ErrTooSlow) {
		t.Fatalf("err = %v; want ErrTooSlow", err)
	}
}

// TestOverallTimeout: Options.Timeout bounds the whole call, the body included.
func TestOverallTimeout(t *testing.T) {
	b := testserver.Behavior{Faults: []testserver.Fault{{Stall: testserver.StallBody, StallAfter: 100}}}
	srv, c := setup(t, testserver.Config{Behavior: &b}, mediaclient.Options{API: mediaclient.APIV3, Timeout: shortStall, StallTimeout: -1})
	uri := srv.AddMedia(content(10_000, 5), testserver.MediaOptions{})
	got, _, err := fetch(t, c, uri)
	if !errors.Is(err, context.DeadlineExceeded) || len(got) != 100 {
		t.Fatalf("got %d bytes, %v; want the deadline after 100 bytes", len(got), err)
	}
}

// TestConnectTimeout: an origin that accepts the connection but never completes the TLS handshake is
// a stall of the connection, retried, then ErrStalled.
func TestConnectTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan struct{})
	defer close(done)
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { <-done; conn.Close() }() // holds the connection, says nothing
		}
	}()
	tr := mediaclient.NewTransport()
	tr.TLSClientConfig = &tls.Config{}
	defer tr.CloseIdleConnections()
	c, err := mediaclient.New(mediaclient.Options{HomeserverURL: "https://" + ln.Addr().String(), API: mediaclient.APIV3,
		ConnectTimeout: shortStall, MaxRetries: 1, RetryWaitMin: time.Millisecond, RetryWaitMax: time.Millisecond, Transport: tr})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Download(t.Context(), id.ContentURI{Homeserver: "example.org", FileID: "x"})
	if !errors.Is(err, mediaclient.ErrStalled) {
		t.Fatalf("err = %v; want ErrStalled (no connection)", err)
	}
}

// TestWrapKeepsMautrixTimeout: the wrapper turns the mautrix client's whole-request timeout into the
// stall timeout, so a stalled body is resumed rather than hanging or being cut at a total.
func TestWrapKeepsMautrixTimeout(t *testing.T) {
	want := content(50_000, 6)
	b := testserver.Behavior{V1Redirect: testserver.Always, Faults: []testserver.Fault{{At: testserver.RoleCDN, Count: 1, Stall: testserver.StallBody, StallAfter: 1000}}}
	srv := testserver.New(t, testserver.Config{Behavior: &b})
	uri := srv.AddMedia(want, testserver.MediaOptions{})
	cli, err := mautrix.NewClient(srv.URL, "", srv.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	cli.Client.Timeout = shortStall
	w, err := mediaclient.Wrap(cli, mediaclient.Options{API: mediaclient.APIV1})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := w.DownloadBytes(t.Context(), uri); err != nil || !sameBytes(got, want) {
		t.Fatalf("got %d bytes, %v", len(got), err)
	}
	if n := len(srv.RequestsTo(testserver.OriginCDN)); n != 2 {
		t.Errorf("CDN asked %d times; want the stalled request and one resume", n)
	}
}
