package mediaclient_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"

	"github.com/mxfetch/mxfetch/mediaclient"
	"github.com/mxfetch/mxfetch/testserver"
)

func TestParameterRejected(t *testing.T) {
	for _, api := range []mediaclient.API{mediaclient.APIV3, mediaclient.APIV1} {
		t.Run(string(api), func(t *testing.T) {
			srv, c := setup(t, testserver.Config{Profile: testserver.ProfileStrict}, mediaclient.Options{API: api})
			uri := srv.AddMedia([]byte("strict"), testserver.MediaOptions{})
			got, m := mustFetch(t, c, uri)
			if string(got) != "strict" {
				t.Errorf("body %q; want %q", got, "strict")
			}
			if fallbacks(m) != "parameter rejected" {
				t.Errorf("fallback %q; want %q", fallbacks(m), "parameter rejected")
			}
			reqs := srv.Requests()
			if len(reqs) != 2 {
				t.Fatalf("%d requests; want 2, the second without the parameter", len(reqs))
			}
			if !reqs[0].Query().Has("allow_redirect") {
				t.Errorf("first request %s?%s; want allow_redirect", reqs[0].Path, reqs[0].RawQuery)
			}
			if reqs[1].Query().Has("allow_redirect") {
				t.Errorf("second request %s?%s; want no allow_redirect", reqs[1].Path, reqs[1].RawQuery)
			}
			srv.ResetLog()
			if _, m, err := fetch(t, c, uri); err != nil || fallbacks(m) != "" {
				t.Fatalf("second download: %v, fallback %q", err, fallbacks(m))
			}
			if reqs := srv.Requests(); len(reqs) != 1 || reqs[0].Query().Has("allow_redirect") {
				t.Errorf("second download: %d requests, first with allow_redirect=%v; want 1 without", len(reqs), reqs[0].Query().Has("allow_redirect"))
			}
			u, _ := c.DownloadURL(t.Context(), uri)
			if strings.Contains(u, "allow_redirect") {
				t.Errorf("URL builder still sends the parameter: %s", u)
			}
		})
	}
}

// TestRejectionNotRememberedForOtherErrors: a 400 M_UNKNOWN that stays without the parameter (here a
// bad non-boolean is not the cause) is not taken as a rejection of allow_redirect.
func TestRejectionNotRememberedForOtherErrors(t *testing.T) {
	srv, c := setup(t, testserver.Config{Behavior: &testserver.Behavior{Faults: []testserver.Fault{{Count: 2, Status: 400}}}}, mediaclient.Options{API: mediaclient.APIV3})
	uri := srv.AddMedia([]byte("x"), testserver.MediaOptions{})
	if _, _, err := fetch(t, c, uri); !errors.Is(err, mautrix.MUnknown.WithMessage("Injected fault")) {
		t.Fatalf("err = %v; want the server's M_UNKNOWN", err)
	}
	srv.ResetLog()
	if _, _, err := fetch(t, c, uri); err != nil {
		t.Fatal(err)
	}
	if !srv.Requests()[0].Query().Has("allow_redirect") {
		t.Error("parameter dropped although the server never rejected it")
	}
}

func TestDisableRedirectParam(t *testing.T) {
	srv, c := setup(t, testserver.Config{Profile: testserver.ProfileMediaRepo}, mediaclient.Options{API: mediaclient.APIV3, DisableRedirectParam: true})
	uri := srv.AddMedia([]byte("direct"), testserver.MediaOptions{})
	got, m := mustFetch(t, c, uri)
	if string(got) != "direct" {
		t.Errorf("body %q; want %q", got, "direct")
	}
	if len(m.Hops()) != 1 || m.Hops()[0].Status != 200 {
		t.Errorf("hops %v; want one 200", m.Hops())
	}
	if srv.Requests()[0].Query().Has("allow_redirect") {
		t.Error("allow_redirect sent")
	}
	// A v1 server that redirects anyway is still followed.
	c1 := newClient(t, srv, mediaclient.Options{API: mediaclient.APIV1, DisableRedirectParam: true})
	got, m = mustFetch(t, c1, uri)
	if string(got) != "direct" {
		t.Errorf("v1: body %q; want %q", got, "direct")
	}
	if len(m.Hops()) != 2 {
		t.Errorf("v1: hops %v; want the redirect followed", m.Hops())
	}
}

func TestV1FallsBackToV3(t *testing.T) {
	// legacy lists no v1.11 in /versions, so auto picks v3 straight away.
	srv, c := setup(t, testserver.Config{Profile: testserver.ProfileLegacy}, mediaclient.Options{})
	uri := srv.AddMedia([]byte("old server"), testserver.MediaOptions{})
	_, m := mustFetch(t, c, uri)
	if m.API != mediaclient.APIV3 {
		t.Errorf("auto on legacy: API %s; want v3", m.API)
	}
	if fallbacks(m) != "" {
		t.Errorf("auto on legacy: fallback %q; want none", fallbacks(m))
	}

	// This server lists v1.11 in /versions, then loses its v1 media endpoints.
	srv, c = setup(t, testserver.Config{Profile: testserver.ProfileSynapse}, mediaclient.Options{})
	uri = srv.AddMedia([]byte("no v1"), testserver.MediaOptions{})
	if u, err := c.DownloadURL(t.Context(), uri); err != nil || !strings.Contains(u, "/_matrix/client/v1/media/") {
		t.Fatalf("URL before the change: %s %v", u, err)
	}
	srv.SetBehavior(testserver.Behavior{NoV1: true})
	srv.ResetLog()
	got, m := mustFetch(t, c, uri)
	if string(got) != "no v1" {
		t.Errorf("body %q; want %q", got, "no v1")
	}
	if m.API != mediaclient.APIV3 {
		t.Errorf("API %s; want v3", m.API)
	}
	if fallbacks(m) != "v1 unrecognized" {
		t.Errorf("fallback %q; want %q", fallbacks(m), "v1 unrecognized")
	}
	if !strings.HasPrefix(srv.Requests()[0].Path, "/_matrix/client/v1/media/download/") || !strings.HasPrefix(srv.Requests()[1].Path, "/_matrix/media/v3/download/") {
		t.Errorf("paths: %s then %s", srv.Requests()[0].Path, srv.Requests()[1].Path)
	}
	srv.ResetLog()
	if _, m := mustFetch(t, c, uri); fallbacks(m) != "" {
		t.Errorf("second download: fallback %q; want none", fallbacks(m))
	}
	if path := srv.Requests()[0].Path; !strings.HasPrefix(path, "/_matrix/media/v3/") {
		t.Errorf("second download asked %s first; want v3 straight away", path)
	}

	// An explicit v1 never falls back.
	c1 := newClient(t, srv, mediaclient.Options{API: mediaclient.APIV1})
	if _, _, err := fetch(t, c1, uri); !errors.Is(err, mautrix.MUnrecognized) {
		t.Errorf("explicit v1: err = %v; want M_UNRECOGNIZED", err)
	}
}

func TestAutoPicksV1(t *testing.T) {
	srv, c := setup(t, testserver.Config{Profile: testserver.ProfileSynapse}, mediaclient.Options{})
	uri := srv.AddMedia([]byte("v1"), testserver.MediaOptions{})
	if _, m, err := fetch(t, c, uri); err != nil || m.API != mediaclient.APIV1 {
		t.Fatalf("%v, API %s; want v1", err, m.API)
	}
	// Without a token, auto is v3 and /versions is not even asked.
	srv.ResetLog()
	c = newClient(t, srv, mediaclient.Options{AccessToken: noToken})
	if _, m := mustFetch(t, c, uri); m.API != mediaclient.APIV3 {
		t.Errorf("without a token: API %s; want v3", m.API)
	}
	if n := len(srv.Requests()); n != 1 {
		t.Errorf("without a token: %d requests; want 1", n)
	}
}

func TestRetries(t *testing.T) {
	t.Run("503 once", func(t *testing.T) {
		srv, c := setup(t, testserver.Config{Behavior: &testserver.Behavior{Faults: []testserver.Fault{{Count: 1, Status: 503}}}}, mediaclient.Options{API: mediaclient.APIV3})
		uri := srv.AddMedia([]byte("retried"), testserver.MediaOptions{})
		if got, _ := mustFetch(t, c, uri); string(got) != "retried" {
			t.Errorf("body %q; want %q", got, "retried")
		}
		if n := len(srv.Requests()); n != 2 {
			t.Errorf("%d requests; want the 503 and one retry", n)
		}
	})
	t.Run("CDN 503 restarts at the homeserver", func(t *testing.T) {
		srv, c := setup(t, testserver.Config{Behavior: &testserver.Behavior{V3Redirect: testserver.Always, Faults: []testserver.Fault{{At: testserver.RoleCDN, Count: 1, Status: 503}}}}, mediaclient.Options{API: mediaclient.APIV3})
		uri := srv.AddMedia([]byte("retried"), testserver.MediaOptions{})
		if got, _, err := fetch(t, c, uri); err != nil || string(got) != "retried" {
			t.Fatal(got, err)
		}
		if h, cdn := len(srv.RequestsTo(testserver.OriginHomeserver)), len(srv.RequestsTo(testserver.OriginCDN)); h != 2 || cdn != 2 {
			t.Errorf("homeserver %d, CDN %d requests; want 2 and 2", h, cdn)
		}
	})
	t.Run("501 is final", func(t *testing.T) {
		srv, c := setup(t, testserver.Config{Behavior: &testserver.Behavior{Faults: []testserver.Fault{{Status: 501}}}}, mediaclient.Options{API: mediaclient.APIV3})
		uri := srv.AddMedia([]byte("x"), testserver.MediaOptions{})
		if _, _, err := fetch(t, c, uri); httpStatus(err) != 501 {
			t.Errorf("err = %v; want the 501", err)
		}
		if n := len(srv.Requests()); n != 1 {
			t.Errorf("%d requests; want 1", n)
		}
	})
	t.Run("gives up", func(t *testing.T) {
		srv, c := setup(t, testserver.Config{Behavior: &testserver.Behavior{Faults: []testserver.Fault{{Status: 502}}}}, mediaclient.Options{API: mediaclient.APIV3, MaxRetries: 2})
		uri := srv.AddMedia([]byte("x"), testserver.MediaOptions{})
		if _, _, err := fetch(t, c, uri); httpStatus(err) != 502 {
			t.Errorf("err = %v; want the 502", err)
		}
		if n := len(srv.Requests()); n != 3 {
			t.Errorf("%d requests; want 3", n)
		}
	})
	t.Run("connection reset", func(t *testing.T) {
		srv, c := setup(t, testserver.Config{Behavior: &testserver.Behavior{V3Redirect: testserver.Always, Faults: []testserver.Fault{{At: testserver.RoleCDN, Count: 1, Reset: true}}}}, mediaclient.Options{API: mediaclient.APIV3})
		uri := srv.AddMedia([]byte("after reset"), testserver.MediaOptions{})
		if got, _, err := fetch(t, c, uri); err != nil || string(got) != "after reset" {
			t.Fatal(got, err)
		}
	})
	t.Run("429 Retry-After 1", func(t *testing.T) {
		srv, c := setup(t, testserver.Config{Behavior: &testserver.Behavior{Faults: []testserver.Fault{{Count: 1, Status: 429, RetryAfter: "1"}}}}, mediaclient.Options{API: mediaclient.APIV3})
		uri := srv.AddMedia([]byte("limited"), testserver.MediaOptions{})
		if got, _ := mustFetch(t, c, uri); string(got) != "limited" {
			t.Errorf("body %q; want %q", got, "limited")
		}
		reqs := srv.Requests()
		if len(reqs) != 2 {
			t.Fatalf("%d requests; want the 429 and one retry", len(reqs))
		}
		if gap := reqs[1].Time.Sub(reqs[0].Time); gap < 900*time.Millisecond {
			t.Errorf("retried after %v; want the second Retry-After asked for", gap)
		}
	})
	t.Run("retry_after_ms capped", func(t *testing.T) {
		// The server asks for an hour; the client must wait the cap, and a client that does not
		// cap fails at the deadline instead of hanging.
		const limit = 50 * time.Millisecond
		srv, c := setup(t, testserver.Config{Behavior: &testserver.Behavior{Faults: []testserver.Fault{{Count: 1, Status: 429, RetryAfterMS: 3_600_000}}}},
			mediaclient.Options{API: mediaclient.APIV3, MaxRetryAfter: limit})
		uri := srv.AddMedia([]byte("capped"), testserver.MediaOptions{})
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		m, err := c.Download(ctx, uri)
		if err != nil {
			t.Fatalf("download: %v (the wait was not capped at %v)", err, limit)
		}
		got, err := io.ReadAll(m)
		m.Close()
		if err != nil || string(got) != "capped" {
			t.Fatalf("body %q, %v; want \"capped\"", got, err)
		}
		reqs := srv.Requests()
		if len(reqs) != 2 {
			t.Fatalf("%d requests; want the 429 and one retry", len(reqs))
		}
		// The gap between the requests holds the wait and two exchanges on loopback.
		if gap := reqs[1].Time.Sub(reqs[0].Time); gap < limit || gap > limit+time.Second {
			t.Errorf("retried after %v; want the cap, %v", gap, limit)
		}
	})
	t.Run("Retry-After 3600 and a cancelled context", func(t *testing.T) {
		srv := testserver.New(t, testserver.Config{Behavior: &testserver.Behavior{Faults: []testserver.Fault{{Status: 429, RetryAfter: "3600"}}}})
		ctx, cancel := context.WithCancel(t.Context())
		// The transport cancels the call as soon as the 429 has arrived: the client is then waiting
		// out the capped Retry-After and must return at once.
		tr := &hookTransport{base: mediaclient.NewTransport(), after: func(resp *http.Response) {
			if resp.StatusCode == 429 {
				cancel()
			}
		}}
		c := newClient(t, srv, mediaclient.Options{API: mediaclient.APIV3, Transport: tr, RetryWaitMin: time.Hour, RetryWaitMax: time.Hour})
		uri := srv.AddMedia([]byte("x"), testserver.MediaOptions{})
		_, err := c.Download(ctx, uri)
		if !errors.Is(err, context.Canceled) || len(srv.Requests()) != 1 {
			t.Errorf("err = %v after %d requests; want context.Canceled after 1", err, len(srv.Requests()))
		}
	})
}

// hookTransport calls after with every response; it observes and changes nothing.
type hookTransport struct {
	base  http.RoundTripper
	after func(*http.Response)
}

func (h *hookTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := h.base.RoundTrip(req)
	if err == nil {
		h.after(resp)
	}
	return resp, err
}

// TestStaleCDNURL: an expired signed URL (403 at the CDN) is re-resolved through the homeserver
// once; a second stale answer is the error.
func TestStaleCDNURL(t *testing.T) {
	b := testserver.Behavior{V1Redirect: testserver.Always, ExpiredURLs: 1}
	srv, c := setup(t, testserver.Config{Behavior: &b}, mediaclient.Options{API: mediaclient.APIV1})
	uri := srv.AddMedia([]byte("fresh"), testserver.MediaOptions{})
	got, m := mustFetch(t, c, uri)
	if string(got) != "fresh" {
		t.Errorf("body %q; want %q", got, "fresh")
	}
	if len(m.Hops()) != 4 || m.Hops()[1].Status != 403 {
		t.Errorf("hops %v; want 307, 403, 307, 200", m.Hops())
	}
	if n := len(srv.RequestsTo(testserver.OriginHomeserver)); n != 2 {
		t.Errorf("%d homeserver requests; want 2", n)
	}

	b.ExpiredURLs = 2
	srv.SetBehavior(b)
	srv.ResetLog()
	if _, _, err := fetch(t, c, uri); httpStatus(err) != 403 {
		t.Errorf("err = %v; want the CDN's 403", err)
	}
	if n := len(srv.Requests()); n != 4 {
		t.Errorf("%d requests; want 4", n)
	}
}

func TestUploadWait(t *testing.T) {
	srv := testserver.New(t, testserver.Config{Profile: testserver.ProfileSynapse})
	uri := srv.CreateMedia(testserver.MediaOptions{})
	// The server answers 504 at once (timeout_ms=1); the first 504 triggers the upload.
	tr := &hookTransport{base: mediaclient.NewTransport(), after: func(resp *http.Response) {
		if resp.StatusCode == 504 {
			srv.Upload(uri.FileID, []byte("arrived"), "text/plain")
		}
	}}
	c := newClient(t, srv, mediaclient.Options{API: mediaclient.APIV3, ServerUploadWait: time.Millisecond, UploadWait: time.Minute, Transport: tr})
	got, _, err := fetch(t, c, uri)
	if err != nil || string(got) != "arrived" {
		t.Fatal(got, err)
	}
	if q := srv.Requests()[0].Query(); q.Get("timeout_ms") != "1" {
		t.Errorf("timeout_ms = %q; want 1", q.Get("timeout_ms"))
	}

	// Without UploadWait the 504 is the answer, and a typed one.
	uri = srv.CreateMedia(testserver.MediaOptions{})
	c = newClient(t, srv, mediaclient.Options{API: mediaclient.APIV3, ServerUploadWait: time.Millisecond})
	if _, _, err := fetch(t, c, uri); !errors.Is(err, mediaclient.MNotYetUploaded) {
		t.Errorf("err = %v; want M_NOT_YET_UPLOADED", err)
	}
}
