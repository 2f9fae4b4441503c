package mediaclient_test

// A second round of attacks on the contract, where the first did not go deep: the fallback loop and
// what a Client remembers, the private-address guard, URL building, credentials on every kind of
// hop, redirect statuses, the trace hooks, retries and time. The first part holds one test per
// defect (each failed before its fix), most severe first; the second part, after
// the marker, holds properties that were attacked and held.
//
// Every test that talks to the test server ends by checking its request log: no credential reached
// an origin other than the homeserver's (noCredentialsOffHome).

import (
	"context"
	"errors"
	"io"

	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto/attachment"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mxfetch/mxfetch/internal/leakcheck"
	"github.com/mxfetch/mxfetch/mediaclient"
	"github.com/mxfetch/mxfetch/testserver"
)

// noCredentialsOffHome fails t if any request the test server logged at an origin other than the
// homeserver's carried Authorization, Cookie, Proxy-Authorization or one of extra.
func noCredentialsOffHome(t *testing.T, srv *testserver.Server, extra ...string) {
	t.Helper()
	home := srv.Origin(testserver.OriginHomeserver)
	for _, r := range srv.Requests() {
		if r.Origin == home {
			continue
		}
		if r.HasCredentials() {
			t.Errorf("%s %s received a credential (Authorization %q, Cookie %q, Proxy-Authorization %q)",
				r.Origin, r.Path, r.Header.Get("Authorization"), r.Header.Get("Cookie"), r.Header.Get("Proxy-Authorization"))
		}
		for _, h := range extra {
			if r.Header.Get(h) != "" {
				t.Errorf("%s %s received %s", r.Origin, r.Path, h)
			}
		}
	}
}

// classifyPorts makes c class the addresses on the given ports as given, and every other address as
// it really is.
func classifyPorts(c *mediaclient.Client, classes map[int]string) {
	mediaclient.SetClassifier(c, func(ap netip.AddrPort) string {
		if cls, ok := classes[int(ap.Port())]; ok {
			return cls
		}
		return mediaclient.Classify(ap)
	})
}

// portOf returns the port of a base URL.
func portOf(t testing.TB, base string) int {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	p, err := strconv.Atoi(u.Port())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// ---------------------------------------------------------------------------------------------
// Defects: each test below fails on the code it attacks.
// ---------------------------------------------------------------------------------------------

// TestAttack2PublicHopStepsIntoPrivate: rule 5 — "a redirect may not step from a public address down
// into loopback, private or link-local space; a homeserver that itself lives on such an address may
// redirect within it". A homeserver on a private address redirects to a CDN on a public address
// (an object store on the internet); that CDN redirects back into private space, to another origin of
// the homeserver's network. That second step goes from public down into private and must be refused:
// the guard compares each target with the homeserver's class only, never with the class of the hop
// that sent the redirect, so any public server in a chain can steer the client into the LAN the
// homeserver lives in.
func TestAttack2PublicHopStepsIntoPrivate(t *testing.T) {
	for _, own := range []bool{false, true} {
		name := "pre-checked"
		if own {
			name = "dialer"
		}
		t.Run(name, func(t *testing.T) {
			// home (private) → cdn (public) → cdn-host (the homeserver's listener as "localhost": private)
			b := testserver.Behavior{V1Redirect: testserver.Always, Chain: []testserver.OriginName{testserver.OriginCDN, testserver.OriginCDNHost}}
			srv := testserver.New(t, testserver.Config{Behavior: &b})
			uri := srv.AddMedia([]byte("lan"), testserver.MediaOptions{})
			opts := mediaclient.Options{API: mediaclient.APIV1, MaxRetries: -1}
			if own {
				opts.Transport = nil
			}
			c := newClientTransport(t, srv, opts, own)
			t.Cleanup(c.CloseIdleConnections)
			classifyPorts(c, map[int]string{
				portOf(t, srv.URL):                          "private",
				portOf(t, srv.Origin(testserver.OriginCDN)): "public",
			})
			_, _, err := fetch(t, c, uri)
			if !errors.Is(err, mediaclient.ErrPrivateAddress) {
				t.Errorf("err = %v, cdn-host requests %d; want ErrPrivateAddress for the public CDN's redirect into private space",
					err, len(srv.RequestsTo(testserver.OriginCDNHost)))
			}
			noCredentialsOffHome(t, srv)
		})
	}
}

// TestAttack2SpecialIsNotOneNetwork: rule 5. "special" is not a network but a bag of unrelated
// ranges: 0.0.0.0/8 ("this host": connecting to 0.0.0.0 reaches the machine's own listeners),
// 198.18.0.0/15 (which "fake-IP" DNS of VPN clients hands out for every name), 64:ff9b::/96 (NAT64:
// what DNS64 gives an IPv6-only client for every IPv4-only host), 240/4, … A homeserver reached
// through such an address is "special", and then every other special address counts as "within"
// its class: a redirect to http://0.0.0.0:port/ is followed and reaches the client's loopback
// services. The same loopback service is refused when named 127.0.0.1.
func TestAttack2SpecialIsNotOneNetwork(t *testing.T) {
	b := testserver.Behavior{V1Redirect: testserver.Always}
	srv := testserver.New(t, testserver.Config{Behavior: &b})
	uri := srv.AddMedia([]byte("local service"), testserver.MediaOptions{})
	signed := srv.SignedURL(testserver.OriginCDN, uri.FileID)
	for _, host := range []string{"127.0.0.1", "0.0.0.0"} {
		t.Run(host, func(t *testing.T) {
			srv.ResetLog()
			loc := strings.Replace(signed, "127.0.0.1", host, 1)
			bb := b
			bb.Location = &loc
			srv.SetBehavior(bb)
			c := newClient(t, srv, mediaclient.Options{API: mediaclient.APIV1, MaxRetries: -1})
			// The homeserver as a NAT64 or fake-IP client sees it; the target keeps its real class.
			classifyPorts(c, map[int]string{portOf(t, srv.URL): "special"})
			got, _, err := fetch(t, c, uri)
			if !errors.Is(err, mediaclient.ErrPrivateAddress) {
				t.Errorf("redirect to %s followed: %q, %v after %d requests; want ErrPrivateAddress (it reaches this host's loopback)",
					loc[:strings.Index(loc, "/_cdn")], got, err, len(srv.Requests()))
			}
			noCredentialsOffHome(t, srv)
		})
	}
}

// TestAttack2ThumbnailErrorSwitchesParamOff: rule 2 and the spec's errors: a thumbnail's 400 M_UNKNOWN
// is how servers say "bad thumbnail request" (a size or a media they cannot thumbnail now), not only
// how matrix-media-repo rejects a non-boolean allow_redirect. The client takes it for a rejected
// parameter, asks again without it and, when that answer is anything but the same 400, remembers
// for the whole Client that the homeserver refuses allow_redirect: from then on no download of that
// Client asks to be redirected, and a homeserver that redirects only when asked (matrix-media-repo)
// serves every byte itself.
func TestAttack2ThumbnailErrorSwitchesParamOff(t *testing.T) {
	b := testserver.Behavior{V3Redirect: testserver.WhenAsked, Param: testserver.ParamBoolean,
		Faults: []testserver.Fault{{Count: 1, Status: http.StatusBadRequest}}} // one bad thumbnail answer
	srv, c := setup(t, testserver.Config{Behavior: &b}, mediaclient.Options{API: mediaclient.APIV3})
	uri := srv.AddMedia(content(10_000, 1), testserver.MediaOptions{Thumbnail: content(500, 2)})
	m, err := c.Thumbnail(t.Context(), uri, mediaclient.ThumbnailOptions{Width: 32, Height: 32})
	if err == nil {
		io.Copy(io.Discard, m)
		m.Close()
	}
	srv.ResetLog()
	if _, _, err := fetch(t, c, uri); err != nil {
		t.Fatal(err)
	}
	first := srv.Requests()[0]
	if !first.Query().Has("allow_redirect") || len(srv.RequestsTo(testserver.OriginCDN)) != 1 {
		t.Errorf("after one thumbnail's 400 M_UNKNOWN the next download asks %s?%s and is not redirected: the Client stopped sending allow_redirect",
			first.Path, first.RawQuery)
	}
	noCredentialsOffHome(t, srv)
}

// TestAttack2UnreachableTargetNoFallback: rule 6 and Fallback's own words — on media v3 a redirect
// target that refused the request or "kept failing" leads to one plain request without
// allow_redirect, which the spec obliges the homeserver to answer with the bytes. Only failing
// *statuses* counted before the fix: a CDN that resets every connection (or is unreachable, or loops), after
// the retries, ends the download with an error although the homeserver was never asked plainly.
func TestAttack2UnreachableTargetNoFallback(t *testing.T) {
	want := content(20_000, 4)
	for _, tc := range []struct {
		name string
		b    testserver.Behavior
	}{
		{"CDN resets every connection", testserver.Behavior{V3Redirect: testserver.WhenAsked, Faults: []testserver.Fault{{At: testserver.RoleCDN, Reset: true}}}},
		{"CDN stalls before headers", testserver.Behavior{V3Redirect: testserver.WhenAsked, Faults: []testserver.Fault{{At: testserver.RoleCDN, Stall: testserver.StallHeaders}}}},
		{"CDN loops", testserver.Behavior{V3Redirect: testserver.WhenAsked, Chain: []testserver.OriginName{testserver.OriginCDN, testserver.OriginCDNNamed}, Loop: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.b
			srv, c := setup(t, testserver.Config{Behavior: &b}, mediaclient.Options{API: mediaclient.APIV3, MaxRetries: 1, HeaderTimeout: stallWindow})
			uri := srv.AddMedia(want, testserver.MediaOptions{})
			got, m, err := fetch(t, c, uri)
			if err != nil || !sameBytes(got, want) {
				plain := 0
				for _, r := range srv.RequestsTo(testserver.OriginHomeserver) {
					if !r.Query().Has("allow_redirect") {
						plain++
					}
				}
				t.Errorf("v3 download failed: %v (%d plain requests to the homeserver); want the bytes from a plain request", err, plain)
			} else if fallbacks(m) == "" {
				t.Errorf("no fallback recorded")
			}
			noCredentialsOffHome(t, srv)
		})
	}
}

// TestAttack2NAT64TargetRefused: rule 5 refuses steps into loopback, private and link-local space;
// the well-known NAT64 prefix 64:ff9b::/96 is globally reachable (IANA's special-purpose registry
// says so): 64:ff9b::808:808 is 8.8.8.8 seen from an IPv6-only network with DNS64, as every
// IPv4-only CDN (S3's default endpoints) is. The guard classes the whole prefix "special" without
// looking at the IPv4 address inside, so a client on such a network with a homeserver reachable
// over IPv6 has every redirect to an IPv4-only CDN refused (on client v1 the download fails). The
// embedded address should decide, as it does for IPv4-mapped addresses. (Checked on the classes
// alone: a test must not connect beyond loopback.)
func TestAttack2NAT64TargetRefused(t *testing.T) {
	for addr, want := range map[string]string{
		"64:ff9b::808:808":   "public",   // 8.8.8.8
		"64:ff9b::7f00:1":    "loopback", // 127.0.0.1
		"64:ff9b::a00:1":     "private",  // 10.0.0.1
		"64:ff9b::a9fe:a9fe": "link-local",
	} {
		if got := mediaclient.Classify(netip.AddrPortFrom(netip.MustParseAddr(addr), 443)); got != want {
			t.Errorf("Classify(%s) = %s; want %s (the IPv4 address it translates to)", addr, got, want)
		}
	}
}

// TestAttack2NonMediaSuccessStatus: rule 9 — success means the media's bytes. Every 2xx is taken
// for the media: a 202 Accepted (a server or CDN that is still preparing the object, with a JSON
// status body) is delivered as the media's content, and a 204 No Content as an empty media, both
// with a nil error. Only 200 and 206 (and 203, a proxy's copy of a 200) carry the representation.
func TestAttack2NonMediaSuccessStatus(t *testing.T) {
	for _, status := range []int{http.StatusAccepted, http.StatusNoContent, http.StatusResetContent} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(status)
				w.Write([]byte(`{"status":"processing"}`))
			}))
			defer hs.Close()
			c := hostileClient(t, hs.URL, mediaclient.Options{})
			got, _, err := fetch(t, c, hostileURI)
			if err == nil {
				t.Errorf("%d taken for the media: %d bytes %q, nil error; want ErrUnexpectedStatus", status, len(got), got)
			}
		})
	}
}

// TestAttack2TraceCalledAfterReturn: Trace's contract — "each hook is called in the goroutine that
// runs the download". The /versions request runs in a goroutine of its own (shared by the callers
// that wait for it) with the first caller's context values, Trace included, and it outlives a caller
// whose context ends: the caller's Hop hook is then called from another goroutine after Download has
// returned, racing with whatever the caller does with what its hook collected.
func TestAttack2TraceCalledAfterReturn(t *testing.T) {
	release := make(chan struct{})
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/_matrix/client/versions" {
			select {
			case <-release:
			case <-r.Context().Done():
			}
			w.Write([]byte(`{"versions":["v1.11"]}`))
			return
		}
		w.Write([]byte("bytes"))
	}))
	defer hs.Close()
	c := hostileClient(t, hs.URL, mediaclient.Options{API: mediaclient.APIAuto, AccessToken: "t"})
	var returned atomic.Bool
	late := make(chan mediaclient.Hop, 4)
	ctx := mediaclient.WithTrace(t.Context(), &mediaclient.Trace{Hop: func(h mediaclient.Hop) {
		if returned.Load() {
			late <- h
		}
	}})
	ctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	_, err := c.Download(ctx, hostileURI)
	returned.Store(true)
	if err == nil {
		t.Log("Download succeeded on v3 while /versions hung")
	}
	close(release)
	select {
	case h := <-late:
		t.Errorf("the caller's Trace.Hop was called after Download returned, from another goroutine: %s %s%s", h.Step, h.Origin, h.Path)
	case <-time.After(500 * time.Millisecond):
	}
}

// TestAttack2CancelledCallStillAsksVersions: context cancellation before anything is sent. A call
// whose context is already cancelled returns context.Canceled, but first starts the /versions
// request, which runs on without it (and reports its hop to the caller's Trace after the call
// returned: TestAttack2TraceCalledAfterReturn). A cancelled call must send nothing.
func TestAttack2CancelledCallStillAsksVersions(t *testing.T) {
	asked := make(chan string, 8)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked <- r.URL.Path
		w.Write([]byte(`{"versions":["v1.11"]}`))
	}))
	defer hs.Close()
	c := hostileClient(t, hs.URL, mediaclient.Options{API: mediaclient.APIAuto, AccessToken: "t"})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := c.Download(ctx, hostileURI)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v; want context.Canceled", err)
	}
	select {
	case p := <-asked:
		t.Errorf("a call cancelled before it started sent %s", p)
	case <-time.After(300 * time.Millisecond):
	}
}

// TestAttack2VersionsLosesPathPrefix: rule 1 — "the homeserver base URL may carry a path prefix".
// Downloads keep the prefix as written (escapes included); /versions is built from the unescaped path
// with RawPath dropped, so a prefix with an escaped character ("/matrix%2Fhs", which a reverse proxy
// routes on as written) is asked at another path ("/matrix/hs/…"): the capability check goes to a
// place the downloads never go, fails, and the Client uses media v3 for the next 30 s.
func TestAttack2VersionsLosesPathPrefix(t *testing.T) {
	var mu sync.Mutex
	var paths []string
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		paths = append(paths, r.URL.EscapedPath())
		mu.Unlock()
		switch r.URL.EscapedPath() {
		case "/matrix%2Fhs/_matrix/client/versions":
			w.Write([]byte(`{"versions":["v1.11"]}`))
		case "/matrix%2Fhs/_matrix/client/v1/media/download/example.org/hostile":
			w.Write([]byte("v1 bytes"))
		default:
			http.NotFound(w, r)
		}
	}))
	defer hs.Close()
	c := hostileClient(t, hs.URL+"/matrix%2Fhs", mediaclient.Options{API: mediaclient.APIAuto, AccessToken: "t"})
	got, m, err := fetch(t, c, hostileURI)
	mu.Lock()
	defer mu.Unlock()
	if err != nil || string(got) != "v1 bytes" || m.API != mediaclient.APIV1 {
		t.Errorf("got %q, %v; paths asked %v; want /versions and the download under the same prefix", got, err, paths)
	}
}

// TestAttack2InvalidHeaderValuesRetried: New refuses a line break in the token or in Options.Header,
// but not in UserAgent, and no other character that net/http refuses (NUL and other controls in the
// token, a space in a header name). Such a Client fails every call with a transport error that is
// not ErrInvalidArgument, after the whole retry budget: with the default backoff, each call sleeps
// about 7.5 s (0.5+1+2+4) before it reports a configuration error that New could have reported.
func TestAttack2InvalidHeaderValuesRetried(t *testing.T) {
	for name, o := range map[string]mediaclient.Options{
		"user agent with a line break": {UserAgent: "bot\r\nX-Injected: 1"},
		"token with NUL":               {AccessToken: "tok\x00en"},
		"header name with a space":     {Header: http.Header{"X Trace": {"1"}}},
		"header value with a control":  {Header: http.Header{"X-Trace": {"a\x01b"}}},
	} {
		t.Run(name, func(t *testing.T) {
			o.HomeserverURL = "http://127.0.0.1:1"
			_, err := mediaclient.New(o)
			if !errors.Is(err, mediaclient.ErrInvalidArgument) {
				t.Errorf("New = %v; want ErrInvalidArgument (every request of this Client fails, after the retries)", err)
			}
		})
	}
}

// ---------------------------------------------------------------------------------------------
// Properties that were attacked and held.
// ---------------------------------------------------------------------------------------------

// TestHolds2RedirectStatuses: rule 3. 301, 302 and 303 (with a body, large or not) are followed as
// GET without the credentials; 300, 304, 305 and 399 are ErrUnexpectedStatus after one request,
// neither followed nor retried.
func TestHolds2RedirectStatuses(t *testing.T) {
	for _, status := range []int{301, 302, 303, 300, 304, 305, 399} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			var mu sync.Mutex
			var log []string
			var target *httptest.Server
			target = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				log = append(log, r.Method+" target auth="+r.Header.Get("Authorization"))
				mu.Unlock()
				w.Write([]byte("moved"))
			}))
			defer target.Close()
			hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				log = append(log, r.Method+" home")
				mu.Unlock()
				w.Header().Set("Location", target.URL+"/object?sig=secret")
				if status == 304 {
					w.WriteHeader(status)
					return
				}
				w.Header().Set("Content-Length", "100000")
				w.WriteHeader(status)
				w.Write(make([]byte, 100000))
			}))
			defer hs.Close()
			c := hostileClient(t, hs.URL, mediaclient.Options{AccessToken: "t"})
			got, _, err := fetch(t, c, hostileURI)
			mu.Lock()
			defer mu.Unlock()
			if status <= 303 && status != 300 {
				if err != nil || string(got) != "moved" || strings.Join(log, ",") != "GET home,GET target auth=" {
					t.Errorf("got %q, %v, requests %v", got, err, log)
				}
				return
			}
			if !errors.Is(err, mediaclient.ErrUnexpectedStatus) || len(log) != 1 || strings.Contains(err.Error(), "secret") {
				t.Errorf("err = %v, requests %v; want ErrUnexpectedStatus after one request", err, log)
			}
		})
	}
}

// TestHolds2QueryCannotOverride: the caller's extra query parameters (DownloadOptions.Query,
// ThumbnailOptions.Query, the wrapper's DownloadWithParams) cannot override allow_redirect,
// timeout_ms or a thumbnail's size, not even through a value holding "&"; the wrapper's
// DownloadThumbnail takes height before width as mautrix does; a path prefix is kept. (A caller's
// allow_redirect=false is the one value honoured, as asked: TestAttack3CallerAllowRedirectFalse;
// any other value of it is ignored.)
func TestHolds2QueryCannotOverride(t *testing.T) {
	b := testserver.Behavior{}
	srv, c := setup(t, testserver.Config{Behavior: &b}, mediaclient.Options{API: mediaclient.APIV3})
	uri := srv.AddMedia([]byte("q"), testserver.MediaOptions{Thumbnail: []byte("t")})
	hostile := url.Values{"allow_redirect": {"0"}, "timeout_ms": {"1"}, "width": {"1"}, "height": {"1"}, "x": {"1&allow_redirect=false&timeout_ms=1"}}
	m, err := c.Download(t.Context(), uri, mediaclient.DownloadOptions{Query: hostile})
	if _, err := readAll(t, m, err); err != nil {
		t.Fatal(err)
	}
	m, err = c.Thumbnail(t.Context(), uri, mediaclient.ThumbnailOptions{Width: 32, Height: 24, Query: hostile})
	if _, err := readAll(t, m, err); err != nil {
		t.Fatal(err)
	}
	for i, r := range srv.Requests() {
		q := r.Query()
		if q["allow_redirect"][0] != "true" || len(q["allow_redirect"]) != 1 || len(q["timeout_ms"]) != 1 || q.Get("timeout_ms") != "20000" || q.Get("x") != "1&allow_redirect=false&timeout_ms=1" {
			t.Errorf("request %d: query %s", i, r.RawQuery)
		}
		if i == 1 && (q.Get("width") != "32" || q.Get("height") != "24" || len(q["width"]) != 1) {
			t.Errorf("thumbnail query %s", r.RawQuery)
		}
	}
}

// TestHolds2RetryAfterForms: Retry-After in seconds, as an HTTP date, huge, negative or malformed,
// and retry_after_ms, never make a call wait longer than MaxRetryAfter (or the backoff).
func TestHolds2RetryAfterForms(t *testing.T) {
	for name, f := range map[string]testserver.Fault{
		"huge seconds":   {Count: 2, Status: 429, RetryAfter: "999999999999"},
		"far date":       {Count: 2, Status: 503, RetryAfter: time.Now().Add(24 * time.Hour).UTC().Format(http.TimeFormat)},
		"past date":      {Count: 2, Status: 429, RetryAfter: "Mon, 01 Jan 2001 00:00:00 GMT"},
		"negative":       {Count: 2, Status: 429, RetryAfter: "-5"},
		"malformed":      {Count: 2, Status: 503, RetryAfter: "soon"},
		"retry_after_ms": {Count: 2, Status: 429, RetryAfterMS: 1 << 30},
	} {
		t.Run(name, func(t *testing.T) {
			b := testserver.Behavior{Faults: []testserver.Fault{f}}
			srv, c := setup(t, testserver.Config{Behavior: &b}, mediaclient.Options{API: mediaclient.APIV3, MaxRetryAfter: 20 * time.Millisecond})
			uri := srv.AddMedia([]byte("later"), testserver.MediaOptions{})
			start := time.Now()
			got, _, err := fetch(t, c, uri)
			if el := time.Since(start); err != nil || string(got) != "later" || el > 2*time.Second {
				t.Errorf("got %q, %v after %v", got, err, el)
			}
		})
	}
}

// TestHolds2CacheUnderConcurrency: many goroutines download the same media whose 308 target is
// remembered while that target fails (500s, then an expired URL): every one gets the exact bytes,
// no credential reaches the CDN, and the race detector stays quiet.
func TestHolds2CacheUnderConcurrency(t *testing.T) {
	want := content(60_000, 5)
	b := testserver.Behavior{V3Redirect: testserver.Always, Redirect: http.StatusPermanentRedirect}
	srv, c := setup(t, testserver.Config{Behavior: &b}, mediaclient.Options{API: mediaclient.APIV3, Header: http.Header{"Cookie": {"c=1"}}})
	uri := srv.AddMedia(want, testserver.MediaOptions{})
	mustFetch(t, c, uri) // the target is remembered
	b.Faults = []testserver.Fault{{At: testserver.RoleCDN, Count: 10, Status: 500}, {At: testserver.RoleCDN, Count: 3, Truncate: true, TruncateAt: 7000}}
	b.ExpiredURLs = 3
	srv.SetBehavior(b)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Go(func() {
			got, m, err := fetch(t, c, uri)
			if err == nil && !sameBytes(got, want) {
				err = errors.New("wrong bytes")
			}
			if err == nil {
				m.Hops()
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	noCredentialsOffHome(t, srv, "Cookie")
}

// TestHolds2ProxyCredentials: through a plain HTTP proxy whose URL carries credentials, every hop
// (homeserver and CDN) reaches the proxy with Proxy-Authorization, and no origin ever receives it;
// an Authorization in Options.Header is replaced by the access token, never sent twice.
func TestHolds2ProxyCredentials(t *testing.T) {
	b := testserver.Behavior{V3Redirect: testserver.WhenAsked}
	srv := testserver.New(t, testserver.Config{Behavior: &b})
	uri := srv.AddMedia([]byte("via proxy"), testserver.MediaOptions{})
	var mu sync.Mutex
	var seen []string
	proxy := forwardProxy(t, func(r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Host+" "+r.Header.Get("Proxy-Authorization"))
		mu.Unlock()
	})
	pu, _ := url.Parse(proxy.URL)
	pu.User = url.UserPassword("proxyuser", "proxypass")
	tr := mediaclient.NewTransport()
	tr.Proxy = http.ProxyURL(pu)
	defer tr.CloseIdleConnections()
	c := newClient(t, srv, mediaclient.Options{API: mediaclient.APIV3, Transport: tr, Header: http.Header{"Authorization": {"Bearer not-the-token"}}})
	got, _, err := fetch(t, c, uri)
	if err != nil || string(got) != "via proxy" {
		t.Fatalf("got %q, %v", got, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 2 {
		t.Fatalf("proxy saw %v; want two hops", seen)
	}
	for _, s := range seen {
		if !strings.HasSuffix(s, " Basic cHJveHl1c2VyOnByb3h5cGFzcw==") {
			t.Errorf("hop through the proxy without its credentials: %q", s)
		}
	}
	for _, r := range srv.Requests() {
		if r.Header.Get("Proxy-Authorization") != "" {
			t.Errorf("origin %s received Proxy-Authorization", r.Origin)
		}
		if r.Origin == srv.URL && strings.Join(r.Header.Values("Authorization"), ",") != "Bearer "+srv.AccessToken {
			t.Errorf("homeserver got Authorization %q", r.Header.Values("Authorization"))
		}
	}
	noCredentialsOffHome(t, srv)
}

// TestHolds2GuardAddressForms: rule 5 for address literals a public homeserver may redirect to:
// IPv6 loopback in every spelling, IPv4-mapped and -translated loopback, link-local with a zone,
// the unspecified addresses. Each is refused before a request reaches it.
func TestHolds2GuardAddressForms(t *testing.T) {
	for _, host := range []string{"[::1]", "[0:0:0:0:0:0:0:1]", "[::ffff:127.0.0.1]", "[::ffff:7f00:1]", "[fe80::1%25lo]", "0.0.0.0", "[::]", "[64:ff9b::7f00:1]", "[::ffff:169.254.169.254]", "[fd00::1]"} {
		t.Run(host, func(t *testing.T) {
			var hit atomic.Int64
			target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hit.Add(1) }))
			defer target.Close()
			port := portOf(t, target.URL)
			hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Location", "http://"+host+":"+strconv.Itoa(port)+"/x")
				w.WriteHeader(http.StatusTemporaryRedirect)
			}))
			defer hs.Close()
			for _, own := range []bool{false, true} {
				o := mediaclient.Options{API: mediaclient.APIV1, AccessToken: "t", MaxRetries: -1}
				if !own {
					o.Transport = mediaclient.NewTransport()
				}
				c := hostileClient(t, hs.URL, o)
				classifyPorts(c, map[int]string{portOf(t, hs.URL): "public"})
				_, err := c.Download(t.Context(), hostileURI)
				if !errors.Is(err, mediaclient.ErrRedirectRefused) || hit.Load() != 0 {
					t.Errorf("own transport %v: err = %v, target requests %d; want refused", own, err, hit.Load())
				}
			}
		})
	}
}

// TestHolds2TimeoutAcrossResumes: Options.Timeout bounds the whole call, resumes included: a body
// that breaks twice and then drips (never idle for a stall) ends at the deadline with
// context.DeadlineExceeded, not later.
func TestHolds2TimeoutAcrossResumes(t *testing.T) {
	b := testserver.Behavior{Faults: []testserver.Fault{
		{Count: 2, Truncate: true, TruncateAt: 2000},
		{Drip: 100, DripEvery: 5 * time.Millisecond},
	}}
	const timeout = 300 * time.Millisecond
	srv, c := setup(t, testserver.Config{Behavior: &b}, mediaclient.Options{API: mediaclient.APIV3, Timeout: timeout})
	uri := srv.AddMedia(content(500_000, 6), testserver.MediaOptions{})
	start := time.Now()
	_, _, err := fetch(t, c, uri)
	if el := time.Since(start); !errors.Is(err, context.DeadlineExceeded) || el > timeout+500*time.Millisecond {
		t.Errorf("err = %v after %v; want DeadlineExceeded at about %v", err, el, timeout)
	}
	noCredentialsOffHome(t, srv)
}

// TestHolds2CancelDuringBackoff: a cancel while the client waits out a Retry-After, on the first
// request or on a resume, ends the call at once with an *Error matching context.Canceled.
func TestHolds2CancelDuringBackoff(t *testing.T) {
	for _, resume := range []bool{false, true} {
		t.Run("resume="+strconv.FormatBool(resume), func(t *testing.T) {
			faults := []testserver.Fault{{Status: 503, RetryAfter: "30"}}
			if resume {
				faults = []testserver.Fault{{Count: 1, Truncate: true, TruncateAt: 1000}, {Status: 503, RetryAfter: "30"}}
			}
			b := testserver.Behavior{Faults: faults}
			srv, c := setup(t, testserver.Config{Behavior: &b}, mediaclient.Options{API: mediaclient.APIV3})
			uri := srv.AddMedia(content(20_000, 7), testserver.MediaOptions{})
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			done := make(chan error, 1)
			go func() {
				m, err := c.Download(ctx, uri)
				_, err = readAll(t, m, err)
				done <- err
			}()
			for i := 0; ; i++ { // wait until the 503 was answered (bounded)
				if n := len(srv.Requests()); n > 0 && srv.Requests()[n-1].Status == 503 && srv.Requests()[n-1].Ended {
					break
				}
				if i > 2000 {
					t.Fatal("no 503 answered within 2 s")
				}
				time.Sleep(time.Millisecond)
			}
			cancel()
			select {
			case err := <-done:
				var me *mediaclient.Error
				if !errors.Is(err, context.Canceled) || !errors.As(err, &me) {
					t.Errorf("err = %v; want an *Error matching context.Canceled", err)
				}
			case <-time.After(2 * time.Second):
				t.Fatal("still waiting 2 s after the cancel")
			}
		})
	}
}

// TestHolds2ConnectionsAndGoroutines: downloads through every fallback (v1 unrecognized, parameter
// rejected, redirect refused, target refused, not yet uploaded), resumes and the 308 cache reuse
// their connections (at most two per origin over ten rounds) and leave no goroutine behind.
func TestHolds2ConnectionsAndGoroutines(t *testing.T) {
	before := leakcheck.Snapshot()
	b := testserver.Behavior{NoV1: true, Param: testserver.ParamReject}
	srv := testserver.New(t, testserver.Config{Behavior: &b})
	c := newClient(t, srv, mediaclient.Options{API: mediaclient.APIAuto, UploadWait: 2 * time.Second, ServerUploadWait: 20 * time.Millisecond,
		Header: http.Header{"cookie": {"c=1"}, "x-secret": {"s"}}, CredentialHeaders: []string{"X-SECRET"}})
	want := content(30_000, 8)
	plain := srv.AddMedia(want, testserver.MediaOptions{})
	redirected := srv.AddMedia(want, testserver.MediaOptions{Behavior: &testserver.Behavior{V3Redirect: testserver.Always, Redirect: 308,
		Faults: []testserver.Fault{{At: testserver.RoleCDN, Count: 1, Truncate: true, TruncateAt: 5000}}}})
	refused := srv.AddMedia(want, testserver.MediaOptions{Behavior: &testserver.Behavior{V3Redirect: testserver.WhenAsked, Faults: []testserver.Fault{{At: testserver.RoleCDN, Status: 404}}}})
	srv.ResetConnections()
	for round := range 10 {
		for _, uri := range []id.ContentURI{plain, redirected, refused} {
			if got, _, err := fetch(t, c, uri); err != nil || !sameBytes(got, want) {
				t.Fatalf("round %d, %s: %d bytes, %v", round, uri, len(got), err)
			}
		}
	}
	late := srv.CreateMedia(testserver.MediaOptions{})
	go func() { time.Sleep(30 * time.Millisecond); srv.Upload(late.FileID, want, "") }()
	if got, _, err := fetch(t, c, late); err != nil || !sameBytes(got, want) {
		t.Fatalf("not yet uploaded: %d bytes, %v", len(got), err)
	}
	for _, o := range []testserver.OriginName{testserver.OriginHomeserver, testserver.OriginCDN} {
		if n := srv.Connections(o); n > 4 {
			t.Errorf("%d connections to %s over ten rounds", n, o)
		}
	}
	noCredentialsOffHome(t, srv, "X-Secret")
	c.CloseIdleConnections()
	srv.Close()
	for _, g := range leakcheck.Wait(before, 2*time.Second) {
		if strings.Contains(g, "mediaclient") {
			t.Errorf("goroutine left running:\n%s", g)
		}
	}
}

// TestHolds2EncryptedOneBlock: rule 9 with decryption above the body. A server that answers an
// encrypted attachment with exactly one AES block of its ciphertext (16 bytes, whole or chunked)
// must not produce verified plaintext: the hash check fails at the end.
func TestHolds2EncryptedOneBlock(t *testing.T) {
	plaintext := content(4096, 3)
	ef := attachment.NewEncryptedFile()
	ciphertext := append([]byte(nil), plaintext...)
	ef.EncryptInPlace(ciphertext)
	file := &event.EncryptedFileInfo{EncryptedFile: *ef, URL: hostileURI.CUString()}
	for _, chunked := range []bool{false, true} {
		t.Run("chunked="+strconv.FormatBool(chunked), func(t *testing.T) {
			hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if chunked {
					w.WriteHeader(http.StatusOK)
					http.NewResponseController(w).Flush()
				} else {
					w.Header().Set("Content-Length", "16")
				}
				w.Write(ciphertext[:16])
			}))
			defer hs.Close()
			c := hostileClient(t, hs.URL, mediaclient.Options{MaxRetries: -1})
			m, err := c.DownloadEncrypted(t.Context(), file)
			got, err := readAll(t, m, err)
			var me *mediaclient.Error
			if !errors.Is(err, attachment.ErrHashMismatch) || !errors.As(err, &me) {
				t.Errorf("one block: %d bytes, %v; want an *Error wrapping attachment.ErrHashMismatch", len(got), err)
			}
		})
	}
}

// TestHolds2MautrixWrapper: the wrapper keeps mautrix's shapes — DownloadThumbnail takes height
// before width; DownloadWithParams adds its query, and a caller's allow_redirect=false is sent as
// asked (the homeserver serves the bytes itself; any other value would be ignored); errors match
// mautrix.MNotFound and a mautrix.HTTPError value.
func TestHolds2MautrixWrapper(t *testing.T) {
	b := testserver.Behavior{V1Redirect: testserver.WhenAsked}
	srv := testserver.New(t, testserver.Config{Behavior: &b})
	uri := srv.AddMedia([]byte("wrapped"), testserver.MediaOptions{Thumbnail: []byte("thumb")})
	cli, err := mautrix.NewClient(srv.URL, "", srv.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	w, err := mediaclient.Wrap(cli, mediaclient.Options{API: mediaclient.APIV1})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Client().CloseIdleConnections()
	resp, err := w.DownloadThumbnail(t.Context(), uri, 20, 30, mautrix.DownloadThumbnailExtra{Method: "scale"})
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if q := srv.Requests()[0].Query(); q.Get("width") != "30" || q.Get("height") != "20" || q.Get("method") != "scale" {
		t.Errorf("thumbnail query %v; want width 30, height 20", q)
	}
	srv.ResetLog()
	resp, err = w.DownloadWithParams(t.Context(), uri, mautrix.DownloadExtra{Query: map[string]string{"allow_redirect": "false", "x": "1"}})
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if q := srv.Requests()[0].Query(); string(data) != "wrapped" || q.Get("allow_redirect") != "false" || q.Get("x") != "1" || len(srv.RequestsTo(testserver.OriginCDN)) != 0 {
		t.Errorf("DownloadWithParams: %q, first query %v", data, q)
	}
	_, err = w.Download(t.Context(), id.ContentURI{Homeserver: srv.ServerName, FileID: "missing"})
	var he mautrix.HTTPError
	if !errors.Is(err, mautrix.MNotFound) || !errors.As(err, &he) || he.Response == nil || he.Response.StatusCode != 404 {
		t.Errorf("missing media: %v; want mautrix.MNotFound in a mautrix.HTTPError", err)
	}
	noCredentialsOffHome(t, srv)
}

// TestHolds2LocationForms: Location values a hostile homeserver may send. Those a browser and Go
// could read differently, or that carry credentials, are refused before any request leaves; the
// others reach the target without credentials.
func TestHolds2LocationForms(t *testing.T) {
	var hit atomic.Int64
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" {
			t.Errorf("target got Authorization at %s", r.URL)
		}
		hit.Add(1)
		w.Write([]byte("ok"))
	}))
	defer target.Close()
	tp := strconv.Itoa(portOf(t, target.URL))
	for loc, followed := range map[string]bool{
		"http://@127.0.0.1:" + tp + "/x":         false, // empty userinfo
		"http://u:p@127.0.0.1:" + tp + "/x":      false,
		"http:/127.0.0.1:" + tp + "/x":           false, // no host for Go
		"http:\\\\127.0.0.1:" + tp + "\\x":       false, // backslashes, as a browser reads them
		"http://127.1:" + tp + "/x":              false,
		"http://2130706433:" + tp + "/x":         false,
		"http://127.0.0.1.:" + tp + "/x":         false,
		"ftp://127.0.0.1:" + tp + "/x":           false,
		"http://127.0.0.1:" + tp + "/x\t":        true,
		" http://127.0.0.1:" + tp + "/x#frag ":   true,
		"//127.0.0.1:" + tp + "/x?sig=1":         true,
		"HTTP://127.0.0.1:" + tp + "/%2e%2e/x":   true,
		"http://[::ffff:127.0.0.1]:" + tp + "/x": true, // loopback within loopback
	} {
		hit.Store(0)
		hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header()["Location"] = []string{loc}
			w.WriteHeader(http.StatusTemporaryRedirect)
		}))
		c := hostileClient(t, hs.URL, mediaclient.Options{API: mediaclient.APIV1, AccessToken: "t", MaxRetries: -1})
		got, _, err := fetch(t, c, hostileURI)
		hs.Close()
		if followed && (err != nil || string(got) != "ok") {
			t.Errorf("Location %q: %q, %v; want it followed", loc, got, err)
		}
		if !followed && (!errors.Is(err, mediaclient.ErrRedirectRefused) || hit.Load() != 0) {
			t.Errorf("Location %q: err %v, target hit %d; want refused", loc, err, hit.Load())
		}
	}
}
