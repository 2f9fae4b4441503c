package mediaclient_test

// A hostile review of the federation download: the remote server is on the internet and hostile,
// the fetching server sits inside a private network. The first part holds one test per defect
// found, most severe first (each fails until the defect is fixed); the second part, after the
// marker, holds properties that were attacked and held.
//
// Where the test server cannot play a hostile answer, a small loopback TLS server (hostileRemote)
// does, and logs every request it gets with its headers.

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/federation"
	"maunium.net/go/mautrix/id"

	"github.com/mxfetch/mxfetch/internal/leakcheck"
	"github.com/mxfetch/mxfetch/mediaclient"
	"github.com/mxfetch/mxfetch/testserver"
)

// hostileRequest is one request a hostileRemote got.
type hostileRequest struct {
	Host, Path, RawQuery, Authorization string
}

// hostileRemote is a loopback TLS server that answers as its handler says and logs its requests.
type hostileRemote struct {
	ts   *httptest.Server
	mu   sync.Mutex
	reqs []hostileRequest
}

func newHostileRemote(t testing.TB, h http.HandlerFunc) *hostileRemote {
	t.Helper()
	r := &hostileRemote{}
	r.ts = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.reqs = append(r.reqs, hostileRequest{Host: req.Host, Path: req.URL.Path, RawQuery: req.URL.RawQuery, Authorization: req.Header.Get("Authorization")})
		r.mu.Unlock()
		h(w, req)
	}))
	r.ts.StartTLS()
	t.Cleanup(r.ts.Close)
	return r
}

func (r *hostileRemote) requests() []hostileRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]hostileRequest(nil), r.reqs...)
}

func (r *hostileRemote) hostPort() string { return strings.TrimPrefix(r.ts.URL, "https://") }

func (r *hostileRemote) port() int {
	_, p, _ := net.SplitHostPort(r.hostPort())
	n, _ := strconv.Atoi(p)
	return n
}

// hostileFed returns a FederationClient whose remote servers are all r, played as public
// (Locations stay strict), with a transport that trusts r's certificate.
func hostileFed(t testing.TB, r *hostileRemote, opts mediaclient.FederationOptions) *mediaclient.FederationClient {
	t.Helper()
	key := federation.GenerateSigningKey()
	opts.ServerName, opts.Key = originName, key
	if opts.ResolveServer == nil {
		hp := r.hostPort()
		opts.ResolveServer = func(_ context.Context, name string) (*federation.ResolvedServerName, error) {
			return &federation.ResolvedServerName{ServerName: name, HostHeader: hp, IPPort: []string{hp}}, nil
		}
	}
	o := &opts.Options
	o.RetryWaitMin, o.RetryWaitMax = time.Millisecond, 5*time.Millisecond
	if o.Transport == nil {
		tr := mediaclient.NewFederationTransport()
		tr.TLSClientConfig = &tls.Config{RootCAs: certPool(r.ts)}
		o.Transport = tr
	}
	f, err := mediaclient.NewFederationClient(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.CloseIdleConnections)
	port := r.port()
	mediaclient.SetFederationClassifier(f, func(ap netip.AddrPort) string {
		if int(ap.Port()) == port {
			return "public"
		}
		return mediaclient.Classify(ap)
	})
	return f
}

func certPool(ts *httptest.Server) *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ts.Certificate())
	return p
}

// writeMultipart writes a federation answer by hand: boundary "b0", the metadata part, then parts.
func writeMultipart(w http.ResponseWriter, parts ...string) {
	w.Header().Set("Content-Type", "multipart/mixed; boundary=b0")
	w.WriteHeader(http.StatusOK)
	io.WriteString(w, "--b0\r\nContent-Type: application/json\r\n\r\n{}\r\n")
	for _, p := range parts {
		io.WriteString(w, "--b0\r\n"+p+"\r\n")
	}
	io.WriteString(w, "--b0--\r\n")
}

func mustURI(t testing.TB, s string) id.ContentURI {
	t.Helper()
	u, err := mediaclient.ParseURI(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// routes answers each path with its handler, and 404 elsewhere.
func routes(m map[string]http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if h, ok := m[r.URL.Path]; ok {
			h(w, r)
			return
		}
		http.NotFound(w, r)
	}
}

const fedPath = "/_matrix/federation/v1/media/download/abc"

// signedOnlyAtFederation fails t unless every request r got that carried an Authorization was a
// federation media request, and every federation media request carried one.
func signedOnlyAtFederation(t *testing.T, r *hostileRemote) {
	t.Helper()
	for _, q := range r.requests() {
		fed := strings.HasPrefix(q.Path, "/_matrix/federation/")
		if fed != (q.Authorization != "") {
			t.Errorf("%s: Authorization %q", q.Path, q.Authorization)
		}
	}
}

func countPath(r *hostileRemote, path string) int {
	n := 0
	for _, q := range r.requests() {
		if q.Path == path {
			n++
		}
	}
	return n
}

// unrecognized answers as a server without federation media does.
func unrecognized(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(404)
	io.WriteString(w, `{"errcode":"M_UNRECOGNIZED","error":"Unrecognized request"}`)
}

// redialTransport is NewFederationTransport trusting r's certificate under the name example.com
// (httptest's), whose dialer connects to r when asked for one of names.
func redialTransport(r *hostileRemote, names ...string) *http.Transport {
	tr := mediaclient.NewFederationTransport()
	tr.TLSClientConfig = &tls.Config{RootCAs: certPool(r.ts), ServerName: "example.com"}
	dial := tr.DialContext
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		for _, n := range names {
			if addr == n {
				addr = r.hostPort()
			}
		}
		return dial(ctx, network, addr)
	}
	return tr
}

// TestAttack4WellKnownStallHoldsForever: server discovery's .well-known request is read without
// the stall timeout. A remote server that sends the headers of its .well-known answer and then a
// few bytes of it, and nothing more, holds the download (and a connection) for as long as the
// caller's context lasts: with no Options.Timeout, the default, forever. Every other body the
// client reads, the federation answer's head included, counts as stalled after StallTimeout.
// (The call's context is cancelled as soon as the client closes that connection, so that
// discovery's SRV look-up that follows sends nothing.)
func TestAttack4WellKnownStallHoldsForever(t *testing.T) {
	quit := make(chan struct{})
	r := newHostileRemote(t, func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path != "/.well-known/matrix/server" {
			http.NotFound(w, req)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, `{"m.server":`)
		w.(http.Flusher).Flush()
		select {
		case <-req.Context().Done():
		case <-quit:
		}
	})
	t.Cleanup(func() { close(quit) })
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	closed := make(chan struct{}, 1)
	tr := redialTransport(r, "localhost:443")
	dial := tr.DialContext
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &closeHook{Conn: c, onClose: func() {
			cancel()
			select {
			case closed <- struct{}{}:
			default:
			}
		}}, nil
	}
	key := federation.GenerateSigningKey()
	f, err := mediaclient.NewFederationClient(mediaclient.FederationOptions{ServerName: originName, Key: key, AllowPrivateServers: true,
		Options: mediaclient.Options{StallTimeout: stallWindow, Transport: tr}})
	if err != nil {
		t.Fatal(err)
	}
	defer f.CloseIdleConnections()
	done := make(chan error, 1)
	go func() {
		m, err := f.Download(ctx, mustURI(t, "mxc://localhost/abc"))
		if m != nil {
			m.Close()
		}
		done <- err
	}()
	select {
	case <-closed:
	case <-time.After(2 * time.Second):
		t.Errorf("the .well-known answer has been stalled for 2 s (StallTimeout 50 ms) and the client still waits for it")
	}
	cancel()
	<-done
	if n := len(r.requests()); n != 1 {
		t.Errorf("%d requests at the remote server; want the .well-known request", n)
	}
}

// closeHook is a connection that calls onClose when it is closed.
type closeHook struct {
	net.Conn
	once    sync.Once
	onClose func()
}

func (c *closeHook) Close() error {
	c.once.Do(c.onClose)
	return c.Conn.Close()
}

// TestAttack4ForeignTransportDialsUncheckedAddress: with a transport of the caller's own (not
// NewFederationTransport), the guard checks the address server discovery said to connect to (an
// SRV target), but the transport knows nothing of that override and connects to the Host name
// instead, which nothing checked: a remote server whose SRV target is public and whose name
// resolves into the private network gets a connection there. Here the target, 127.0.0.2, is
// played as public; the name, localhost, leads to a trap on 127.0.0.1.
func TestAttack4ForeignTransportDialsUncheckedAddress(t *testing.T) {
	trapPort, accepted := trap(t)
	key := federation.GenerateSigningKey()
	target := "127.0.0.2:" + strconv.Itoa(trapPort)
	f, err := mediaclient.NewFederationClient(mediaclient.FederationOptions{ServerName: originName, Key: key,
		ResolveServer: func(_ context.Context, name string) (*federation.ResolvedServerName, error) {
			return &federation.ResolvedServerName{ServerName: name, HostHeader: "localhost", IPPort: []string{target}}, nil
		},
		Options: mediaclient.Options{Transport: &http.Transport{}, MaxRetries: -1, ConnectTimeout: time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	defer f.CloseIdleConnections()
	mediaclient.SetFederationClassifier(f, func(ap netip.AddrPort) string {
		if ap.Addr() == netip.MustParseAddr("127.0.0.2") {
			return "public"
		}
		return mediaclient.Classify(ap)
	})
	_, err = f.Download(t.Context(), mustURI(t, "mxc://remote.test/abc"))
	if n := accepted.Load(); n != 0 {
		t.Errorf("the trap behind the unchecked name accepted %d connection(s); err = %v", n, err)
	}
	if err == nil {
		t.Errorf("no error; want a refusal before any connection")
	}
}

// TestAttack4DiscoveryCacheGrowsWithoutBound: server discovery results are kept in mautrix's
// InMemoryCache, which never drops an entry (an expired one is only ignored when loaded). The
// server names come from mxc URIs, which anyone may send: a sender (or a hostile server with a
// wildcard DNS zone) that names a new server in every URI grows the fetching server's memory
// without bound. (The remembered "unrecognized" servers beside it are an LRU of 1024.) Here 6000
// distinct names, each an address literal that server discovery resolves without the network and
// the guard then refuses without a connection.
func TestAttack4DiscoveryCacheGrowsWithoutBound(t *testing.T) {
	key := federation.GenerateSigningKey()
	f, err := mediaclient.NewFederationClient(mediaclient.FederationOptions{ServerName: originName, Key: key})
	if err != nil {
		t.Fatal(err)
	}
	defer f.CloseIdleConnections()
	const names = 6000
	download := func(i int) {
		uri := id.ContentURI{Homeserver: fmt.Sprintf("10.%d.%d.%d:8448", i>>16&255, i>>8&255, i&255), FileID: "abc"}
		if _, err := f.Download(t.Context(), uri); !errors.Is(err, mediaclient.ErrPrivateAddress) {
			t.Fatalf("%s: err = %v; want ErrPrivateAddress", uri.Homeserver, err)
		}
	}
	download(0) // warm up
	before := heapInUse()
	start := time.Now()
	for i := 1; i <= names; i++ {
		download(i)
	}
	took := time.Since(start)
	grown := heapInUse() - before
	t.Logf("%d names in %v: heap grew by %d bytes", names, took.Round(time.Millisecond), grown)
	if grown > 512<<10 {
		t.Errorf("the heap grew by %d bytes (%d per server name) after %d downloads from distinct servers, all finished", grown, grown/names, names)
	}
}

// heapInUse returns the bytes of live heap objects after a collection.
func heapInUse() int64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// TestAttack4PartLongerThanItsContentLength: an inline media part whose Content-Length header
// says fewer bytes than the part holds is taken at its word: the download delivers the first
// Content-Length bytes and reports success, a silently short file. The part's length is not
// enforced by any framing (an HTTP answer's is, by the transport), so the bytes after it must be
// checked: the part contradicts itself and is not the media.
func TestAttack4PartLongerThanItsContentLength(t *testing.T) {
	r := newHostileRemote(t, routes(map[string]http.HandlerFunc{
		fedPath: func(w http.ResponseWriter, _ *http.Request) {
			writeMultipart(w, "Content-Type: image/png\r\nContent-Length: 5\r\n\r\n0123456789")
		},
	}))
	f := hostileFed(t, r, mediaclient.FederationOptions{})
	md, err := f.Download(t.Context(), mustURI(t, "mxc://remote.test/abc"))
	got, err := readAll(t, md, err)
	if err == nil {
		t.Fatalf("got %q and success from a part of 10 bytes that said Content-Length 5; want an error", got)
	}
}

// TestAttack4HeadIgnoresLowSpeedLimit: the low-speed limit (LowSpeedLimit over LowSpeedTime) holds
// for the media's bytes but not for the head of a federation answer (its metadata part and the
// media part's headers): a remote server that drips its head a byte at a time, never idle for as
// long as StallTimeout, is waited for, up to 256 KiB of head.
func TestAttack4HeadIgnoresLowSpeedLimit(t *testing.T) {
	srv, key := fedServer(t, testserver.Behavior{Faults: []testserver.Fault{{Drip: 1, DripEvery: 2 * time.Millisecond, Count: 1}}},
		testserver.FederationBehavior{MetadataSize: 400})
	uri := srv.AddMedia(content(1000, 1), testserver.MediaOptions{})
	f := newFed(t, srv, key, mediaclient.FederationOptions{Options: mediaclient.Options{LowSpeedLimit: 100_000, LowSpeedTime: 50 * time.Millisecond, MaxRetries: -1}})
	start := time.Now()
	m, err := f.Download(t.Context(), uri)
	took := time.Since(start)
	if err == nil {
		m.Close()
		t.Fatalf("Download returned a Media after %v of a head dripped at 500 bytes/s (limit 100000 bytes/s over 50 ms)", took.Round(time.Millisecond))
	}
	if !errors.Is(err, mediaclient.ErrTooSlow) {
		t.Errorf("err = %v; want ErrTooSlow", err)
	}
}

// TestAttack4RelativeLocationLosesServerAddress: a relative Location (or one on the remote
// server's own origin) is resolved against the federation URL, https://<Host>:<port>, but
// followed without the address server discovery gave for that origin (an SRV target): the
// client connects to wherever the Host name itself leads, which for a delegated server is
// another machine (its web site, say). Here the remote server listens on 127.0.0.2 and its
// Host name, localhost, leads to 127.0.0.1, where nothing answers; private Locations are allowed.
func TestAttack4RelativeLocationLosesServerAddress(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Skipf("no second loopback address here: %v", err)
	}
	addr := l.Addr().String()
	l.Close()
	want := content(5000, 3)
	srv := testserver.New(t, testserver.Config{TLS: true, ServerName: "remote.test", Addr: addr})
	key := federation.GenerateSigningKey()
	if err := srv.TrustServerKeys(key.GenerateKeyResponse(originName, nil)); err != nil {
		t.Fatal(err)
	}
	uri := srv.AddMedia(want, testserver.MediaOptions{})
	loc := "/_matrix/media/v3/download/remote.test/" + uri.FileID
	srv.SetFederation(testserver.FederationBehavior{LocationURL: &loc})
	port := strconv.Itoa(portOf(t, srv.URL))
	f := newFed(t, srv, key, mediaclient.FederationOptions{AllowPrivateLocations: true,
		ResolveServer: func(_ context.Context, name string) (*federation.ResolvedServerName, error) {
			return &federation.ResolvedServerName{ServerName: name, HostHeader: "localhost", IPPort: []string{"127.0.0.2:" + port}}, nil
		}})
	got, m, err := fedFetch(t, f, uri.String())
	if err != nil || sum(got) != sum(want) {
		hops := ""
		if m != nil {
			hops = steps(m.Hops())
		}
		var me *mediaclient.Error
		if errors.As(err, &me) {
			hops = steps(me.Hops)
		}
		t.Fatalf("got %d bytes, %v (hops %s); want the media from the remote server's own address", len(got), err, hops)
	}
	if n := len(srv.Requests()); n != 2 {
		t.Errorf("%d requests at the remote server; want the federation request and the Location", n)
	}
}

// ---- Properties that were attacked and held. ----

// TestAttack4LocationAddressForms: a Location into internal space, in every spelling of an
// address, is refused with a typed error before any connection: the trap accepts nothing and the
// dialer is never asked for the trap's port.
func TestAttack4LocationAddressForms(t *testing.T) {
	trapPort, accepted := trap(t)
	tp := strconv.Itoa(trapPort)
	for _, loc := range []string{
		"https://[::ffff:127.0.0.1]:" + tp + "/",
		"https://[::ffff:7f00:1]:" + tp + "/",
		"https://[0:0:0:0:0:ffff:127.0.0.1]:" + tp + "/",
		"https://[64:ff9b::7f00:1]:" + tp + "/",
		"https://[64:ff9b::a9fe:a9fe]/latest/meta-data/",
		"https://[64:ff9b:1::7f00:1]:" + tp + "/",
		"https://[::127.0.0.1]:" + tp + "/",
		"https://[2002:7f00:1::]:" + tp + "/",
		"https://[2001::1]:" + tp + "/",
		"https://[fe80::1%25lo]:" + tp + "/",
		"https://[::1%25lo]:" + tp + "/",
		"https://[::]:" + tp + "/",
		"https://[fc00::1]/",
		"https://[fd12:3456::1]/",
		"https://0.0.0.0:" + tp + "/",
		"https://0.1.2.3:" + tp + "/",
		"https://0:" + tp + "/",
		"https://127.1:" + tp + "/",
		"https://0x7f000001:" + tp + "/",
		"https://017700000001:" + tp + "/",
		"https://127.0.0.1.:" + tp + "/",
		"https://localhost.:" + tp + "/",
		"https://LOCALHOST:" + tp + "/",
		"https://sub.localhost:" + tp + "/",
		"HTTPS://127.0.0.1:" + tp + "/",
		"  https://127.0.0.1:" + tp + "/  ",
		"//127.0.0.1:" + tp + "/x",
		"//localhost:" + tp + "/x",
		"https://100.64.0.1/",
		"https://192.0.0.8/",
		"https://198.18.0.1/",
		"https://192.168.1.1/",
		"https://172.16.0.1/",
		"https://224.0.0.1/",
		"https://255.255.255.255/",
		"https://169.254.169.254/latest/meta-data/",
		"https://public.example@127.0.0.1:" + tp + "/",
		"https://127.0.0.1:" + tp + "@public.example/",
		"https://127.0.0.1:" + tp + "#@public.example/",
		"https://127.0.0.1%2f:" + tp + "/",
		"https://%31%32%37.0.0.1:" + tp + "/",
		"https://127.0.0.1:" + tp + "\\@public.example/",
		"gopher://127.0.0.1:" + tp + "/",
		"ftp://127.0.0.1:" + tp + "/",
		"data:text/plain,hello",
		"javascript:alert(1)",
		"http:/127.0.0.1:" + tp + "/",
		"https:127.0.0.1:" + tp + "/",
	} {
		t.Run(loc, func(t *testing.T) {
			loc := loc
			srv, key := fedServer(t, testserver.Behavior{}, testserver.FederationBehavior{LocationURL: &loc})
			uri := srv.AddMedia(content(1000, 2), testserver.MediaOptions{})
			tr := mediaclient.NewFederationTransport()
			tr.TLSClientConfig = &tls.Config{RootCAs: srv.CertPool()}
			dialed := dialLog(tr)
			f := newFed(t, srv, key, mediaclient.FederationOptions{Options: mediaclient.Options{Transport: tr, AllowInsecureRedirects: true}})
			playPublic(t, f, srv, testserver.OriginHomeserver)
			before := accepted.Load()
			got, _, err := fedFetch(t, f, uri.String())
			if err == nil {
				t.Fatalf("got %d bytes; want a refusal", len(got))
			}
			var me *mediaclient.Error
			if !errors.As(err, &me) {
				t.Errorf("err = %#v; want an *Error", err)
			}
			if !errors.Is(err, mediaclient.ErrRedirectRefused) {
				t.Errorf("err = %v; want ErrRedirectRefused", err)
			}
			if n := accepted.Load() - before; n != 0 {
				t.Errorf("the trap accepted %d connections", n)
			}
			for _, a := range dialed() {
				if strings.HasSuffix(a, ":"+tp) || !strings.HasSuffix(a, ":"+strconv.Itoa(portOf(t, srv.URL))) {
					t.Errorf("the dialer was asked for %s", a)
				}
			}
			if n := len(srv.Requests()); n != 1 {
				t.Errorf("%d requests at the remote server; want only the federation request", n)
			}
		})
	}
}

// TestAttack4LocationRedirectIntoPrivate: a Location on a public origin that redirects into
// private space, in several spellings, is refused before any connection to it.
func TestAttack4LocationRedirectIntoPrivate(t *testing.T) {
	trapPort, accepted := trap(t)
	tp := strconv.Itoa(trapPort)
	for _, to := range []string{
		"https://127.0.0.1:" + tp + "/", "https://localhost:" + tp + "/", "//[::1]:" + tp + "/",
		"https://[::ffff:127.0.0.1]:" + tp + "/", "https://169.254.169.254/", "https://10.0.0.1/",
	} {
		t.Run(to, func(t *testing.T) {
			var r *hostileRemote
			r = newHostileRemote(t, routes(map[string]http.HandlerFunc{
				fedPath: func(w http.ResponseWriter, _ *http.Request) {
					writeMultipart(w, "Location: https://"+r.hostPort()+"/cdn?sig=SECRET\r\n")
				},
				"/cdn": func(w http.ResponseWriter, req *http.Request) {
					http.Redirect(w, req, to, http.StatusTemporaryRedirect)
				},
			}))
			f := hostileFed(t, r, mediaclient.FederationOptions{})
			before := accepted.Load()
			_, err := f.Download(t.Context(), mustURI(t, "mxc://remote.test/abc"))
			if !errors.Is(err, mediaclient.ErrRedirectRefused) {
				t.Errorf("err = %v; want ErrRedirectRefused", err)
			}
			if n := accepted.Load() - before; n != 0 {
				t.Errorf("the trap accepted %d connections", n)
			}
			if err != nil && strings.Contains(err.Error(), "SECRET") {
				t.Errorf("the error carries the signed query: %v", err)
			}
			if countPath(r, fedPath) != 1 || countPath(r, "/cdn") != 1 {
				t.Errorf("requests %v; want one federation request and one Location (a refusal is final)", r.requests())
			}
			signedOnlyAtFederation(t, r)
		})
	}
}

// TestAttack4NoSignatureOffTheEndpoint: the X-Matrix Authorization goes to the federation media
// endpoint only: not to a Location on the remote server's own origin (relative, absolute,
// protocol-relative), not along a redirect from there back to the federation path, not to the
// legacy endpoint.
func TestAttack4NoSignatureOffTheEndpoint(t *testing.T) {
	media := []byte("the media")
	serve := func(w http.ResponseWriter, _ *http.Request) { w.Write(media) }
	for _, tc := range []struct {
		name string
		loc  func(hp string) string
		more map[string]http.HandlerFunc
	}{
		{"relative", func(string) string { return "/media" }, nil},
		{"absolute, own origin", func(hp string) string { return "https://" + hp + "/media" }, nil},
		{"protocol-relative, own origin", func(hp string) string { return "//" + hp + "/media" }, nil},
		{"own origin, upper case", func(hp string) string { return "HTTPS://" + strings.ToUpper(hp) + "/media" }, nil},
		{"redirect back to the federation path", func(string) string { return "/back" }, map[string]http.HandlerFunc{
			"/back": func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, "/_matrix/federation/v1/media/download/other", http.StatusTemporaryRedirect)
			},
			"/_matrix/federation/v1/media/download/other": serve,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r *hostileRemote
			m := map[string]http.HandlerFunc{
				fedPath: func(w http.ResponseWriter, _ *http.Request) {
					writeMultipart(w, "Location: "+tc.loc(r.hostPort())+"\r\n")
				},
				"/media": serve,
			}
			for k, v := range tc.more {
				m[k] = v
			}
			r = newHostileRemote(t, routes(m))
			f := hostileFed(t, r, mediaclient.FederationOptions{})
			md, err := f.Download(t.Context(), mustURI(t, "mxc://remote.test/abc"))
			got, err := readAll(t, md, err)
			if err != nil || string(got) != string(media) {
				t.Fatalf("got %q, %v", got, err)
			}
			for _, q := range r.requests() {
				if q.Path != fedPath && q.Authorization != "" {
					t.Errorf("%s got Authorization %q", q.Path, q.Authorization)
				}
				if q.Path == fedPath && q.Authorization == "" {
					t.Errorf("the federation request was not signed")
				}
			}
			for _, h := range md.Hops() {
				if h.Credentials && h.Path != fedPath {
					t.Errorf("hop %+v says it carried credentials", h)
				}
			}
		})
	}
	t.Run("legacy", func(t *testing.T) {
		r := newHostileRemote(t, routes(map[string]http.HandlerFunc{
			fedPath: func(w http.ResponseWriter, _ *http.Request) {
				w.WriteHeader(404)
				io.WriteString(w, `{"errcode":"M_UNRECOGNIZED","error":"no"}`)
			},
			"/_matrix/media/v3/download/remote.test/abc": func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, "/_matrix/federation/v1/media/download/other", http.StatusTemporaryRedirect)
			},
			"/_matrix/federation/v1/media/download/other": serve,
		}))
		f := hostileFed(t, r, mediaclient.FederationOptions{})
		md, err := f.Download(t.Context(), mustURI(t, "mxc://remote.test/abc"))
		got, err := readAll(t, md, err)
		if err != nil || string(got) != string(media) {
			t.Fatalf("got %q, %v", got, err)
		}
		for _, q := range r.requests() {
			if (q.Path == fedPath) != (q.Authorization != "") {
				t.Errorf("%s: Authorization %q", q.Path, q.Authorization)
			}
			if strings.HasPrefix(q.Path, "/_matrix/media/v3/") && q.RawQuery != "allow_remote=false&timeout_ms=20000" {
				t.Errorf("legacy query %q", q.RawQuery)
			}
		}
	})
}

// TestAttack4LegacyGuardStrict: on the legacy endpoint, a redirect into private space is refused
// as strictly as a Location, before any connection.
func TestAttack4LegacyGuardStrict(t *testing.T) {
	trapPort, accepted := trap(t)
	for _, to := range []string{"https://127.0.0.1:" + strconv.Itoa(trapPort) + "/", "https://localhost:" + strconv.Itoa(trapPort) + "/"} {
		r := newHostileRemote(t, routes(map[string]http.HandlerFunc{
			fedPath: unrecognized,
			"/_matrix/media/v3/download/remote.test/abc": func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, to, http.StatusTemporaryRedirect)
			},
		}))
		f := hostileFed(t, r, mediaclient.FederationOptions{})
		_, err := f.Download(t.Context(), mustURI(t, "mxc://remote.test/abc"))
		if !errors.Is(err, mediaclient.ErrPrivateAddress) || accepted.Load() != 0 {
			t.Errorf("%s: err = %v, trap accepted %d; want ErrPrivateAddress before any connection", to, err, accepted.Load())
		}
	}
}

// TestAttack4LocationReRequestBounded: a Location that keeps failing is asked for again through
// the federation endpoint once per answer the body needs, never more: an error status twice ends
// the download; a body that keeps breaking is resumed at most three times, each with one fresh
// Location and at most one re-request.
func TestAttack4LocationReRequestBounded(t *testing.T) {
	t.Run("error status", func(t *testing.T) {
		r := newHostileRemote(t, routes(map[string]http.HandlerFunc{
			fedPath: func(w http.ResponseWriter, _ *http.Request) { writeMultipart(w, "Location: /fail?sig=SECRET\r\n") },
			"/fail": func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(503) },
		}))
		f := hostileFed(t, r, mediaclient.FederationOptions{})
		_, err := f.Download(t.Context(), mustURI(t, "mxc://remote.test/abc"))
		if err == nil || strings.Contains(err.Error(), "SECRET") {
			t.Errorf("err = %v", err)
		}
		if a, b := countPath(r, fedPath), countPath(r, "/fail"); a != 2 || b != 2 {
			t.Errorf("%d federation requests, %d Location requests; want 2 and 2", a, b)
		}
		signedOnlyAtFederation(t, r)
	})
	t.Run("breaking body", func(t *testing.T) {
		r := newHostileRemote(t, routes(map[string]http.HandlerFunc{
			fedPath: func(w http.ResponseWriter, _ *http.Request) { writeMultipart(w, "Location: /cut\r\n") },
			"/cut": func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Length", "100000")
				w.WriteHeader(200)
				w.Write(make([]byte, 1000))
				w.(http.Flusher).Flush()
				panic(http.ErrAbortHandler)
			},
		}))
		f := hostileFed(t, r, mediaclient.FederationOptions{})
		md, err := f.Download(t.Context(), mustURI(t, "mxc://remote.test/abc"))
		_, err = readAll(t, md, err)
		if !errors.Is(err, mediaclient.ErrTruncated) {
			t.Errorf("err = %v; want ErrTruncated", err)
		}
		if a, b := countPath(r, fedPath), countPath(r, "/cut"); a > 1+3*2 || b > 1+3*2 {
			t.Errorf("%d federation requests, %d Location requests; want at most 7 each", a, b)
		}
		signedOnlyAtFederation(t, r)
	})
}

// TestAttack4LocationNotCached: neither a Location nor a permanent redirect after it is
// remembered: each download asks the federation endpoint and follows the chain anew.
func TestAttack4LocationNotCached(t *testing.T) {
	r := newHostileRemote(t, routes(map[string]http.HandlerFunc{
		fedPath: func(w http.ResponseWriter, _ *http.Request) { writeMultipart(w, "Location: /loc\r\n") },
		"/loc": func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "/final", http.StatusPermanentRedirect)
		},
		"/final": func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "bytes") },
	}))
	f := hostileFed(t, r, mediaclient.FederationOptions{})
	for i := 0; i < 2; i++ {
		md, err := f.Download(t.Context(), mustURI(t, "mxc://remote.test/abc"))
		if got, err := readAll(t, md, err); err != nil || string(got) != "bytes" {
			t.Fatalf("got %q, %v", got, err)
		}
	}
	if a, b, c := countPath(r, fedPath), countPath(r, "/loc"), countPath(r, "/final"); a != 2 || b != 2 || c != 2 {
		t.Errorf("federation %d, Location %d, final %d; want 2 each", a, b, c)
	}
}

// TestAttack4HostileMultipart: answers that bend the multipart/mixed form give the exact media or
// a typed error, never other bytes taken for the media.
func TestAttack4HostileMultipart(t *testing.T) {
	const media = "0123456789"
	meta := "--b0\r\nContent-Type: application/json\r\n\r\n{}\r\n"
	for _, tc := range []struct {
		name, ct, body string
		want           string // the media, or "" for an error
		is             error  // the error it must match
	}{
		{"bytes part without Content-Type", "", meta + "--b0\r\n\r\n" + media + "\r\n--b0--\r\n", media, nil},
		{"more than two parts: a Location after the bytes", "", meta + "--b0\r\n\r\n" + media + "\r\n--b0\r\nLocation: https://127.0.0.1:1/\r\n\r\n\r\n--b0--\r\n", media, nil},
		{"nested multipart is bytes", "", meta + "--b0\r\nContent-Type: multipart/mixed; boundary=b1\r\n\r\n--b1\r\n\r\n" + media + "\r\n--b1--\r\n--b0--\r\n", "--b1\r\n\r\n" + media + "\r\n--b1--", nil},
		{"part's Content-Range is not a range", "", meta + "--b0\r\nContent-Range: bytes 5-9/10\r\n\r\n" + media + "\r\n--b0--\r\n", media, nil},
		{"part's Content-Length longer than its bytes", "", meta + "--b0\r\nContent-Length: 20\r\n\r\n" + media + "\r\n--b0--\r\n", "", mediaclient.ErrTruncated},
		{"boundary inside the bytes, with a Content-Length", "", meta + "--b0\r\nContent-Length: 10\r\n\r\n01234\r\n--b0\r\n\r\n789\r\n--b0--\r\n", "", mediaclient.ErrTruncated},
		{"part's Content-Length over the size limit", "", meta + "--b0\r\nContent-Length: 1000000\r\n\r\n" + media + "\r\n--b0--\r\n", "", mediaclient.ErrTooLarge},
		{"first part is not JSON", "", "--b0\r\nContent-Type: image/png\r\n\r\n{}\r\n--b0\r\n\r\n" + media + "\r\n--b0--\r\n", "", mediaclient.ErrBadMultipart},
		{"first part is the bytes", "", "--b0\r\n\r\n" + media + "\r\n--b0--\r\n", "", mediaclient.ErrBadMultipart},
		{"huge part headers", "", meta + "--b0\r\nX-Pad: " + strings.Repeat("x", 1<<20) + "\r\n\r\n" + media + "\r\n--b0--\r\n", "", mediaclient.ErrBadMultipart},
		{"many part headers", "", meta + "--b0\r\n" + strings.Repeat("X-A: b\r\n", 60000) + "\r\n" + media + "\r\n--b0--\r\n", "", mediaclient.ErrBadMultipart},
		{"huge preamble", "", strings.Repeat("p", 300<<10) + "\r\n" + meta + "--b0\r\n\r\n" + media + "\r\n--b0--\r\n", "", mediaclient.ErrBadMultipart},
		{"duplicate boundary parameter", "multipart/mixed; boundary=b0; boundary=b1", meta + "--b0\r\n\r\n" + media + "\r\n--b0--\r\n", "", mediaclient.ErrBadMultipart},
		{"form-data", "multipart/form-data; boundary=b0", meta + "--b0\r\n\r\n" + media + "\r\n--b0--\r\n", "", mediaclient.ErrBadMultipart},
		{"mixed case media type", "Multipart/Mixed; BOUNDARY=b0", meta + "--b0\r\n\r\n" + media + "\r\n--b0--\r\n", media, nil},
		{"no parts at all", "", "--b0--\r\n", "", mediaclient.ErrBadMultipart},
		{"Location part with a body", "", meta + "--b0\r\nLocation: /media\r\nContent-Length: 3\r\n\r\nbad\r\n--b0--\r\n", media, nil},
		{"two Location values", "", meta + "--b0\r\nLocation: /media\r\nLocation: https://127.0.0.1:1/\r\n\r\n\r\n--b0--\r\n", "", mediaclient.ErrRedirectRefused},
		{"Location with a control character", "", meta + "--b0\r\nLocation: /me\x01dia\r\n\r\n\r\n--b0--\r\n", "", mediaclient.ErrBadMultipart},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newHostileRemote(t, routes(map[string]http.HandlerFunc{
				fedPath: func(w http.ResponseWriter, _ *http.Request) {
					ct := tc.ct
					if ct == "" {
						ct = "multipart/mixed; boundary=b0"
					}
					w.Header().Set("Content-Type", ct)
					io.WriteString(w, tc.body)
				},
				"/media": func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, media) },
			}))
			f := hostileFed(t, r, mediaclient.FederationOptions{Options: mediaclient.Options{MaxSize: 100_000}})
			md, err := f.Download(t.Context(), mustURI(t, "mxc://remote.test/abc"))
			got, err := readAll(t, md, err)
			if tc.want != "" {
				if err != nil || string(got) != tc.want {
					t.Fatalf("got %q, %v; want %q", got, err, tc.want)
				}
			} else if !errors.Is(err, tc.is) {
				t.Fatalf("got %q, err = %v; want %v", got, err, tc.is)
			}
			var me *mediaclient.Error
			if err != nil && !errors.As(err, &me) {
				t.Errorf("err = %#v; want an *Error", err)
			}
			signedOnlyAtFederation(t, r)
		})
	}
}

// TestAttack4StalledHeadAndBody: a metadata part that never ends, and a media part that stops,
// count as stalled after StallTimeout; the media part is resumed through the federation endpoint.
func TestAttack4StalledHeadAndBody(t *testing.T) {
	quit := make(chan struct{})
	var calls sync.Mutex
	n := 0
	r := newHostileRemote(t, routes(map[string]http.HandlerFunc{
		fedPath: func(w http.ResponseWriter, req *http.Request) {
			w.Header().Set("Content-Type", "multipart/mixed; boundary=b0")
			w.WriteHeader(200)
			io.WriteString(w, "--b0\r\nContent-Type: application/json\r\n\r\n{")
			w.(http.Flusher).Flush()
			select {
			case <-req.Context().Done():
			case <-quit:
			}
		},
		"/_matrix/federation/v1/media/download/body": func(w http.ResponseWriter, req *http.Request) {
			calls.Lock()
			n++
			first := n == 1
			calls.Unlock()
			w.Header().Set("Content-Type", "multipart/mixed; boundary=b0")
			w.WriteHeader(200)
			io.WriteString(w, "--b0\r\nContent-Type: application/json\r\n\r\n{}\r\n--b0\r\nContent-Length: 10\r\n\r\n01234")
			if first {
				w.(http.Flusher).Flush()
				select {
				case <-req.Context().Done():
				case <-quit:
				}
				return
			}
			io.WriteString(w, "56789\r\n--b0--\r\n")
		},
	}))
	t.Cleanup(func() { close(quit) })
	f := hostileFed(t, r, mediaclient.FederationOptions{Options: mediaclient.Options{StallTimeout: stallWindow}})
	if _, err := f.Download(t.Context(), mustURI(t, "mxc://remote.test/abc")); !errors.Is(err, mediaclient.ErrStalled) {
		t.Errorf("stalled metadata part: err = %v; want ErrStalled", err)
	}
	md, err := f.Download(t.Context(), mustURI(t, "mxc://remote.test/body"))
	if got, err := readAll(t, md, err); err != nil || string(got) != "0123456789" {
		t.Errorf("stalled media part: got %q, %v; want it resumed", got, err)
	}
}

// TestAttack4ErrorsHoldNoSecret: neither the X-Matrix signature nor a Location's signed query
// reaches an error, its hop records or its HTTPError, whatever failed: the federation endpoint's
// error answer, a Location that cannot be connected to, one that answers an error.
func TestAttack4ErrorsHoldNoSecret(t *testing.T) {
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	closedPort := closed.Addr().(*net.TCPAddr).Port
	closed.Close()
	var r *hostileRemote
	r = newHostileRemote(t, routes(map[string]http.HandlerFunc{
		"/_matrix/federation/v1/media/download/err": func(w http.ResponseWriter, req *http.Request) {
			w.Header().Set("Location", "https://cdn.example/x?sig=SECRET")
			w.WriteHeader(403)
			io.WriteString(w, `{"errcode":"M_FORBIDDEN","error":"no"}`)
		},
		"/_matrix/federation/v1/media/download/closed": func(w http.ResponseWriter, _ *http.Request) {
			writeMultipart(w, "Location: https://127.0.0.1:"+strconv.Itoa(closedPort)+"/x?sig=SECRET\r\n")
		},
		"/_matrix/federation/v1/media/download/status": func(w http.ResponseWriter, _ *http.Request) {
			writeMultipart(w, "Location: https://"+r.hostPort()+"/s?sig=SECRET\r\n")
		},
		"/s": func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Location", "/s?sig=SECRET")
			w.WriteHeader(403)
			io.WriteString(w, `<Error><Code>AccessDenied</Code><Key>s?sig=SECRET</Key></Error>`)
		},
	}))
	f := hostileFed(t, r, mediaclient.FederationOptions{})
	port := r.port()
	mediaclient.SetFederationClassifier(f, func(ap netip.AddrPort) string {
		if p := int(ap.Port()); p == port || p == closedPort {
			return "public"
		}
		return mediaclient.Classify(ap)
	})
	for _, id := range []string{"err", "closed", "status"} {
		_, err := f.Download(t.Context(), mustURI(t, "mxc://remote.test/"+id))
		if err == nil {
			t.Fatalf("%s: no error", id)
		}
		text := fmt.Sprintf("%v %+v %#v", err, err, err)
		var me *mediaclient.Error
		if errors.As(err, &me) {
			for _, h := range me.Hops {
				text += fmt.Sprintf(" %+v %v", h, h.Err)
			}
		}
		var he mautrixHTTPError
		if errors.As(err, &he) {
			if he.Request != nil {
				text += he.Request.URL.String() + fmt.Sprint(he.Request.Header)
			}
			if he.Response != nil {
				text += fmt.Sprint(he.Response.Header)
				if he.Response.Request != nil {
					text += he.Response.Request.URL.String() + fmt.Sprint(he.Response.Request.Header)
				}
			}
			text += he.ResponseBody
		}
		for _, secret := range []string{"SECRET", "X-Matrix", "sig="} {
			if strings.Contains(text, secret) {
				t.Errorf("%s: the error carries %q: %s", id, secret, text)
			}
		}
	}
}

type mautrixHTTPError = mautrix.HTTPError

// TestAttack4NoLeaks: hostile answers (a stalled head, a bad multipart, a refused Location, a
// Location that fails, an inline body and a Location body closed half-read) leave no goroutine
// running once the client's idle connections are closed.
func TestAttack4NoLeaks(t *testing.T) {
	leakcheck.Check(t)
	quit := make(chan struct{})
	var r *hostileRemote
	big := strings.Repeat("x", 1<<20)
	r = newHostileRemote(t, routes(map[string]http.HandlerFunc{
		"/_matrix/federation/v1/media/download/stall": func(w http.ResponseWriter, req *http.Request) {
			w.Header().Set("Content-Type", "multipart/mixed; boundary=b0")
			w.WriteHeader(200)
			io.WriteString(w, "--b0\r\n")
			w.(http.Flusher).Flush()
			select {
			case <-req.Context().Done():
			case <-quit:
			}
		},
		"/_matrix/federation/v1/media/download/bad": func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "multipart/mixed; boundary=b0")
			io.WriteString(w, "--b0\r\n\r\n[]\r\n--b0--")
		},
		"/_matrix/federation/v1/media/download/private": func(w http.ResponseWriter, _ *http.Request) {
			writeMultipart(w, "Location: https://127.0.0.1:1/\r\n")
		},
		"/_matrix/federation/v1/media/download/fails": func(w http.ResponseWriter, _ *http.Request) {
			writeMultipart(w, "Location: /fail\r\n")
		},
		"/fail": func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(500) },
		"/_matrix/federation/v1/media/download/inline": func(w http.ResponseWriter, _ *http.Request) {
			writeMultipart(w, "\r\n"+big)
		},
		"/_matrix/federation/v1/media/download/loc": func(w http.ResponseWriter, _ *http.Request) {
			writeMultipart(w, "Location: /big\r\n")
		},
		"/big": func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, big) },
	}))
	t.Cleanup(func() { close(quit) })
	f := hostileFed(t, r, mediaclient.FederationOptions{Options: mediaclient.Options{StallTimeout: stallWindow}})
	for _, id := range []string{"stall", "bad", "private", "fails"} {
		if _, err := f.Download(t.Context(), mustURI(t, "mxc://remote.test/"+id)); err == nil {
			t.Errorf("%s: no error", id)
		}
	}
	for _, id := range []string{"inline", "loc"} {
		md, err := f.Download(t.Context(), mustURI(t, "mxc://remote.test/"+id))
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		if _, err := io.ReadFull(md, make([]byte, 1000)); err != nil {
			t.Errorf("%s: %v", id, err)
		}
		md.Close()
	}
}

// TestAttack4PooledConnectionRechecked: with private remote servers allowed, the connection of a
// .well-known request (to a private address, kept in the pool) is not handed to a Location on the
// same origin: the strict guard checks a reused connection too.
func TestAttack4PooledConnectionRechecked(t *testing.T) {
	var r *hostileRemote
	r = newHostileRemote(t, routes(map[string]http.HandlerFunc{
		"/.well-known/matrix/server": func(w http.ResponseWriter, _ *http.Request) {
			fmt.Fprintf(w, `{"m.server":"localhost:%d"}`, r.port())
		},
		fedPath: func(w http.ResponseWriter, _ *http.Request) { writeMultipart(w, "Location: https://localhost/x\r\n") },
		"/x":    func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "internal") },
	}))
	key := federation.GenerateSigningKey()
	tr := redialTransport(r, "localhost:443")
	dialed := dialLog(tr)
	f, err := mediaclient.NewFederationClient(mediaclient.FederationOptions{ServerName: originName, Key: key, AllowPrivateServers: true,
		Options: mediaclient.Options{Transport: tr}})
	if err != nil {
		t.Fatal(err)
	}
	defer f.CloseIdleConnections()
	_, err = f.Download(t.Context(), mustURI(t, "mxc://localhost/abc"))
	if !errors.Is(err, mediaclient.ErrPrivateAddress) {
		t.Errorf("err = %v; want ErrPrivateAddress", err)
	}
	n443 := 0
	for _, a := range dialed() {
		if a == "localhost:443" {
			n443++
		}
	}
	if n443 != 1 {
		t.Errorf("dials %v; want localhost:443 once (the Location reusing the .well-known connection)", dialed())
	}
	if n := countPath(r, "/x"); n != 0 || countPath(r, fedPath) != 1 {
		t.Errorf("requests %v; want the federation request and no Location request", r.requests())
	}
}

// TestAttack4WellKnownIntoPrivate: server discovery's .well-known naming an internal address, in
// several forms, is refused before any connection when private servers are not allowed.
func TestAttack4WellKnownIntoPrivate(t *testing.T) {
	trapPort, accepted := trap(t)
	tp := strconv.Itoa(trapPort)
	for _, server := range []string{"127.0.0.1:" + tp, "localhost:" + tp, "[::ffff:127.0.0.1]:" + tp, "[::1]:" + tp, "0.0.0.0:" + tp, "10.1.2.3:8448"} {
		t.Run(server, func(t *testing.T) {
			r := newHostileRemote(t, routes(map[string]http.HandlerFunc{
				"/.well-known/matrix/server": func(w http.ResponseWriter, _ *http.Request) {
					fmt.Fprintf(w, `{"m.server":%q}`, server)
				},
			}))
			key := federation.GenerateSigningKey()
			f, err := mediaclient.NewFederationClient(mediaclient.FederationOptions{ServerName: originName, Key: key,
				Options: mediaclient.Options{Transport: redialTransport(r, "localhost:443")}})
			if err != nil {
				t.Fatal(err)
			}
			defer f.CloseIdleConnections()
			port := r.port()
			mediaclient.SetFederationClassifier(f, func(ap netip.AddrPort) string {
				if p := int(ap.Port()); p == port || p == 443 {
					return "public" // the .well-known server
				}
				return mediaclient.Classify(ap)
			})
			before := accepted.Load()
			_, err = f.Download(t.Context(), mustURI(t, "mxc://localhost/abc"))
			if !errors.Is(err, mediaclient.ErrPrivateAddress) {
				t.Errorf("err = %v; want ErrPrivateAddress", err)
			}
			if n := accepted.Load() - before; n != 0 {
				t.Errorf("the trap accepted %d connections", n)
			}
			if n := countPath(r, "/.well-known/matrix/server"); n != 1 {
				t.Errorf("%d .well-known requests", n)
			}
		})
	}
}

// TestAttack4LogsHoldNoSecret: at debug level, the lines of hostile downloads (a Location with a
// signed query that fails, is re-requested, redirects, is refused) carry neither the signature
// nor the signed query.
func TestAttack4LogsHoldNoSecret(t *testing.T) {
	var buf bytes.Buffer
	var mu sync.Mutex
	log := zerolog.New(zerolog.SyncWriter(&lockedWriter{&mu, &buf})).Level(zerolog.DebugLevel)
	r := newHostileRemote(t, routes(map[string]http.HandlerFunc{
		fedPath: func(w http.ResponseWriter, _ *http.Request) { writeMultipart(w, "Location: /a?sig=SECRET\r\n") },
		"/a": func(w http.ResponseWriter, req *http.Request) {
			http.Redirect(w, req, "/b?sig=SECRET", http.StatusTemporaryRedirect)
		},
		"/b": func(w http.ResponseWriter, req *http.Request) {
			http.Redirect(w, req, "https://127.0.0.1:1/c?sig=SECRET", http.StatusTemporaryRedirect)
		},
		"/_matrix/federation/v1/media/download/fail": func(w http.ResponseWriter, _ *http.Request) {
			writeMultipart(w, "Location: /f?sig=SECRET\r\n")
		},
		"/f": func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(500) },
	}))
	f := hostileFed(t, r, mediaclient.FederationOptions{Options: mediaclient.Options{Logger: &log}})
	for _, id := range []string{"abc", "fail"} {
		if _, err := f.Download(t.Context(), mustURI(t, "mxc://remote.test/"+id)); err == nil {
			t.Errorf("%s: no error", id)
		}
	}
	mu.Lock()
	out := buf.String()
	mu.Unlock()
	if !strings.Contains(out, "location") {
		t.Errorf("no debug line about the Location: %s", out)
	}
	for _, s := range []string{"SECRET", "X-Matrix", "sig="} {
		if strings.Contains(out, s) {
			t.Errorf("the log carries %q:\n%s", s, out)
		}
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// TestAttack4ThumbnailLocationStrict: the thumbnail endpoint's Location is under the same strict
// guard, and its legacy fallback is unauthenticated with allow_remote=false.
func TestAttack4ThumbnailLocationStrict(t *testing.T) {
	trapPort, accepted := trap(t)
	r := newHostileRemote(t, routes(map[string]http.HandlerFunc{
		"/_matrix/federation/v1/media/thumbnail/abc": func(w http.ResponseWriter, _ *http.Request) {
			writeMultipart(w, "Location: https://localhost:"+strconv.Itoa(trapPort)+"/t\r\n")
		},
		"/_matrix/federation/v1/media/thumbnail/old":  unrecognized,
		"/_matrix/media/v3/thumbnail/remote.test/old": func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "thumb") },
	}))
	f := hostileFed(t, r, mediaclient.FederationOptions{})
	opts := mediaclient.ThumbnailOptions{Width: 32, Height: 32}
	if _, err := f.Thumbnail(t.Context(), mustURI(t, "mxc://remote.test/abc"), opts); !errors.Is(err, mediaclient.ErrPrivateAddress) || accepted.Load() != 0 {
		t.Errorf("err = %v, trap accepted %d; want ErrPrivateAddress before any connection", err, accepted.Load())
	}
	md, err := f.Thumbnail(t.Context(), mustURI(t, "mxc://remote.test/old"), opts)
	if got, err := readAll(t, md, err); err != nil || string(got) != "thumb" {
		t.Fatalf("legacy thumbnail: %q, %v", got, err)
	}
	for _, q := range r.requests() {
		if strings.HasPrefix(q.Path, "/_matrix/media/v3/") && (q.Authorization != "" || !strings.Contains(q.RawQuery, "allow_remote=false")) {
			t.Errorf("legacy thumbnail request %+v", q)
		}
	}
	signedOnlyAtFederation(t, r)
}
