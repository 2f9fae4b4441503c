package mediaclient_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/mxfetch/mxfetch/internal/leakcheck"
	"github.com/mxfetch/mxfetch/mediaclient"
	"github.com/mxfetch/mxfetch/testserver"
)

func TestMetadata(t *testing.T) {
	srv, c := setup(t, testserver.Config{Profile: testserver.ProfileMediaRepo}, mediaclient.Options{})
	uri := srv.AddMedia([]byte(`{"a":1}`), testserver.MediaOptions{ContentType: "application/json", FileName: "../../etc/.passwd"})
	got, m, err := fetch(t, c, uri)
	if err != nil || string(got) != `{"a":1}` {
		t.Fatal(got, err)
	}
	if m.ContentType != "application/json" {
		t.Errorf("ContentType %q; want application/json", m.ContentType)
	}
	if m.ContentLength != 7 {
		t.Errorf("ContentLength %d; want 7", m.ContentLength)
	}
	if m.FileName != "passwd" {
		t.Errorf("FileName %q; want the sanitised passwd", m.FileName)
	}
	if m.URI != uri {
		t.Errorf("URI %v; want %v", m.URI, uri)
	}
	if m.API != mediaclient.APIV1 {
		t.Errorf("API %s; want v1", m.API)
	}
	if m.Header.Get("ETag") == "" {
		t.Error("final headers missing")
	}
}

func TestTruncatedBody(t *testing.T) {
	for _, at := range []testserver.Role{testserver.RoleHomeserver, testserver.RoleCDN} {
		when := testserver.Never
		if at == testserver.RoleCDN {
			when = testserver.Always
		}
		srv, c := setup(t, testserver.Config{Behavior: &testserver.Behavior{V3Redirect: when, Faults: []testserver.Fault{{At: at, Truncate: true}}}}, mediaclient.Options{API: mediaclient.APIV3, DisableResume: true})
		uri := srv.AddMedia(content(200_000, 3), testserver.MediaOptions{})
		got, _, err := fetch(t, c, uri)
		if !errors.Is(err, mediaclient.ErrTruncated) {
			t.Errorf("at role %d: got %d bytes, err %v; want ErrTruncated", at, len(got), err)
		}
		var e *mediaclient.Error
		if !errors.As(err, &e) {
			t.Errorf("at role %d: err %v; want an *Error", at, err)
		} else if e.URI != uri.String() {
			t.Errorf("at role %d: Error.URI %q; want %q", at, e.URI, uri)
		}
	}
}

func TestSizeLimit(t *testing.T) {
	srv, c := setup(t, testserver.Config{Profile: testserver.ProfileSynapse}, mediaclient.Options{API: mediaclient.APIV3, MaxSize: 1000})
	small := srv.AddMedia(content(1000, 1), testserver.MediaOptions{})
	big := srv.AddMedia(content(1001, 1), testserver.MediaOptions{})
	if _, _, err := fetch(t, c, small); err != nil {
		t.Fatalf("at the limit: %v", err)
	}
	if _, err := c.Download(t.Context(), big); !errors.Is(err, mediaclient.ErrTooLarge) {
		t.Fatalf("Content-Length over the limit: err = %v", err)
	}
	// Per call override.
	if m, err := c.Download(t.Context(), big, mediaclient.DownloadOptions{MaxSize: 2000}); err != nil {
		t.Fatalf("override: %v", err)
	} else {
		m.Close()
	}

	// Without Content-Length the limit strikes while reading.
	srv.SetBehavior(testserver.Behavior{NoContentLength: true})
	m, err := c.Download(t.Context(), big)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if m.ContentLength != -1 {
		t.Fatalf("ContentLength = %d; the server should have sent none", m.ContentLength)
	}
	n, err := io.Copy(io.Discard, m)
	if !errors.Is(err, mediaclient.ErrTooLarge) || n != 1000 {
		t.Errorf("read %d bytes, err %v; want 1000 and ErrTooLarge", n, err)
	}
	if got, _, err := fetch(t, c, small); err != nil || len(got) != 1000 {
		t.Errorf("chunked at the limit: %d bytes, %v", len(got), err)
	}
}

func TestCancelMidBody(t *testing.T) {
	srv, c := setup(t, testserver.Config{Behavior: &testserver.Behavior{SlowBody: 5 * time.Millisecond}}, mediaclient.Options{API: mediaclient.APIV3})
	uri := srv.AddMedia(content(1<<20, 9), testserver.MediaOptions{})
	ctx, cancel := context.WithCancel(t.Context())
	m, err := c.Download(ctx, uri)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1024)
	if _, err := io.ReadFull(m, buf); err != nil {
		t.Fatal(err)
	}
	cancel()
	_, err = io.Copy(io.Discard, m)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v; want context.Canceled", err)
	}
	m.Close()
}

// TestCloseEarlyReleases closes downloads of 4 MiB after their first 100 bytes: each Close must close
// the connection (the rest of the body is not read to reuse it), so that the next download dials a
// new one, and a read after Close must fail.
func TestCloseEarlyReleases(t *testing.T) {
	tr := mediaclient.NewTransport()
	conns := trackConns(tr)
	srv, c := setup(t, testserver.Config{Profile: testserver.ProfileSynapse}, mediaclient.Options{API: mediaclient.APIV3, Transport: tr})
	uri := srv.AddMedia(content(4<<20, 2), testserver.MediaOptions{})
	const n = 20
	for i := range n {
		m, err := c.Download(t.Context(), uri)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(m, make([]byte, 100)); err != nil {
			t.Fatalf("download %d: %v", i, err)
		}
		m.Close()
		select {
		case <-conns.closed:
		case <-time.After(5 * time.Second):
			t.Fatalf("download %d: the connection is still open 5 s after Close", i)
		}
		if _, err := m.Read(make([]byte, 1)); err == nil {
			t.Fatalf("download %d: read after close succeeded", i)
		}
	}
	if open := conns.open.Load(); open != 0 {
		t.Errorf("%d connections open after the last Close; want 0", open)
	}
	if got := srv.Connections(testserver.OriginHomeserver); got != n {
		t.Errorf("the server accepted %d connections; want one per download, %d", got, n)
	}
}

// connTracker counts the connections of a Transport that are open and reports each one closed.
type connTracker struct {
	open   atomic.Int64
	closed chan struct{} // receives once per closed connection
}

// trackConns wraps tr's dialer so that the returned tracker sees every connection tr opens.
func trackConns(tr *http.Transport) *connTracker {
	ct := &connTracker{closed: make(chan struct{}, 1024)}
	dial := tr.DialContext
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		ct.open.Add(1)
		return &trackedConn{Conn: conn, tracker: ct}, nil
	}
	return ct
}

type trackedConn struct {
	net.Conn
	tracker *connTracker
	once    sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.tracker.open.Add(-1)
		c.tracker.closed <- struct{}{}
	})
	return c.Conn.Close()
}

func TestErrors(t *testing.T) {
	srv, c := setup(t, testserver.Config{Profile: testserver.ProfileMediaRepo}, mediaclient.Options{})
	missing := id.ContentURI{Homeserver: srv.ServerName, FileID: "nope"}
	_, err := c.Download(t.Context(), missing)
	var e *mediaclient.Error
	if !errors.As(err, &e) {
		t.Fatalf("err = %#v; want an *Error", err)
	}
	if e.Op != "download" {
		t.Errorf("Error.Op %q; want download", e.Op)
	}
	if e.URI != missing.String() {
		t.Errorf("Error.URI %q; want %q", e.URI, missing)
	}
	if !errors.Is(err, mautrix.MNotFound) {
		t.Errorf("errors.Is(err, MNotFound) is false for %v", err)
	}
	var he mautrix.HTTPError
	if !errors.As(err, &he) {
		t.Errorf("err = %v; want a mautrix.HTTPError", err)
	} else {
		if he.Response.StatusCode != 404 {
			t.Errorf("HTTPError status %d; want 404", he.Response.StatusCode)
		}
		if he.RespError == nil || he.RespError.ErrCode != "M_NOT_FOUND" {
			t.Errorf("HTTPError.RespError %+v; want M_NOT_FOUND", he.RespError)
		}
	}
	if strings.Contains(err.Error(), srv.AccessToken) {
		t.Error("token in error text")
	}
	_, err = c.Thumbnail(t.Context(), missing, mediaclient.ThumbnailOptions{Width: 1, Height: 1})
	if !errors.As(err, &e) || e.Op != "thumbnail" {
		t.Errorf("thumbnail: err = %v; want an *Error with Op thumbnail", err)
	}
	if !errors.Is(err, mautrix.MNotFound) {
		t.Errorf("thumbnail: err = %v; want to match MNotFound", err)
	}

	bad := newClient(t, srv, mediaclient.Options{AccessToken: "wrong", API: mediaclient.APIV1})
	if _, err := bad.Download(t.Context(), missing); !errors.Is(err, mautrix.MUnknownToken) || strings.Contains(err.Error(), "wrong") {
		t.Errorf("wrong token: %v", err)
	}
}

func TestBadInput(t *testing.T) {
	for _, o := range []mediaclient.Options{
		{},
		{HomeserverURL: "   "},
		{HomeserverURL: "matrix.example.org"},
		{HomeserverURL: "ftp://matrix.example.org"},
		{HomeserverURL: "https://"},
		{HomeserverURL: "https://user:pw@matrix.example.org"},
		{HomeserverURL: "https://matrix.example.org?x=1"},
		{HomeserverURL: "https://matrix.example.org", API: "v2"},
		{HomeserverURL: "https://matrix.example.org", MaxSize: -1},
		{HomeserverURL: "https://matrix.example.org", AccessToken: "a\nb"},
		{HomeserverURL: "://bad"},
	} {
		if _, err := mediaclient.New(o); !errors.Is(err, mediaclient.ErrInvalidArgument) {
			t.Errorf("New(%+v): err = %v; want ErrInvalidArgument", o, err)
		}
	}

	srv, c := setup(t, testserver.Config{}, mediaclient.Options{})
	for _, s := range []string{"", "mxc://", "mxc://server", "mxc://server/", "mxc:///media", "http://server/media", "mxc://server/a/b",
		"mxc://server/..", "mxc://server/a%2Fb", "mxc://server/a b", "mxc://ser ver/a", "mxc://server:99999/a", "mxc://server:/a",
		"mxc://[::1/a", "mxc://[1.2.3.4]/a", "mxc://a..b/c", "MXC://server/a", "mxc://server/" + strings.Repeat("a", 256)} {
		if _, err := mediaclient.ParseURI(s); !errors.Is(err, mediaclient.ErrInvalidURI) {
			t.Errorf("ParseURI(%q): err = %v; want ErrInvalidURI", s, err)
		}
	}
	for _, s := range []string{"mxc://example.org/abc-DEF_123", "mxc://1.2.3.4:8448/x", "mxc://[::1]:8448/x", "mxc://[2001:db8::1]/x", "mxc://localhost/x"} {
		if _, err := mediaclient.ParseURI(s); err != nil {
			t.Errorf("ParseURI(%q): %v", s, err)
		}
	}
	for _, uri := range []id.ContentURI{{}, {Homeserver: srv.ServerName, FileID: "../x"}, {Homeserver: "a/b", FileID: "x"}} {
		if _, err := c.Download(t.Context(), uri); !errors.Is(err, mediaclient.ErrInvalidURI) {
			t.Errorf("Download(%v): err = %v", uri, err)
		}
	}
	uri := srv.AddMedia([]byte("x"), testserver.MediaOptions{})
	for _, o := range []mediaclient.ThumbnailOptions{{}, {Width: 0, Height: 1}, {Width: -1, Height: 1}, {Width: 1, Height: 1 << 20}, {Width: 1, Height: 1, Method: "zoom"}, {Width: 1, Height: 1, MaxSize: -1}} {
		if _, err := c.Thumbnail(t.Context(), uri, o); !errors.Is(err, mediaclient.ErrInvalidArgument) {
			t.Errorf("Thumbnail(%+v): err = %v", o, err)
		}
	}
	for _, o := range []mediaclient.DownloadOptions{{FileName: "a/b"}, {FileName: ".."}, {MaxSize: -5}} {
		if _, err := c.Download(t.Context(), uri, o); !errors.Is(err, mediaclient.ErrInvalidArgument) {
			t.Errorf("Download(%+v): err = %v", o, err)
		}
	}
	if n := len(srv.Requests()); n != 0 {
		t.Errorf("bad input made %d requests; want none", n)
	}
}

func TestURLBuilders(t *testing.T) {
	srv := testserver.New(t, testserver.Config{Profile: testserver.ProfileSynapse})
	uri := srv.AddMedia([]byte("x"), testserver.MediaOptions{MediaID: "abc-DEF_1"})
	c := newClient(t, srv, mediaclient.Options{})
	got, err := c.ThumbnailURL(t.Context(), uri, mediaclient.ThumbnailOptions{Width: 64, Height: 32, Method: "scale", Animated: true})
	want := srv.URL + "/_matrix/client/v1/media/thumbnail/" + srv.ServerName + "/abc-DEF_1?width=64&height=32&method=scale&animated=true&allow_redirect=true&timeout_ms=20000"
	if err != nil || got != want {
		t.Errorf("ThumbnailURL = %s, %v\nwant %s", got, err, want)
	}
	srv.ResetLog()
	m, err := c.Thumbnail(t.Context(), uri, mediaclient.ThumbnailOptions{Width: 64, Height: 32, Method: "scale", Animated: true})
	if err != nil {
		t.Fatal(err)
	}
	m.Close()
	if first := srv.Requests()[0]; srv.URL+first.Path+"?"+first.RawQuery != got {
		t.Errorf("first request %s?%s differs from the URL builder's %s", first.Path, first.RawQuery, got)
	}

	v3 := newClient(t, srv, mediaclient.Options{API: mediaclient.APIV3, HomeserverURL: "https://matrix.example.org/prefix/", ServerUploadWait: -1})
	got, _ = v3.DownloadURL(t.Context(), uri, mediaclient.DownloadOptions{FileName: "my file?#.png"})
	want = "https://matrix.example.org/prefix/_matrix/media/v3/download/" + srv.ServerName + "/abc-DEF_1/my%20file%3F%23.png?allow_redirect=true"
	if got != want {
		t.Errorf("DownloadURL = %s\nwant %s", got, want)
	}
}

func TestFileNameInPath(t *testing.T) {
	srv, c := setup(t, testserver.Config{Profile: testserver.ProfileSynapse}, mediaclient.Options{})
	uri := srv.AddMedia([]byte("x"), testserver.MediaOptions{})
	m, err := c.Download(t.Context(), uri, mediaclient.DownloadOptions{FileName: "report 2026.pdf"})
	if err != nil {
		t.Fatal(err)
	}
	m.Close()
	if m.FileName != "report 2026.pdf" || !strings.HasSuffix(srv.Requests()[1].Path, "/report 2026.pdf") {
		t.Errorf("file name %q, path %s", m.FileName, srv.Requests()[1].Path)
	}
}

// TestParallel runs 100 downloads through redirects at once on one Client.
func TestParallel(t *testing.T) {
	leakcheck.Check(t)
	srv := testserver.New(t, testserver.Config{Profile: testserver.ProfileMediaRepo})
	tr := mediaclient.NewTransport()
	c := newClient(t, srv, mediaclient.Options{Transport: tr})
	const n = 100
	uris := make([]id.ContentURI, n)
	sums := make([][32]byte, n)
	for i := range n {
		data := content(10_000+i*97, byte(i))
		uris[i], sums[i] = srv.AddMedia(data, testserver.MediaOptions{}), sha256.Sum256(data)
	}
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			got, _, err := fetch(t, c, uris[i])
			if err != nil || sha256.Sum256(got) != sums[i] {
				t.Errorf("download %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	if cdn := srv.RequestsTo(testserver.OriginCDN); len(cdn) != n || credentialsAt(srv, testserver.OriginCDN) != 0 {
		t.Errorf("CDN: %d requests, %d with credentials", len(cdn), credentialsAt(srv, testserver.OriginCDN))
	}
	tr.CloseIdleConnections()
	srv.Close()
}

func Example() {
	srv, _ := testserver.Start(testserver.Config{Profile: testserver.ProfileMediaRepo})
	defer srv.Close()
	uri := srv.AddMedia([]byte("hello from the CDN"), testserver.MediaOptions{ContentType: "text/plain", FileName: "hello.txt"})

	c, _ := mediaclient.New(mediaclient.Options{HomeserverURL: srv.URL, AccessToken: srv.AccessToken})
	media, err := c.Download(context.Background(), uri)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer media.Close()
	data, _ := io.ReadAll(media)
	fmt.Printf("%s (%s, %s)\n", data, media.FileName, media.ContentType)
	for _, hop := range media.Hops() {
		fmt.Println(hop.Status, "credentials:", hop.Credentials)
	}
	// Output:
	// hello from the CDN (hello.txt, text/plain)
	// 307 credentials: true
	// 200 credentials: false
}

func ExampleClient_Thumbnail() {
	srv, _ := testserver.Start(testserver.Config{Profile: testserver.ProfileSynapse})
	defer srv.Close()
	uri := srv.AddMedia([]byte("full"), testserver.MediaOptions{Thumbnail: []byte("small")})

	c, _ := mediaclient.New(mediaclient.Options{HomeserverURL: srv.URL, AccessToken: srv.AccessToken})
	media, err := c.Thumbnail(context.Background(), uri, mediaclient.ThumbnailOptions{Width: 96, Height: 96, Method: "crop"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer media.Close()
	data, _ := io.ReadAll(media)
	fmt.Println(string(data))
	// Output: small
}

func ExampleParseURI() {
	_, err := mediaclient.ParseURI("mxc://example.org/../../secret")
	fmt.Println(errors.Is(err, mediaclient.ErrInvalidURI))
	// Output: true
}
