package mediaclient_test

import (
	"errors"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/mxfetch/mxfetch/mediaclient"
	"github.com/mxfetch/mxfetch/testserver"
)

func TestClassify(t *testing.T) {
	for addr, want := range map[string]string{
		"127.0.0.1": "loopback", "127.8.9.10": "loopback", "::1": "loopback", "::ffff:127.0.0.1": "loopback",
		"10.1.2.3": "private", "172.16.0.1": "private", "192.168.1.1": "private", "100.64.0.1": "private",
		"fc00::1": "private", "::ffff:10.0.0.1": "private",
		"169.254.169.254": "link-local", "fe80::1": "link-local", "::ffff:169.254.1.1": "link-local",
		"0.0.0.0": "loopback", "0.1.2.3": "loopback", "::": "loopback", "64:ff9b::7f00:1": "loopback",
		"224.0.0.1": "special 224.0.0.0/4", "192.0.2.1": "special 192.0.2.0/24", "240.0.0.1": "special 240.0.0.0/4",
		"198.18.0.1": "special 198.18.0.0/15", "2001:db8::1": "special 2001:db8::/32", "ff02::1": "special outside 2000::/3",
		"64:ff9b::808:808": "public",
		"8.8.8.8":          "public", "1.1.1.1": "public", "2001:4860:4860::8888": "public", "::ffff:8.8.8.8": "public",
	} {
		if got := mediaclient.Classify(netip.AddrPortFrom(netip.MustParseAddr(addr), 443)); got != want {
			t.Errorf("Classify(%s) = %s; want %s", addr, got, want)
		}
	}
}

// playHomeserver makes the client class the homeserver's port as homeClass and every other address
// as it really is (loopback here).
func playHomeserver(t *testing.T, srv *testserver.Server, c *mediaclient.Client, homeClass string) {
	u, _ := url.Parse(srv.URL)
	port, _ := strconv.Atoi(u.Port())
	mediaclient.SetClassifier(c, func(ap netip.AddrPort) string {
		if int(ap.Port()) == port {
			return homeClass
		}
		return mediaclient.Classify(ap)
	})
}

func TestPrivateAddressGuard(t *testing.T) {
	for _, tc := range []struct {
		name      string
		homeClass string
		cdn       testserver.OriginName
		own       bool // the client's own transport: the dialer checks
		refused   bool
	}{
		{"public to loopback literal", "public", testserver.OriginCDN, false, true},
		{"public to loopback name, at dial time", "public", testserver.OriginCDNNamed, true, true},
		{"public to loopback name, resolved first", "public", testserver.OriginCDNNamed, false, true},
		{"private to loopback", "private", testserver.OriginCDN, false, true},
		{"loopback within loopback", "loopback", testserver.OriginCDNNamed, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := testserver.Behavior{V1Redirect: testserver.Always, V3Redirect: testserver.WhenAsked, Chain: []testserver.OriginName{tc.cdn}}
			srv := testserver.New(t, testserver.Config{Behavior: &b})
			uri := srv.AddMedia([]byte("guarded"), testserver.MediaOptions{})
			opts := mediaclient.Options{API: mediaclient.APIV1}
			if tc.own {
				opts.Transport = nil
			}
			c := newClientTransport(t, srv, opts, tc.own)
			playHomeserver(t, srv, c, tc.homeClass)
			got, _, err := fetch(t, c, uri)
			if !tc.refused {
				if err != nil || string(got) != "guarded" {
					t.Fatalf("got %q, %v", got, err)
				}
				return
			}
			if !errors.Is(err, mediaclient.ErrPrivateAddress) {
				t.Errorf("err = %v; want ErrPrivateAddress", err)
			}
			if !errors.Is(err, mediaclient.ErrRedirectRefused) {
				t.Errorf("err = %v; want ErrRedirectRefused", err)
			}
			var ae *mediaclient.AddressError
			if !errors.As(err, &ae) {
				t.Fatalf("err = %v; want an *AddressError", err)
			}
			if ae.Class != "loopback" {
				t.Errorf("AddressError.Class = %q; want loopback", ae.Class)
			}
			if !ae.Addr.IsLoopback() {
				t.Errorf("AddressError.Addr = %v; want a loopback address", ae.Addr)
			}
			if n := len(srv.Requests()); n != 1 {
				t.Errorf("%d requests; want only the homeserver's (no CDN request, no retry)", n)
			}

			// On v3 the refused redirect falls back to a plain request.
			srv.ResetLog()
			opts.API = mediaclient.APIV3
			c3 := newClientTransport(t, srv, opts, tc.own)
			playHomeserver(t, srv, c3, tc.homeClass)
			got, m := mustFetch(t, c3, uri)
			if string(got) != "guarded" {
				t.Errorf("v3: body %q; want %q", got, "guarded")
			}
			if fallbacks(m) != "redirect refused" {
				t.Errorf("v3: fallback %q; want %q", fallbacks(m), "redirect refused")
			}
			if n := len(srv.RequestsTo(tc.cdn)); n != 0 {
				t.Errorf("v3: %d CDN requests; want 0", n)
			}

			// The opt-out follows the redirect.
			srv.ResetLog()
			opts.API, opts.AllowPrivateRedirects = mediaclient.APIV1, true
			co := newClientTransport(t, srv, opts, tc.own)
			playHomeserver(t, srv, co, tc.homeClass)
			if got, _, err := fetch(t, co, uri); err != nil || string(got) != "guarded" {
				t.Errorf("opt-out: %q, %v", got, err)
			}
		})
	}
}

// newClientTransport is newClient, with the client's own default transport when own is set.
func newClientTransport(t *testing.T, srv *testserver.Server, opts mediaclient.Options, own bool) *mediaclient.Client {
	if !own {
		return newClient(t, srv, opts)
	}
	opts.HomeserverURL, opts.AccessToken = srv.URL, srv.AccessToken
	c, err := mediaclient.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestGuardThroughProxy: through a proxy the dialer only sees the proxy's address; the guard checks
// the target instead, and the proxy's own address class does not matter.
func TestGuardThroughProxy(t *testing.T) {
	b := testserver.Behavior{V1Redirect: testserver.Always}
	srv := testserver.New(t, testserver.Config{Behavior: &b})
	uri := srv.AddMedia([]byte("proxied"), testserver.MediaOptions{})
	var proxied atomic.Int64
	proxy := forwardProxy(t, func(*http.Request) { proxied.Add(1) })
	proxyURL, _ := url.Parse(proxy.URL)
	proxyPort, _ := strconv.Atoi(proxyURL.Port())

	for _, tc := range []struct {
		name      string
		homeClass string
		refused   bool
	}{
		{"loopback homeserver, private proxy, loopback CDN", "loopback", false},
		{"public homeserver, loopback CDN", "public", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv.ResetLog()
			tr := mediaclient.NewTransport()
			tr.Proxy = http.ProxyURL(proxyURL)
			defer tr.CloseIdleConnections()
			c := newClient(t, srv, mediaclient.Options{API: mediaclient.APIV1, Transport: tr})
			u, _ := url.Parse(srv.URL)
			homePort, _ := strconv.Atoi(u.Port())
			mediaclient.SetClassifier(c, func(ap netip.AddrPort) string {
				switch int(ap.Port()) {
				case proxyPort:
					return "private"
				case homePort:
					return tc.homeClass
				}
				return mediaclient.Classify(ap)
			})
			before := proxied.Load()
			got, _, err := fetch(t, c, uri)
			if tc.refused {
				if !errors.Is(err, mediaclient.ErrPrivateAddress) || len(srv.RequestsTo(testserver.OriginCDN)) != 0 {
					t.Errorf("err = %v, CDN requests %d; want refused before the CDN", err, len(srv.RequestsTo(testserver.OriginCDN)))
				}
				return
			}
			if err != nil || string(got) != "proxied" {
				t.Fatalf("got %q, %v", got, err)
			}
			if n := proxied.Load() - before; n != 2 {
				t.Errorf("%d proxied requests; want both hops through the proxy", n)
			}
		})
	}
}
