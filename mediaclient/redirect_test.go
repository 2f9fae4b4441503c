package mediaclient_test

import (
	"errors"
	"fmt"
	"net/http"
	"net/textproto"
	"strings"
	"testing"

	"github.com/mxfetch/mxfetch/mediaclient"
	"github.com/mxfetch/mxfetch/testserver"
)

// TestTokenNeverReachesCDN follows 307 and 308 redirects to a CDN on another port and on another host
// name, on v3 and v1, and checks from the request log that no credential reached it.
func TestTokenNeverReachesCDN(t *testing.T) {
	for _, status := range []int{307, 308} {
		for _, cdn := range []testserver.OriginName{testserver.OriginCDN, testserver.OriginCDNHost, testserver.OriginCDNTLS} {
			for _, api := range []mediaclient.API{mediaclient.APIV3, mediaclient.APIV1} {
				t.Run(fmt.Sprintf("%d/%s/%s", status, cdn, api), func(t *testing.T) {
					b := testserver.Behavior{Redirect: status, V3Redirect: testserver.WhenAsked, V1Redirect: testserver.WhenAsked, Chain: []testserver.OriginName{cdn}}
					srv, c := setup(t, testserver.Config{Behavior: &b}, mediaclient.Options{
						API:               api,
						Header:            http.Header{"Cookie": {"session=1"}, "Proxy-Authorization": {"Basic cHJveHk="}, "X-Api-Key": {"k"}, "X-Trace": {"t1"}},
						CredentialHeaders: []string{"X-Api-Key"},
					})
					want := content(100_000, 1)
					uri := srv.AddMedia(want, testserver.MediaOptions{})
					got, m, err := fetch(t, c, uri)
					if err != nil || !sameBytes(got, want) {
						t.Fatalf("got %d bytes, %v; want %d bytes", len(got), err, len(want))
					}
					if n := len(srv.RequestsTo(cdn)); n != 1 {
						t.Fatalf("CDN saw %d requests; want 1", n)
					}
					cdnReq := srv.RequestsTo(cdn)[0]
					for _, h := range []string{"Authorization", "Cookie", "Proxy-Authorization", "X-Api-Key", "Referer"} {
						if v := cdnReq.Header.Get(h); v != "" {
							t.Errorf("CDN received %s: %q", h, v)
						}
					}
					if cdnReq.Header.Get("X-Trace") != "t1" {
						t.Errorf("a plain custom header did not follow the redirect")
					}
					home := srv.RequestsTo(testserver.OriginHomeserver)[0]
					if got := home.Header.Get("Authorization"); got != "Bearer "+srv.AccessToken {
						t.Errorf("homeserver got Authorization %q; want the token", got)
					}
					for _, h := range []string{"Cookie", "X-Api-Key"} {
						if home.Header.Get(h) == "" {
							t.Errorf("homeserver did not get %s", h)
						}
					}
					if !home.Query().Has("allow_redirect") {
						t.Errorf("no allow_redirect on %s", api)
					}
					wantHops := fmt.Sprintf("[{%d %s true} {200 %s false}]", status, srv.URL, srv.Origin(cdn))
					if got := hopSummary(m.Hops()); got != wantHops {
						t.Errorf("hops = %s; want %s", got, wantHops)
					}
				})
			}
		}
	}
}

func TestSameOriginHopKeepsToken(t *testing.T) {
	b := testserver.Behavior{V3Redirect: testserver.Always, Chain: []testserver.OriginName{testserver.OriginHomeserver}}
	srv, c := setup(t, testserver.Config{Behavior: &b}, mediaclient.Options{API: mediaclient.APIV3})
	uri := srv.AddMedia([]byte("same origin"), testserver.MediaOptions{})
	if _, _, err := fetch(t, c, uri); err != nil {
		t.Fatal(err)
	}
	reqs := srv.Requests()
	if len(reqs) != 2 || credentialsAt(srv, testserver.OriginHomeserver) != 2 {
		t.Errorf("want 2 requests at the homeserver, both with the token; got %d with %d", len(reqs), credentialsAt(srv, testserver.OriginHomeserver))
	}
}

// TestTokenNotRestoredAfterLeaving: homeserver → CDN → homeserver; the token is not sent at the
// homeserver again once the chain has left it, as browsers do.
func TestTokenNotRestoredAfterLeaving(t *testing.T) {
	b := testserver.Behavior{V3Redirect: testserver.Always, Chain: []testserver.OriginName{testserver.OriginCDNHost, testserver.OriginHomeserver}}
	srv, c := setup(t, testserver.Config{Behavior: &b}, mediaclient.Options{API: mediaclient.APIV3, Header: http.Header{"Cookie": {"a=b"}}})
	uri := srv.AddMedia([]byte("a-b-a"), testserver.MediaOptions{})
	if _, _, err := fetch(t, c, uri); err != nil {
		t.Fatal(err)
	}
	home := srv.RequestsTo(testserver.OriginHomeserver)
	if len(home) != 2 {
		t.Fatalf("%d homeserver requests; want 2", len(home))
	}
	if !home[0].HasCredentials() {
		t.Error("first homeserver request without credentials")
	}
	if home[1].HasCredentials() {
		t.Error("credentials on the homeserver again after the chain left it")
	}
	if credentialsAt(srv, testserver.OriginCDNHost) != 0 {
		t.Error("credentials at the CDN")
	}
}

// TestDowngradeRefused: an https homeserver redirecting to http is refused before any plaintext
// request; on v3 the client falls back to a plain request, on v1 it is an error.
func TestDowngradeRefused(t *testing.T) {
	srv, c := setup(t, testserver.Config{Profile: testserver.ProfileMediaRepo, TLS: true}, mediaclient.Options{API: mediaclient.APIV3})
	uri := srv.AddMedia([]byte("tls only"), testserver.MediaOptions{})
	got, m := mustFetch(t, c, uri)
	if string(got) != "tls only" {
		t.Errorf("v3: body %q; want %q", got, "tls only")
	}
	if fallbacks(m) != "redirect refused" {
		t.Errorf("v3: fallback %q; want %q", fallbacks(m), "redirect refused")
	}
	if n := len(srv.RequestsTo(testserver.OriginCDN)); n != 0 {
		t.Fatalf("plaintext CDN saw %d requests", n)
	}
	if q := srv.Requests()[1].Query(); len(srv.Requests()) != 2 || q.Has("allow_redirect") {
		t.Errorf("fallback request: %d requests, query %v; want a second request without allow_redirect", len(srv.Requests()), q)
	}

	srv.ResetLog()
	c1 := newClient(t, srv, mediaclient.Options{API: mediaclient.APIV1})
	_, _, err := fetch(t, c1, uri)
	if !errors.Is(err, mediaclient.ErrRedirectRefused) {
		t.Errorf("v1: err = %v; want ErrRedirectRefused", err)
	}
	var re *mediaclient.RedirectError
	if !errors.As(err, &re) {
		t.Fatalf("v1: err = %v; want a *RedirectError", err)
	}
	if !strings.Contains(re.Reason, "downgrade") {
		t.Errorf("v1: RedirectError.Reason %q; want a downgrade", re.Reason)
	}
	if n := len(srv.Requests()); n != 1 {
		t.Errorf("v1: %d requests; want 1 (no retry, no plaintext hop)", n)
	}

	srv.ResetLog()
	c2 := newClient(t, srv, mediaclient.Options{API: mediaclient.APIV1, AllowInsecureRedirects: true})
	if got, _, err := fetch(t, c2, uri); err != nil || string(got) != "tls only" {
		t.Fatalf("allowed downgrade: %q %v", got, err)
	}
	if credentialsAt(srv, testserver.OriginCDN) != 0 || len(srv.RequestsTo(testserver.OriginCDN)) != 1 {
		t.Error("allowed downgrade: want one CDN request without credentials")
	}
}

// TestLocationValues sends raw Location values from the homeserver.
func TestLocationValues(t *testing.T) {
	for _, tc := range []struct {
		name     string
		location func(srv *testserver.Server) string
		ok       bool
		at       testserver.OriginName // where the bytes come from when ok
	}{
		{"relative", func(s *testserver.Server) string { return cdnPath(s) }, true, testserver.OriginHomeserver},
		{"dot-dot", func(s *testserver.Server) string { return "../../../../../../" + strings.TrimPrefix(cdnPath(s), "/") }, true, testserver.OriginHomeserver},
		{"protocol-relative", func(s *testserver.Server) string {
			return "//" + strings.TrimPrefix(s.Origin(testserver.OriginCDN), "http://") + cdnPath(s)
		}, true, testserver.OriginCDN},
		{"fragment", func(s *testserver.Server) string { return s.Origin(testserver.OriginCDN) + cdnPath(s) + "#frag" }, true, testserver.OriginCDN},
		{"file", func(*testserver.Server) string { return "file:///etc/passwd" }, false, ""},
		{"data", func(*testserver.Server) string { return "data:text/plain,hello" }, false, ""},
		{"ftp", func(s *testserver.Server) string { return "ftp://127.0.0.1/x" }, false, ""},
		{"userinfo", func(s *testserver.Server) string {
			return strings.Replace(s.Origin(testserver.OriginCDN), "http://", "http://user:pass@", 1) + cdnPath(s)
		}, false, ""},
		{"empty", func(*testserver.Server) string { return "" }, false, ""},
		{"tab", func(s *testserver.Server) string { return s.Origin(testserver.OriginCDN) + "/x\ty" }, false, ""},
		{"10 KiB", func(s *testserver.Server) string {
			return s.Origin(testserver.OriginCDN) + "/" + strings.Repeat("a", 10<<10)
		}, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := testserver.New(t, testserver.Config{Profile: testserver.ProfileSynapse})
			uri := srv.AddMedia([]byte("located"), testserver.MediaOptions{})
			loc := tc.location(srv)
			srv.SetBehavior(testserver.Behavior{V1Redirect: testserver.Always, Location: &loc})
			c := newClient(t, srv, mediaclient.Options{API: mediaclient.APIV1})
			got, _, err := fetch(t, c, uri)
			if tc.ok {
				if err != nil || string(got) != "located" {
					t.Fatalf("got %q, %v", got, err)
				}
				reqs := srv.Requests()
				if len(reqs) != 2 {
					t.Fatalf("%d requests; want 2", len(reqs))
				}
				last := reqs[1]
				if last.Origin != srv.Origin(tc.at) {
					t.Errorf("second request at %s; want %s", last.Origin, srv.Origin(tc.at))
				}
				if strings.Contains(last.RawQuery, "frag") {
					t.Errorf("second request's query %q carries the fragment", last.RawQuery)
				}
				if tc.at != testserver.OriginHomeserver && last.HasCredentials() {
					t.Error("credentials sent to another origin")
				}
				return
			}
			if !errors.Is(err, mediaclient.ErrRedirectRefused) {
				t.Fatalf("err = %v; want ErrRedirectRefused", err)
			}
			if n := len(srv.Requests()); n != 1 {
				t.Errorf("%d requests made; want only the homeserver's", n)
			}
			for _, r := range srv.Requests() {
				if strings.HasPrefix(r.Header.Get("Authorization"), "Basic") {
					t.Error("Basic auth sent")
				}
			}
		})
	}

	// Go's HTTP reader refuses other control characters in a header before the redirect policy sees
	// them; the answer is a final protocol error, not retried.
	t.Run("control character", func(t *testing.T) {
		loc := "http://127.0.0.1:1/x\x01y"
		srv, c := setup(t, testserver.Config{Behavior: &testserver.Behavior{V1Redirect: testserver.Always, Location: &loc}}, mediaclient.Options{API: mediaclient.APIV1})
		uri := srv.AddMedia([]byte("x"), testserver.MediaOptions{})
		var pe textproto.ProtocolError
		if _, _, err := fetch(t, c, uri); !errors.As(err, &pe) || len(srv.Requests()) != 1 {
			t.Errorf("err = %v after %d requests; want a protocol error after 1", err, len(srv.Requests()))
		}
	})
	t.Run("missing", func(t *testing.T) {
		srv, c := setup(t, testserver.Config{Behavior: &testserver.Behavior{V1Redirect: testserver.Always, NoLocation: true}}, mediaclient.Options{API: mediaclient.APIV1})
		uri := srv.AddMedia([]byte("x"), testserver.MediaOptions{})
		if _, _, err := fetch(t, c, uri); !errors.Is(err, mediaclient.ErrRedirectRefused) || len(srv.Requests()) != 1 {
			t.Errorf("err = %v after %d requests; want ErrRedirectRefused after 1", err, len(srv.Requests()))
		}
	})
	t.Run("v3 falls back", func(t *testing.T) {
		loc := "file:///etc/passwd"
		srv, c := setup(t, testserver.Config{Behavior: &testserver.Behavior{V3Redirect: testserver.WhenAsked, Location: &loc}}, mediaclient.Options{API: mediaclient.APIV3})
		uri := srv.AddMedia([]byte("plain"), testserver.MediaOptions{})
		got, m := mustFetch(t, c, uri)
		if string(got) != "plain" {
			t.Errorf("body %q; want %q", got, "plain")
		}
		if fallbacks(m) != "redirect refused" {
			t.Errorf("fallback %q; want %q", fallbacks(m), "redirect refused")
		}
		if n := len(srv.Requests()); n != 2 {
			t.Errorf("%d requests; want 2", n)
		}
	})
}

// cdnPath is the path and query of a signed CDN URL for the media added first.
func cdnPath(s *testserver.Server) string {
	u := s.SignedURL(testserver.OriginCDN, s.MediaIDs()[0])
	return strings.TrimPrefix(u, s.Origin(testserver.OriginCDN))
}

func TestRedirectBound(t *testing.T) {
	chainOf := func(n int) []testserver.OriginName {
		c := make([]testserver.OriginName, n)
		for i := range c {
			c[i] = []testserver.OriginName{testserver.OriginCDN, testserver.OriginCDNHost}[i%2]
		}
		return c
	}
	for _, tc := range []struct {
		name      string
		max       int
		behavior  testserver.Behavior
		ok        bool
		wantReqs  int
		maxOption int
	}{
		{"exactly the bound", 5, testserver.Behavior{V3Redirect: testserver.Always, Chain: chainOf(5)}, true, 6, 0},
		{"one more", 5, testserver.Behavior{V3Redirect: testserver.Always, Chain: chainOf(6)}, false, 6, 0},
		{"self loop", 5, testserver.Behavior{V3Redirect: testserver.Always, Chain: chainOf(1), Loop: true}, false, 6, 0},
		{"A-B loop", 5, testserver.Behavior{V3Redirect: testserver.Always, Chain: chainOf(2), Loop: true}, false, 6, 0},
		{"bound 2 ok", 2, testserver.Behavior{V3Redirect: testserver.Always, Chain: chainOf(2)}, true, 3, 2},
		{"bound 2 fails", 2, testserver.Behavior{V3Redirect: testserver.Always, Chain: chainOf(3)}, false, 3, 2},
		{"no redirects at all", 0, testserver.Behavior{V1Redirect: testserver.Always, Chain: chainOf(1)}, false, 1, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.behavior
			b.V1Redirect = testserver.Always
			srv, c := setup(t, testserver.Config{Behavior: &b}, mediaclient.Options{API: mediaclient.APIV1, MaxRedirects: tc.maxOption})
			uri := srv.AddMedia([]byte("bounded"), testserver.MediaOptions{})
			got, _, err := fetch(t, c, uri)
			if tc.ok != (err == nil) || (tc.ok && string(got) != "bounded") {
				t.Fatalf("got %q, %v; want ok=%v", got, err, tc.ok)
			}
			if !tc.ok && !errors.Is(err, mediaclient.ErrTooManyRedirects) {
				t.Fatalf("err = %v; want ErrTooManyRedirects", err)
			}
			if n := len(srv.Requests()); n != tc.wantReqs {
				t.Errorf("%d requests; want %d (no retry)", n, tc.wantReqs)
			}
		})
	}
}

func TestRedirectStatuses(t *testing.T) {
	for _, tc := range []struct {
		status int
		ok     bool
	}{{301, true}, {302, true}, {303, true}, {307, true}, {308, true}, {300, false}, {304, false}, {305, false}} {
		t.Run(fmt.Sprint(tc.status), func(t *testing.T) {
			srv, c := setup(t, testserver.Config{Behavior: &testserver.Behavior{Redirect: tc.status, V1Redirect: testserver.Always}}, mediaclient.Options{API: mediaclient.APIV1})
			uri := srv.AddMedia([]byte("moved"), testserver.MediaOptions{})
			got, _, err := fetch(t, c, uri)
			if tc.ok {
				if err != nil || string(got) != "moved" {
					t.Fatalf("got %q, %v", got, err)
				}
				cdn := srv.RequestsTo(testserver.OriginCDN)
				if len(cdn) != 1 {
					t.Fatalf("%d CDN requests; want 1", len(cdn))
				}
				if cdn[0].Method != "GET" {
					t.Errorf("CDN request method %s; want GET", cdn[0].Method)
				}
				return
			}
			if !errors.Is(err, mediaclient.ErrUnexpectedStatus) || len(srv.Requests()) != 1 {
				t.Errorf("err = %v after %d requests; want ErrUnexpectedStatus after 1", err, len(srv.Requests()))
			}
		})
	}
}
