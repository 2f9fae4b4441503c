package mediaclient_test

// Tests of the FederationClient against the test server's federation endpoints, which check the
// X-Matrix signature with mautrix's code: the two answer forms, the Location's rules, hostile
// answers, the re-request, the legacy fallback, resumption and the size limit.

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/federation"

	"github.com/mxfetch/mxfetch/mediaclient"
	"github.com/mxfetch/mxfetch/testserver"
)

// originName is the name the tests' FederationClient signs as.
const originName = "origin.test"

// fedServer starts a test server over TLS, as a remote server named remote.test, that trusts a fresh
// signing key of originName, and returns the key.
func fedServer(t testing.TB, b testserver.Behavior, fb testserver.FederationBehavior) (*testserver.Server, *federation.SigningKey) {
	t.Helper()
	srv := testserver.New(t, testserver.Config{TLS: true, ServerName: "remote.test", Behavior: &b})
	srv.SetFederation(fb)
	key := federation.GenerateSigningKey()
	if err := srv.TrustServerKeys(key.GenerateKeyResponse(originName, nil)); err != nil {
		t.Fatal(err)
	}
	return srv, key
}

// resolveTo finds every remote server at srv's homeserver origin.
func resolveTo(srv *testserver.Server) func(context.Context, string) (*federation.ResolvedServerName, error) {
	u, _ := url.Parse(srv.URL)
	return func(_ context.Context, name string) (*federation.ResolvedServerName, error) {
		return &federation.ResolvedServerName{ServerName: name, HostHeader: u.Host, IPPort: []string{u.Host}}, nil
	}
}

// newFed returns a FederationClient that signs as originName with key, finds the remote server at
// srv, trusts srv's certificate and backs off for milliseconds. Unless opts says otherwise it uses
// its own transport, and the remote server may be on loopback (AllowPrivateServers); Locations stay
// strict.
func newFed(t testing.TB, srv *testserver.Server, key *federation.SigningKey, opts mediaclient.FederationOptions) *mediaclient.FederationClient {
	t.Helper()
	opts.AllowPrivateServers = true
	return newFedAsIs(t, srv, key, opts)
}

// newFedAsIs is newFed without AllowPrivateServers.
func newFedAsIs(t testing.TB, srv *testserver.Server, key *federation.SigningKey, opts mediaclient.FederationOptions) *mediaclient.FederationClient {
	t.Helper()
	opts.ServerName, opts.Key = originName, key
	if opts.ResolveServer == nil {
		opts.ResolveServer = resolveTo(srv)
	}
	o := &opts.Options
	o.RetryWaitMin, o.RetryWaitMax = time.Millisecond, 5*time.Millisecond
	f, err := mediaclient.NewFederationClient(opts)
	if err != nil {
		t.Fatal(err)
	}
	if tr := mediaclient.FederationTransport(f); tr != nil {
		tr.TLSClientConfig = &tls.Config{RootCAs: srv.CertPool()}
	}
	t.Cleanup(f.CloseIdleConnections)
	return f
}

// portOf returns the port of a base URL.

// playPublic makes f class the ports of the named origins as public, and every other address as
// it really is (loopback).
func playPublic(t testing.TB, f *mediaclient.FederationClient, srv *testserver.Server, origins ...testserver.OriginName) {
	public := map[int]bool{}
	for _, o := range origins {
		public[portOf(t, srv.Origin(o))] = true
	}
	mediaclient.SetFederationClassifier(f, func(ap netip.AddrPort) string {
		if public[int(ap.Port())] {
			return "public"
		}
		return mediaclient.Classify(ap)
	})
}

// fedFetch downloads uri over federation and reads it whole.
func fedFetch(t testing.TB, f *mediaclient.FederationClient, uri string) ([]byte, *mediaclient.Media, error) {
	t.Helper()
	u, err := mediaclient.ParseURI(uri)
	if err != nil {
		t.Fatal(err)
	}
	m, err := f.Download(t.Context(), u)
	if err != nil {
		return nil, nil, err
	}
	defer m.Close()
	data, err := io.ReadAll(m)
	return data, m, err
}

// federationRequests returns the requests srv got on its federation media endpoints.
func federationRequests(srv *testserver.Server) []testserver.Request {
	var out []testserver.Request
	for _, r := range srv.Requests() {
		if strings.HasPrefix(r.Path, "/_matrix/federation/") {
			out = append(out, r)
		}
	}
	return out
}

// credentialsOffFederation counts the requests to anything but the federation endpoints that
// carried a credential: a Location's origin, a CDN, the legacy endpoint.
func credentialsOffFederation(srv *testserver.Server) int {
	n := 0
	for _, r := range srv.Requests() {
		if !strings.HasPrefix(r.Path, "/_matrix/federation/") && r.HasCredentials() {
			n++
		}
	}
	return n
}

// checkSignedRequests fails unless srv got want federation requests, each with an X-Matrix
// Authorization from originName that mautrix's verifier accepted (a 2xx or a status the test
// expects after authentication).
func checkSignedRequests(t testing.TB, srv *testserver.Server, want int) {
	t.Helper()
	reqs := federationRequests(srv)
	if len(reqs) != want {
		t.Errorf("%d federation requests; want %d", len(reqs), want)
	}
	for _, r := range reqs {
		auth := federation.ParseXMatrixAuth(r.Header.Get("Authorization"))
		if auth.Origin != originName || auth.Destination != "remote.test" || r.Status == http.StatusUnauthorized {
			t.Errorf("federation request %s: origin %q, destination %q, status %d", r.Path, auth.Origin, auth.Destination, r.Status)
		}
	}
}

func sum(b []byte) string { s := sha256.Sum256(b); return fmt.Sprintf("%x", s[:8]) }

// steps renders the hops of a download as "step status origin-name credentials" lines.
func steps(m []mediaclient.Hop) string {
	var s []string
	for _, h := range m {
		c := ""
		if h.Credentials {
			c = " creds"
		}
		s = append(s, fmt.Sprintf("%s %d%s", h.Step, h.Status, c))
	}
	return strings.Join(s, ", ")
}

// TestFederationAnswerForms: the bytes inline and through a Location part give the exact media; the
// X-Matrix Authorization goes to the federation endpoint only, never to a Location's origin, even
// when the Location's chain leads back to the remote server's own listener.
func TestFederationAnswerForms(t *testing.T) {
	want := content(300_000, 3)
	for _, tc := range []struct {
		name      string
		chain     []testserver.OriginName
		fb        testserver.FederationBehavior
		api       mediaclient.API
		wantSteps string
	}{
		{"inline", nil, testserver.FederationBehavior{}, mediaclient.APIFederation, "request 200 creds"},
		{"inline with the part's Content-Length", nil, testserver.FederationBehavior{PartContentLength: true}, mediaclient.APIFederation, "request 200 creds"},
		{"location", []testserver.OriginName{testserver.OriginCDNTLS}, testserver.FederationBehavior{Location: true}, mediaclient.APIFederation, "request 200 creds, location 200"},
		{"location, then a redirect back to the remote's listener", []testserver.OriginName{testserver.OriginCDNTLS, testserver.OriginCDNHost},
			testserver.FederationBehavior{Location: true}, mediaclient.APIFederation, "request 200 creds, location 307, redirect 200"},
		{"location on the remote server's own origin", []testserver.OriginName{testserver.OriginHomeserver},
			testserver.FederationBehavior{Location: true}, mediaclient.APIFederation, "request 200 creds, location 200"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, key := fedServer(t, testserver.Behavior{Chain: tc.chain, Redirect: 307}, tc.fb)
			uri := srv.AddMedia(want, testserver.MediaOptions{ContentType: "image/png", FileName: "cat.png"})
			f := newFed(t, srv, key, mediaclient.FederationOptions{})
			playPublic(t, f, srv, testserver.OriginCDNTLS, testserver.OriginHomeserver)
			got, m, err := fedFetch(t, f, uri.String())
			if err != nil {
				t.Fatal(err)
			}
			if sum(got) != sum(want) || len(got) != len(want) {
				t.Fatalf("got %d bytes (sha256 %s); want %d (%s)", len(got), sum(got), len(want), sum(want))
			}
			if m.API != tc.api || m.ContentType != "image/png" || m.FileName != "cat.png" {
				t.Errorf("API %q, type %q, file name %q", m.API, m.ContentType, m.FileName)
			}
			if got := string(m.FederationMetadata()); got != "{}" {
				t.Errorf("metadata %q; want {}", got)
			}
			if got := steps(m.Hops()); got != tc.wantSteps {
				t.Errorf("hops %q; want %q", got, tc.wantSteps)
			}
			checkSignedRequests(t, srv, 1)
			if n := credentialsOffFederation(srv); n != 0 {
				t.Errorf("%d requests off the federation endpoint carried credentials", n)
			}
			if tc.fb.PartContentLength && m.Size() != int64(len(want)) {
				t.Errorf("Size %d; want %d", m.Size(), len(want))
			}
		})
	}
}

// TestFederationThumbnail: the thumbnail endpoint with its parameters, inline and through a
// Location (which carries them on).
func TestFederationThumbnail(t *testing.T) {
	thumb := content(5000, 8)
	for _, fb := range []testserver.FederationBehavior{{}, {Location: true}} {
		t.Run(fmt.Sprintf("location=%t", fb.Location), func(t *testing.T) {
			srv, key := fedServer(t, testserver.Behavior{Chain: []testserver.OriginName{testserver.OriginCDNTLS}}, fb)
			uri := srv.AddMedia(content(50_000, 1), testserver.MediaOptions{Thumbnail: thumb})
			f := newFed(t, srv, key, mediaclient.FederationOptions{})
			playPublic(t, f, srv, testserver.OriginCDNTLS)
			m, err := f.Thumbnail(t.Context(), uri, mediaclient.ThumbnailOptions{Width: 64, Height: 48, Method: "crop", Animated: true})
			got, err := readAll(t, m, err)
			if err != nil || sum(got) != sum(thumb) {
				t.Fatalf("got %d bytes, %v", len(got), err)
			}
			reqs := federationRequests(srv)
			if len(reqs) != 1 || reqs[0].Path != "/_matrix/federation/v1/media/thumbnail/"+uri.FileID ||
				reqs[0].RawQuery != "width=64&height=48&method=crop&animated=true&timeout_ms=20000" {
				t.Errorf("federation requests %v", reqs)
			}
			checkSignedRequests(t, srv, 1)
		})
	}
}

// trap listens on loopback and counts the connections it accepts; it never answers.
func trap(t testing.TB) (port int, accepted *atomic.Int64) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted = new(atomic.Int64)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Close()
		}
	}()
	t.Cleanup(func() { l.Close(); <-done })
	return l.Addr().(*net.TCPAddr).Port, accepted
}

// dialLog wraps a transport's dialer to record every address it is asked to connect to.
func dialLog(tr *http.Transport) func() []string {
	var mu = make(chan struct{}, 1)
	var addrs []string
	dial := tr.DialContext
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		mu <- struct{}{}
		addrs = append(addrs, addr)
		<-mu
		return dial(ctx, network, addr)
	}
	return func() []string {
		mu <- struct{}{}
		defer func() { <-mu }()
		return append([]string(nil), addrs...)
	}
}

// TestFederationHostileLocations: Locations that lead to internal addresses, carry userinfo,
// downgrade to http or use another scheme are refused with typed errors before any connection to
// them: the trap listener accepts nothing and the dialer is never asked for the address. A refused
// Location is final: the remote server is not asked again.
func TestFederationHostileLocations(t *testing.T) {
	trapPort, accepted := trap(t)
	tp := strconv.Itoa(trapPort)
	for _, tc := range []struct {
		name     string
		loc      string
		public   bool   // the remote server plays a public address; else it is allowed on loopback
		class    string // the refused address's class, for an *AddressError
		noDialTo string // an address the dialer must never be asked for
	}{
		{"cloud metadata (link-local)", "https://169.254.169.254/latest/meta-data/iam", true, "link-local", "169.254.169.254:443"},
		{"loopback literal, public remote", "https://127.0.0.1:" + tp + "/admin", true, "loopback", "127.0.0.1:" + tp},
		{"loopback literal, loopback remote", "https://127.0.0.1:" + tp + "/admin", false, "loopback", "127.0.0.1:" + tp},
		{"loopback name, resolved at dial time", "https://localhost:" + tp + "/admin", true, "loopback", ""},
		{"private", "https://10.20.30.40/internal", true, "private", "10.20.30.40:443"},
		{"IPv6 loopback", "https://[::1]:" + tp + "/", true, "loopback", "[::1]:" + tp},
		{"unspecified", "https://0.0.0.0:" + tp + "/", true, "loopback", "0.0.0.0:" + tp},
		{"relative: back to the loopback remote itself", "/_matrix/media/v3/download/remote.test/x", false, "loopback", ""},
		{"userinfo", "https://user:secret@cdn.example/x", true, "", ""},
		{"downgrade to http", "http://cdn.example/x", true, "", ""},
		{"file scheme", "file:///etc/passwd", true, "", ""},
		{"numeric host", "https://2130706433:" + tp + "/", true, "", ""},
		{"empty", "", true, "", ""},
	} {
		for _, own := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/own transport=%t", tc.name, own), func(t *testing.T) {
				loc := tc.loc
				srv, key := fedServer(t, testserver.Behavior{}, testserver.FederationBehavior{LocationURL: &loc})
				uri := srv.AddMedia(content(1000, 2), testserver.MediaOptions{})
				opts := mediaclient.FederationOptions{}
				var dialed func() []string
				if !own {
					tr := mediaclient.NewFederationTransport()
					tr.TLSClientConfig = &tls.Config{RootCAs: srv.CertPool()}
					dialed = dialLog(tr)
					opts.Options.Transport = tr
				}
				f := newFed(t, srv, key, opts)
				if tc.public {
					playPublic(t, f, srv, testserver.OriginHomeserver)
				}
				before := accepted.Load()
				_, _, err := fedFetch(t, f, uri.String())
				var ae *mediaclient.AddressError
				switch {
				case !errors.Is(err, mediaclient.ErrRedirectRefused):
					t.Fatalf("err = %v; want a refused redirect", err)
				case tc.class != "" && (!errors.As(err, &ae) || ae.Class != tc.class || !ae.Strict):
					t.Errorf("err = %v; want a strict AddressError for a %s address", err, tc.class)
				case tc.class == "" && errors.As(err, &ae):
					t.Errorf("err = %v; want a refusal of the Location itself", err)
				}
				var me *mediaclient.Error
				if !errors.As(err, &me) || me.Op != "download" || me.URI != uri.String() {
					t.Errorf("err = %#v; want an *Error for the download", err)
				}
				if n := accepted.Load() - before; n != 0 {
					t.Errorf("the trap accepted %d connections", n)
				}
				if dialed != nil && tc.noDialTo != "" {
					for _, a := range dialed() {
						if a == tc.noDialTo {
							t.Errorf("the dialer was asked for %s", a)
						}
					}
				}
				checkSignedRequests(t, srv, 1)
				if n := len(srv.Requests()); n != 1 {
					t.Errorf("%d requests at the remote server; want only the federation request", n)
				}
			})
		}
	}
}

// TestFederationPrivateLocationsAllowed: the opt-out reaches a CDN on loopback.
func TestFederationPrivateLocationsAllowed(t *testing.T) {
	srv, key := fedServer(t, testserver.Behavior{Chain: []testserver.OriginName{testserver.OriginCDNTLS}}, testserver.FederationBehavior{Location: true})
	want := content(10_000, 4)
	uri := srv.AddMedia(want, testserver.MediaOptions{})
	strict := newFed(t, srv, key, mediaclient.FederationOptions{})
	if _, _, err := fedFetch(t, strict, uri.String()); !errors.Is(err, mediaclient.ErrPrivateAddress) || len(srv.RequestsTo(testserver.OriginCDNTLS)) != 0 {
		t.Fatalf("strict: err = %v, CDN requests %d; want refused before the CDN", err, len(srv.RequestsTo(testserver.OriginCDNTLS)))
	}
	allowed := newFed(t, srv, key, mediaclient.FederationOptions{AllowPrivateLocations: true})
	if got, _, err := fedFetch(t, allowed, uri.String()); err != nil || sum(got) != sum(want) {
		t.Fatalf("allowed: %d bytes, %v", len(got), err)
	}
	if n := credentialsOffFederation(srv); n != 0 {
		t.Errorf("%d requests off the federation endpoint carried credentials", n)
	}
}

// TestFederationPrivateServerRefused: by default the remote server itself may not be on a private
// address; nothing connects to it.
func TestFederationPrivateServerRefused(t *testing.T) {
	srv, key := fedServer(t, testserver.Behavior{}, testserver.FederationBehavior{})
	uri := srv.AddMedia([]byte("x"), testserver.MediaOptions{})
	for _, own := range []bool{true, false} {
		opts := mediaclient.FederationOptions{}
		if !own {
			tr := mediaclient.NewFederationTransport()
			tr.TLSClientConfig = &tls.Config{RootCAs: srv.CertPool()}
			opts.Options.Transport = tr
		}
		f := newFedAsIs(t, srv, key, opts)
		srv.ResetConnections()
		_, _, err := fedFetch(t, f, uri.String())
		var ae *mediaclient.AddressError
		if !errors.As(err, &ae) || ae.Class != "loopback" || !ae.Strict {
			t.Errorf("own=%t: err = %v; want a strict AddressError", own, err)
		}
		if n := srv.Connections(testserver.OriginHomeserver); n != 0 {
			t.Errorf("own=%t: %d connections to the remote server", own, n)
		}
	}
}

// TestFederationLocationLoop: a Location whose target redirects in a loop ends with
// ErrTooManyRedirects after MaxRedirects hops, and is not asked for again.
func TestFederationLocationLoop(t *testing.T) {
	srv, key := fedServer(t, testserver.Behavior{Chain: []testserver.OriginName{testserver.OriginCDNTLS}, Loop: true}, testserver.FederationBehavior{Location: true})
	uri := srv.AddMedia([]byte("loop"), testserver.MediaOptions{})
	f := newFed(t, srv, key, mediaclient.FederationOptions{Options: mediaclient.Options{MaxRedirects: 3}})
	playPublic(t, f, srv, testserver.OriginCDNTLS)
	_, _, err := fedFetch(t, f, uri.String())
	if !errors.Is(err, mediaclient.ErrTooManyRedirects) {
		t.Fatalf("err = %v; want ErrTooManyRedirects", err)
	}
	if n := len(srv.RequestsTo(testserver.OriginCDNTLS)); n != 4 {
		t.Errorf("%d CDN requests; want the Location and 3 redirects", n)
	}
	checkSignedRequests(t, srv, 1)
}

// TestFederationMalformedAnswers: answers that are not the spec's multipart/mixed are ErrBadMultipart.
func TestFederationMalformedAnswers(t *testing.T) {
	for _, tc := range []struct {
		name string
		fb   testserver.FederationBehavior
		ok   bool
	}{
		{"no boundary", testserver.FederationBehavior{ContentType: "multipart/mixed"}, false},
		{"invalid boundary", testserver.FederationBehavior{ContentType: `multipart/mixed; boundary="ends with a space "`}, false},
		{"boundary too long", testserver.FederationBehavior{ContentType: "multipart/mixed; boundary=" + strings.Repeat("b", 71)}, false},
		{"another boundary than the body's", testserver.FederationBehavior{ContentType: "multipart/mixed; boundary=other"}, false},
		{"not multipart", testserver.FederationBehavior{ContentType: "application/octet-stream"}, false},
		{"metadata part of 64 KiB + 1", testserver.FederationBehavior{MetadataSize: 64<<10 + 1}, false},
		{"metadata part of 1 MiB", testserver.FederationBehavior{MetadataSize: 1 << 20}, false},
		{"metadata part of exactly 64 KiB", testserver.FederationBehavior{MetadataSize: 64 << 10}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, key := fedServer(t, testserver.Behavior{}, tc.fb)
			want := content(20_000, 5)
			uri := srv.AddMedia(want, testserver.MediaOptions{})
			f := newFed(t, srv, key, mediaclient.FederationOptions{})
			got, _, err := fedFetch(t, f, uri.String())
			if tc.ok {
				if err != nil || sum(got) != sum(want) {
					t.Fatalf("got %d bytes, %v", len(got), err)
				}
				return
			}
			if !errors.Is(err, mediaclient.ErrBadMultipart) {
				t.Fatalf("err = %v; want ErrBadMultipart", err)
			}
			checkSignedRequests(t, srv, 1) // never retried
		})
	}
}

// TestFederationRedirectForbidden: a top-level redirect from the federation endpoint is refused, and
// its target is never asked.
func TestFederationRedirectForbidden(t *testing.T) {
	srv, key := fedServer(t, testserver.Behavior{Chain: []testserver.OriginName{testserver.OriginCDNTLS}}, testserver.FederationBehavior{Redirect: true})
	uri := srv.AddMedia([]byte("x"), testserver.MediaOptions{})
	f := newFed(t, srv, key, mediaclient.FederationOptions{})
	playPublic(t, f, srv, testserver.OriginCDNTLS)
	_, _, err := fedFetch(t, f, uri.String())
	if !errors.Is(err, mediaclient.ErrRedirectRefused) || len(srv.RequestsTo(testserver.OriginCDNTLS)) != 0 {
		t.Fatalf("err = %v, CDN requests %d", err, len(srv.RequestsTo(testserver.OriginCDNTLS)))
	}
}

// TestFederationLocationReRequested: a Location that fails (an error status, a reset, an expired
// signed URL, a stall) is asked for again, once, through the federation endpoint, which hands out a
// fresh one; when that one fails too, the download fails with the target's error.
func TestFederationLocationReRequested(t *testing.T) {
	want := content(100_000, 6)
	cdn := []testserver.OriginName{testserver.OriginCDNTLS}
	for _, tc := range []struct {
		name  string
		b     testserver.Behavior
		opts  mediaclient.Options
		fails bool
	}{
		{"500 once", testserver.Behavior{Chain: cdn, Faults: []testserver.Fault{{At: testserver.RoleCDN, Status: 500, Count: 1}}}, mediaclient.Options{}, false},
		{"404 once", testserver.Behavior{Chain: cdn, Faults: []testserver.Fault{{At: testserver.RoleCDN, Status: 404, Count: 1}}}, mediaclient.Options{}, false},
		{"reset once", testserver.Behavior{Chain: cdn, Faults: []testserver.Fault{{At: testserver.RoleCDN, Reset: true, Count: 1}}}, mediaclient.Options{}, false},
		{"expired once", testserver.Behavior{Chain: cdn, ExpiredURLs: 1}, mediaclient.Options{}, false},
		{"no headers once", testserver.Behavior{Chain: cdn, Faults: []testserver.Fault{{At: testserver.RoleCDN, Stall: testserver.StallHeaders, Count: 1}}},
			mediaclient.Options{HeaderTimeout: stallWindow}, false},
		{"500 twice", testserver.Behavior{Chain: cdn, Faults: []testserver.Fault{{At: testserver.RoleCDN, Status: 500, Count: 2}}}, mediaclient.Options{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, key := fedServer(t, tc.b, testserver.FederationBehavior{Location: true})
			uri := srv.AddMedia(want, testserver.MediaOptions{})
			f := newFed(t, srv, key, mediaclient.FederationOptions{Options: tc.opts})
			playPublic(t, f, srv, testserver.OriginCDNTLS)
			got, m, err := fedFetch(t, f, uri.String())
			checkSignedRequests(t, srv, 2)
			if n := len(srv.RequestsTo(testserver.OriginCDNTLS)); n != 2 {
				t.Errorf("%d CDN requests; want 2", n)
			}
			if n := credentialsOffFederation(srv); n != 0 {
				t.Errorf("%d requests off the federation endpoint carried credentials", n)
			}
			if tc.fails {
				var he mautrix.HTTPError
				if !errors.As(err, &he) || he.Response == nil || he.Response.StatusCode != 500 {
					t.Fatalf("err = %v; want the CDN's 500", err)
				}
				return
			}
			if err != nil || sum(got) != sum(want) {
				t.Fatalf("got %d bytes, %v", len(got), err)
			}
			if s := steps(m.Hops()); !strings.HasPrefix(s, "request 200 creds, location ") || !strings.HasSuffix(s, "re-resolve 200 creds, location 200") {
				t.Errorf("hops %q", s)
			}
		})
	}
}

// TestFederationUnrecognized: a remote server without the federation media endpoints is asked on
// the legacy endpoint with allow_remote=false and no credential, and the client remembers it.
func TestFederationUnrecognized(t *testing.T) {
	srv, key := fedServer(t, testserver.Behavior{}, testserver.FederationBehavior{Unrecognized: true})
	want := content(30_000, 7)
	uri := srv.AddMedia(want, testserver.MediaOptions{Thumbnail: []byte("thumb")})
	f := newFed(t, srv, key, mediaclient.FederationOptions{})
	got, m, err := fedFetch(t, f, uri.String())
	if err != nil || sum(got) != sum(want) {
		t.Fatalf("got %d bytes, %v", len(got), err)
	}
	if m.API != mediaclient.APIV3 || fallbacks(m) != "federation media unrecognized" || m.FederationMetadata() != nil {
		t.Errorf("API %q, fallbacks %q", m.API, fallbacks(m))
	}
	reqs := srv.Requests()
	if len(reqs) != 2 || reqs[1].Path != "/_matrix/media/v3/download/remote.test/"+uri.FileID || reqs[1].Query().Get("allow_remote") != "false" || reqs[1].HasCredentials() {
		t.Fatalf("requests %v", reqs)
	}

	// Remembered: the next call goes to the legacy endpoint straight away, thumbnails too.
	srv.ResetLog()
	tm, err := f.Thumbnail(t.Context(), uri, mediaclient.ThumbnailOptions{Width: 32, Height: 32})
	if got, err := readAll(t, tm, err); err != nil || string(got) != "thumb" {
		t.Fatalf("thumbnail: %q, %v", got, err)
	}
	reqs = srv.Requests()
	if len(reqs) != 1 || reqs[0].Path != "/_matrix/media/v3/thumbnail/remote.test/"+uri.FileID || reqs[0].RawQuery != "width=32&height=32&allow_remote=false&timeout_ms=20000" {
		t.Errorf("requests %v", reqs)
	}
}

// TestFederationSizeLimit: the size limit holds for both answer forms, known early or not.
func TestFederationSizeLimit(t *testing.T) {
	for _, tc := range []struct {
		name string
		fb   testserver.FederationBehavior
	}{
		{"inline, length unknown", testserver.FederationBehavior{}},
		{"inline, part's Content-Length", testserver.FederationBehavior{PartContentLength: true}},
		{"location", testserver.FederationBehavior{Location: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, key := fedServer(t, testserver.Behavior{Chain: []testserver.OriginName{testserver.OriginCDNTLS}}, tc.fb)
			uri := srv.AddMedia(content(200_000, 1), testserver.MediaOptions{})
			f := newFed(t, srv, key, mediaclient.FederationOptions{Options: mediaclient.Options{MaxSize: 100_000}})
			playPublic(t, f, srv, testserver.OriginCDNTLS)
			got, _, err := fedFetch(t, f, uri.String())
			if !errors.Is(err, mediaclient.ErrTooLarge) || len(got) > 100_000 {
				t.Fatalf("got %d bytes, %v; want ErrTooLarge within the limit", len(got), err)
			}
		})
	}
}

// TestFederationResumed: a body that breaks or stalls is resumed through the federation endpoint —
// an inline answer is asked for whole and skipped forward, a Location (a fresh one) with Range.
func TestFederationResumed(t *testing.T) {
	want := content(300_000, 9)
	cdn := []testserver.OriginName{testserver.OriginCDNTLS}
	for _, tc := range []struct {
		name   string
		b      testserver.Behavior
		fb     testserver.FederationBehavior
		opts   mediaclient.Options
		ranged bool // the resume reaches a Location with Range
	}{
		{"inline truncated", testserver.Behavior{Faults: []testserver.Fault{{Truncate: true, TruncateAt: 120_000, Count: 1}}}, testserver.FederationBehavior{}, mediaclient.Options{}, false},
		{"inline stalled", testserver.Behavior{Faults: []testserver.Fault{{Stall: testserver.StallBody, StallAfter: 120_000, Count: 1}}}, testserver.FederationBehavior{},
			mediaclient.Options{StallTimeout: stallWindow}, false},
		{"location truncated", testserver.Behavior{Chain: cdn, Faults: []testserver.Fault{{At: testserver.RoleCDN, Truncate: true, TruncateAt: 120_000, Count: 1}}},
			testserver.FederationBehavior{Location: true}, mediaclient.Options{}, true},
		{"location stalled", testserver.Behavior{Chain: cdn, Faults: []testserver.Fault{{At: testserver.RoleCDN, Stall: testserver.StallBody, StallAfter: 120_000, Count: 1}}},
			testserver.FederationBehavior{Location: true}, mediaclient.Options{StallTimeout: stallWindow}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, key := fedServer(t, tc.b, tc.fb)
			uri := srv.AddMedia(want, testserver.MediaOptions{})
			f := newFed(t, srv, key, mediaclient.FederationOptions{Options: tc.opts})
			playPublic(t, f, srv, testserver.OriginCDNTLS)
			got, m, err := fedFetch(t, f, uri.String())
			if err != nil || sum(got) != sum(want) {
				t.Fatalf("got %d bytes, %v", len(got), err)
			}
			checkSignedRequests(t, srv, 2)
			if s := steps(m.Hops()); !strings.Contains(s, "resume 200 creds") {
				t.Errorf("hops %q; want a resume through the federation endpoint", s)
			}
			if tc.ranged {
				cdnReqs := srv.RequestsTo(testserver.OriginCDNTLS)
				if len(cdnReqs) != 2 || cdnReqs[1].Header.Get("Range") != "bytes=120000-" || cdnReqs[1].Status != http.StatusPartialContent {
					t.Errorf("CDN requests %v", cdnReqs)
				}
			}
			if n := credentialsOffFederation(srv); n != 0 {
				t.Errorf("%d requests off the federation endpoint carried credentials", n)
			}
		})
	}
}

// TestFederationUnknownKey: the test server checks signatures: a key it does not know is refused,
// and the error is the remote server's 401.
func TestFederationUnknownKey(t *testing.T) {
	srv, _ := fedServer(t, testserver.Behavior{}, testserver.FederationBehavior{})
	uri := srv.AddMedia([]byte("x"), testserver.MediaOptions{})
	f := newFed(t, srv, federation.GenerateSigningKey(), mediaclient.FederationOptions{})
	_, _, err := fedFetch(t, f, uri.String())
	var he mautrix.HTTPError
	if !errors.As(err, &he) || he.RespError == nil || he.RespError.ErrCode != "M_UNAUTHORIZED" {
		t.Fatalf("err = %v; want 401 M_UNAUTHORIZED", err)
	}
	if strings.Contains(err.Error(), "X-Matrix") || (he.Request != nil && he.Request.Header.Get("Authorization") != "") {
		t.Errorf("the error carries the signature: %v", err)
	}
}

// TestFederationDialOverride: a discovery result whose address differs from its host (an SRV
// target) is reached by address, while the request names the host (TLS and Host header). The
// remote server listens on 127.0.0.2, where the host, localhost, does not lead. The Host header is
// the bare host name, without the SRV target's port, as the spec's server discovery says.
func TestFederationDialOverride(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Skipf("no second loopback address here: %v", err)
	}
	addr := l.Addr().String()
	l.Close()
	srv := testserver.New(t, testserver.Config{TLS: true, ServerName: "remote.test", Addr: addr})
	key := federation.GenerateSigningKey()
	if err := srv.TrustServerKeys(key.GenerateKeyResponse(originName, nil)); err != nil {
		t.Fatal(err)
	}
	want := content(5000, 1)
	uri := srv.AddMedia(want, testserver.MediaOptions{})
	port := strconv.Itoa(portOf(t, srv.URL))
	f := newFed(t, srv, key, mediaclient.FederationOptions{AllowPrivateServers: true,
		ResolveServer: func(_ context.Context, name string) (*federation.ResolvedServerName, error) {
			return &federation.ResolvedServerName{ServerName: name, HostHeader: "localhost", IPPort: []string{"127.0.0.2:" + port}}, nil
		}})
	got, m, err := fedFetch(t, f, uri.String())
	if err != nil || sum(got) != sum(want) {
		t.Fatalf("got %d bytes, %v", len(got), err)
	}
	if o := m.Hops()[0].Origin; o != "https://localhost:"+port {
		t.Errorf("origin %q", o)
	}
	if reqs := federationRequests(srv); len(reqs) != 1 || reqs[0].Origin != "https://localhost" {
		t.Errorf("requests %v; want one with the Host header localhost", reqs)
	}
}

// TestFederationDiscovery: with no ResolveServer, the server name goes through mautrix's server
// discovery (here an IP literal with a port, which needs no DNS).
func TestFederationDiscovery(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	srv := testserver.New(t, testserver.Config{TLS: true, Addr: addr, ServerName: addr})
	key := federation.GenerateSigningKey()
	if err := srv.TrustServerKeys(key.GenerateKeyResponse(originName, nil)); err != nil {
		t.Fatal(err)
	}
	want := content(5000, 2)
	uri := srv.AddMedia(want, testserver.MediaOptions{})
	f, err := mediaclient.NewFederationClient(mediaclient.FederationOptions{ServerName: originName, Key: key, AllowPrivateServers: true})
	if err != nil {
		t.Fatal(err)
	}
	mediaclient.FederationTransport(f).TLSClientConfig = &tls.Config{RootCAs: srv.CertPool()}
	defer f.CloseIdleConnections()
	m, err := f.Download(t.Context(), uri)
	if got, err := readAll(t, m, err); err != nil || sum(got) != sum(want) {
		t.Fatalf("got %d bytes, %v", len(got), err)
	}
	if reqs := srv.Requests(); len(reqs) != 1 || federation.ParseXMatrixAuth(reqs[0].Header.Get("Authorization")).Destination != addr {
		t.Errorf("requests %v", reqs)
	}
}

// TestNewFederationClientOptions: options that have no meaning for federation are refused.
func TestNewFederationClientOptions(t *testing.T) {
	key := federation.GenerateSigningKey()
	for _, tc := range []struct {
		name string
		opts mediaclient.FederationOptions
	}{
		{"no server name", mediaclient.FederationOptions{Key: key}},
		{"bad server name", mediaclient.FederationOptions{ServerName: "a/b", Key: key}},
		{"no key", mediaclient.FederationOptions{ServerName: originName}},
		{"access token", mediaclient.FederationOptions{ServerName: originName, Key: key, Options: mediaclient.Options{AccessToken: "t"}}},
		{"client guard opt-out", mediaclient.FederationOptions{ServerName: originName, Key: key, Options: mediaclient.Options{AllowPrivateRedirects: true}}},
		{"credential headers", mediaclient.FederationOptions{ServerName: originName, Key: key, Options: mediaclient.Options{Header: http.Header{"Cookie": {"a"}}}}},
	} {
		if _, err := mediaclient.NewFederationClient(tc.opts); !errors.Is(err, mediaclient.ErrInvalidArgument) {
			t.Errorf("%s: err = %v; want ErrInvalidArgument", tc.name, err)
		}
	}
	f, err := mediaclient.NewFederationClient(mediaclient.FederationOptions{ServerName: originName, Key: key})
	if err != nil {
		t.Fatal(err)
	}
	uri, _ := mediaclient.ParseURI("mxc://remote.test/abc")
	if _, err := f.Download(t.Context(), uri, mediaclient.DownloadOptions{FileName: "a.png"}); !errors.Is(err, mediaclient.ErrInvalidArgument) {
		t.Errorf("file name: err = %v; want ErrInvalidArgument", err)
	}
}

// TestFederationHostHeader: every request to the remote server's origin — the federation request, a
// Location on that origin, the legacy endpoint — carries server discovery's Host: the bare host
// name when the server name (or its delegation) gave no port, as for an SRV target or the default
// 8448, and host:port when it did.
func TestFederationHostHeader(t *testing.T) {
	var r *hostileRemote
	r = newHostileRemote(t, routes(map[string]http.HandlerFunc{
		fedPath:  func(w http.ResponseWriter, _ *http.Request) { writeMultipart(w, "Location: /media\r\n") },
		"/media": func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "located") },
		"/_matrix/federation/v1/media/download/old":  unrecognized,
		"/_matrix/media/v3/download/remote.test/old": func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "legacy") },
	}))
	for _, hostHeader := range []string{"localhost", "localhost:" + strconv.Itoa(r.port())} {
		t.Run(hostHeader, func(t *testing.T) {
			before := len(r.requests())
			tr := mediaclient.NewFederationTransport()
			tr.TLSClientConfig = &tls.Config{RootCAs: certPool(r.ts), ServerName: "example.com"}
			f := hostileFed(t, r, mediaclient.FederationOptions{Options: mediaclient.Options{Transport: tr},
				ResolveServer: func(_ context.Context, name string) (*federation.ResolvedServerName, error) {
					// The host name, localhost, is reached at an address of its own (an SRV target).
					return &federation.ResolvedServerName{ServerName: name, HostHeader: hostHeader, IPPort: []string{r.hostPort()}}, nil
				}})
			for _, c := range []struct{ id, want string }{{"abc", "located"}, {"old", "legacy"}} {
				md, err := f.Download(t.Context(), mustURI(t, "mxc://remote.test/"+c.id))
				if got, err := readAll(t, md, err); err != nil || string(got) != c.want {
					t.Fatalf("%s: got %q, %v; want %q", c.id, got, err, c.want)
				}
			}
			reqs := r.requests()[before:]
			if len(reqs) != 4 {
				t.Errorf("requests %+v; want the federation request, the Location, and both for the legacy one", reqs)
			}
			for _, q := range reqs {
				if q.Host != hostHeader {
					t.Errorf("%s: Host %q; want %q", q.Path, q.Host, hostHeader)
				}
			}
		})
	}
}

// TestFederationTransportAndDialOverride: when server discovery's address (an SRV target) differs
// from the host name, NewFederationTransport (here a Clone of it) connects to the address, and only
// the address is checked: the host name, which leads to loopback, does not matter. A transport
// whose dialer is another (here wrapped) connects to the host name: both are checked, and the host
// name is refused before any connection.
func TestFederationTransportAndDialOverride(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Skipf("no second loopback address here: %v", err)
	}
	addr := l.Addr().String()
	l.Close()
	srv := testserver.New(t, testserver.Config{TLS: true, ServerName: "remote.test", Addr: addr})
	key := federation.GenerateSigningKey()
	if err := srv.TrustServerKeys(key.GenerateKeyResponse(originName, nil)); err != nil {
		t.Fatal(err)
	}
	want := content(3000, 4)
	uri := srv.AddMedia(want, testserver.MediaOptions{})
	for _, tc := range []struct {
		name    string
		wrapped bool
	}{{"NewFederationTransport", false}, {"another dialer", true}} {
		t.Run(tc.name, func(t *testing.T) {
			tr := mediaclient.NewFederationTransport().Clone()
			tr.TLSClientConfig = &tls.Config{RootCAs: srv.CertPool()}
			dialed := func() []string { return nil }
			if tc.wrapped {
				dialed = dialLog(tr)
			}
			f := newFedAsIs(t, srv, key, mediaclient.FederationOptions{Options: mediaclient.Options{Transport: tr, MaxRetries: -1},
				ResolveServer: func(_ context.Context, name string) (*federation.ResolvedServerName, error) {
					return &federation.ResolvedServerName{ServerName: name, HostHeader: "localhost", IPPort: []string{addr}}, nil
				}})
			mediaclient.SetFederationClassifier(f, func(ap netip.AddrPort) string {
				if ap.Addr() == netip.MustParseAddr("127.0.0.2") {
					return "public"
				}
				return mediaclient.Classify(ap)
			})
			before := len(srv.Requests())
			got, _, err := fedFetch(t, f, uri.String())
			if !tc.wrapped {
				if err != nil || sum(got) != sum(want) {
					t.Fatalf("got %d bytes, %v; want the media from %s", len(got), err, addr)
				}
				return
			}
			if !errors.Is(err, mediaclient.ErrPrivateAddress) {
				t.Errorf("err = %v; want ErrPrivateAddress for localhost", err)
			}
			if d := dialed(); len(d) != 0 || len(srv.Requests()) != before {
				t.Errorf("dials %v, %d requests; want none", d, len(srv.Requests())-before)
			}
		})
	}
}

// TestFederationForeignTransportStillWorks: a transport of the caller's own, which connects to the
// host name rather than to server discovery's address, reaches the remote server when both are
// allowed (here the port is played public, whatever the address).
func TestFederationForeignTransportStillWorks(t *testing.T) {
	r := newHostileRemote(t, routes(map[string]http.HandlerFunc{
		fedPath: func(w http.ResponseWriter, _ *http.Request) { writeMultipart(w, "Content-Length: 6\r\n\r\ninline") },
	}))
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: certPool(r.ts), ServerName: "example.com"}}
	t.Cleanup(tr.CloseIdleConnections)
	f := hostileFed(t, r, mediaclient.FederationOptions{Options: mediaclient.Options{Transport: tr},
		ResolveServer: func(_ context.Context, name string) (*federation.ResolvedServerName, error) {
			return &federation.ResolvedServerName{ServerName: name, HostHeader: "localhost", IPPort: []string{"127.0.0.2:" + strconv.Itoa(r.port())}}, nil
		}})
	md, err := f.Download(t.Context(), mustURI(t, "mxc://remote.test/abc"))
	if got, err := readAll(t, md, err); err != nil || string(got) != "inline" {
		t.Fatalf("got %q, %v", got, err)
	}
}

// TestFederationHeadWithinHeaderTimeout: the head of a federation answer is part of waiting for the
// answer: dripped so that no read waits long (and with no low-speed limit), it must still be whole
// within HeaderTimeout.
func TestFederationHeadWithinHeaderTimeout(t *testing.T) {
	srv, key := fedServer(t, testserver.Behavior{Faults: []testserver.Fault{{Drip: 1, DripEvery: 2 * time.Millisecond, Count: 1}}},
		testserver.FederationBehavior{MetadataSize: 400})
	uri := srv.AddMedia(content(1000, 1), testserver.MediaOptions{})
	f := newFed(t, srv, key, mediaclient.FederationOptions{Options: mediaclient.Options{HeaderTimeout: 100 * time.Millisecond, MaxRetries: -1}})
	m, err := f.Download(t.Context(), uri)
	if err == nil {
		m.Close()
		t.Fatal("Download returned a Media after a head dripped for longer than HeaderTimeout")
	}
	if !errors.Is(err, mediaclient.ErrStalled) {
		t.Errorf("err = %v; want ErrStalled", err)
	}
}
