package mediaclient_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/net/publicsuffix"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/mxfetch/mxfetch/mediaclient"
	"github.com/mxfetch/mxfetch/testserver"
)

// newMediaTransport returns a MediaTransport over base (nil: its own) with millisecond backoff,
// whose idle connections are closed when the test ends.
func newMediaTransport(t testing.TB, base http.RoundTripper, opts mediaclient.Options) *mediaclient.MediaTransport {
	t.Helper()
	if opts.RetryWaitMin == 0 {
		opts.RetryWaitMin, opts.RetryWaitMax = time.Millisecond, 5*time.Millisecond
	}
	mt, err := mediaclient.NewMediaTransport(base, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(mt.CloseIdleConnections)
	return mt
}

// ghost is the appservice user the intents download as.
const ghost = "ghost_1"

// mautrixSetups build the *mautrix.Client whose download methods the tests call, with the transport
// installed (mt non-nil) or not: a plain client as a bot makes it, and the client of an appservice
// intent as bridgev2 makes it (every intent shares the appservice's HTTPClient; that client is what
// ASIntent.DownloadMedia and DownloadMediaToFile call).
var mautrixSetups = []struct {
	name  string
	make  func(t *testing.T, srv *testserver.Server, mt http.RoundTripper) *mautrix.Client
	asked bool // the homeserver requests carry user_id
}{
	{"client", func(t *testing.T, srv *testserver.Server, mt http.RoundTripper) *mautrix.Client {
		cli, err := mautrix.NewClient(srv.URL, id.NewUserID("bot", srv.ServerName), srv.AccessToken)
		if err != nil {
			t.Fatal(err)
		}
		if mt != nil {
			cli.Client.Transport = mt
		}
		t.Cleanup(cli.Client.CloseIdleConnections)
		return cli
	}, false},
	{"appservice intent", func(t *testing.T, srv *testserver.Server, mt http.RoundTripper) *mautrix.Client {
		// The client of an appservice intent, built as appservice.SetHomeserverURL and
		// NewMautrixClient build it (importing appservice itself would add its websocket and YAML
		// modules to the library's module graph, and bridgev2/matrix needs libolm to build): one
		// http.Client with a cookie jar and mautrix's 180 s timeout shared by every intent, the
		// as_token, and user_id on every request.
		jar, _ := cookiejar.New(&cookiejar.Options{PublicSuffixList: publicsuffix.List})
		shared := &http.Client{Timeout: 180 * time.Second, Jar: jar}
		if mt != nil {
			shared.Transport = mt // the one line a bridge adds
		}
		t.Cleanup(shared.CloseIdleConnections)
		hs, err := url.Parse(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		return &mautrix.Client{
			HomeserverURL:       hs,
			UserID:              id.NewUserID(ghost, srv.ServerName),
			SetAppServiceUserID: true,
			AccessToken:         srv.AccessToken,
			UserAgent:           mautrix.DefaultUserAgent,
			Client:              shared,
			Log:                 zerolog.Nop(),
			DefaultHTTPRetries:  0, // 4 in appservice.Create; the counts below are the transport's alone
		}
	}, true},
}

// mautrixMethods are mautrix's own download methods, each reading the media whole.
var mautrixMethods = []struct {
	name  string
	thumb bool
	get   func(ctx context.Context, t *testing.T, cli *mautrix.Client, uri id.ContentURI) ([]byte, error)
}{
	{"DownloadBytes", false, func(ctx context.Context, _ *testing.T, cli *mautrix.Client, uri id.ContentURI) ([]byte, error) {
		return cli.DownloadBytes(ctx, uri) // what ASIntent.DownloadMedia calls
	}},
	{"Download to a file", false, func(ctx context.Context, t *testing.T, cli *mautrix.Client, uri id.ContentURI) ([]byte, error) {
		// What ASIntent.DownloadMediaToFile does: Download, then io.Copy into a temporary file.
		resp, err := cli.Download(ctx, uri)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		f, err := os.Create(filepath.Join(t.TempDir(), "media"))
		if err != nil {
			return nil, err
		}
		defer f.Close()
		if _, err := io.Copy(f, resp.Body); err != nil {
			return nil, err
		}
		return os.ReadFile(f.Name())
	}},
	{"DownloadThumbnail", true, func(ctx context.Context, _ *testing.T, cli *mautrix.Client, uri id.ContentURI) ([]byte, error) {
		resp, err := cli.DownloadThumbnail(ctx, uri, 96, 128, mautrix.DownloadThumbnailExtra{Method: "scale"})
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		return io.ReadAll(resp.Body)
	}},
}

// offHome lists the requests that reached an origin other than the homeserver.
func offHome(srv *testserver.Server) []testserver.Request {
	var out []testserver.Request
	for _, r := range srv.Requests() {
		if r.Origin != srv.Origin(testserver.OriginHomeserver) {
			out = append(out, r)
		}
	}
	return out
}

// leaks counts the requests away from the homeserver that carried a credential or the appservice's
// user_id.
func leaks(srv *testserver.Server) int {
	n := 0
	for _, r := range offHome(srv) {
		if r.HasCredentials() || r.Query().Has("user_id") {
			n++
		}
	}
	return n
}

func rangedAt(srv *testserver.Server, origin testserver.OriginName) int {
	n := 0
	for _, r := range srv.RequestsTo(origin) {
		if r.Header.Get("Range") != "" {
			n++
		}
	}
	return n
}

// mediaRepo is the media-repo profile with every thumbnail redirected too.
func mediaRepo(change func(*testserver.Behavior)) testserver.Behavior {
	b, _ := testserver.ProfileBehavior(testserver.ProfileMediaRepo)
	b.ThumbnailFirstDirect = false
	if change != nil {
		change(&b)
	}
	return b
}

const shortStallTimeout = stallWindow

// TestMediaTransportMautrixMethods drives mautrix's own download methods, from a plain client and
// from an appservice intent, against the media-repo profile and its faults, with the transport
// installed and without it. With it: the exact bytes, no credential and no user_id at any origin but
// the homeserver, bounded chains. Without it: mautrix hands the token to the CDN every time, and
// fails where the transport succeeds.
func TestMediaTransportMautrixMethods(t *testing.T) {
	media := content(200_000, 3)
	thumb := content(150_000, 9)
	for _, sc := range []struct {
		name     string
		behavior testserver.Behavior
		plainOK  bool // mautrix alone gets the bytes (and leaks the token)
		loop     bool // the transport fails with ErrTooManyRedirects
		resumed  bool // the transport resumed at the CDN with Range
	}{
		{name: "307 to a CDN on another port", behavior: mediaRepo(func(b *testserver.Behavior) { b.CDNRejectsAuth = false }), plainOK: true},
		{name: "S3-style CDN refusing Authorization", behavior: mediaRepo(nil)},
		{name: "CDN truncates once", behavior: mediaRepo(func(b *testserver.Behavior) {
			b.CDNRejectsAuth = false
			b.Faults = []testserver.Fault{{At: testserver.RoleCDN, Count: 1, Truncate: true, TruncateAt: 70_000}}
		}), resumed: true},
		{name: "CDN stalls once", behavior: mediaRepo(func(b *testserver.Behavior) {
			b.CDNRejectsAuth = false
			b.Faults = []testserver.Fault{{At: testserver.RoleCDN, Count: 1, Stall: testserver.StallBody, StallAfter: 40_000}}
		}), resumed: true},
		{name: "redirect loop", behavior: mediaRepo(func(b *testserver.Behavior) {
			b.CDNRejectsAuth = false
			b.Chain, b.Loop = []testserver.OriginName{testserver.OriginCDN, testserver.OriginCDNHost}, true
		}), loop: true},
		{name: "ranges answered in chunks after a break", behavior: mediaRepo(func(b *testserver.Behavior) {
			b.CDNRejectsAuth = false
			b.CDN = testserver.Serving{RangeChunk: 32 << 10}
			b.Faults = []testserver.Fault{{At: testserver.RoleCDN, Count: 1, Truncate: true, TruncateAt: 10_000}}
		}), resumed: true},
	} {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			for _, setup := range mautrixSetups {
				for _, method := range mautrixMethods {
					want := media
					if method.thumb {
						want = thumb
					}
					t.Run(setup.name+"/"+method.name+"/with the transport", func(t *testing.T) {
						t.Parallel()
						b := sc.behavior
						srv := testserver.New(t, testserver.Config{Behavior: &b})
						uri := srv.AddMedia(media, testserver.MediaOptions{ContentType: "image/png", Thumbnail: thumb})
						mt := newMediaTransport(t, nil, mediaclient.Options{StallTimeout: shortStallTimeout})
						cli := setup.make(t, srv, mt)
						ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second) // a broken transport fails, not hangs
						defer cancel()
						got, err := method.get(ctx, t, cli, uri)
						switch {
						case sc.loop:
							var he mautrix.HTTPError
							if !errors.Is(err, mediaclient.ErrTooManyRedirects) || !errors.As(err, &he) {
								t.Fatalf("err = %v; want mautrix's HTTPError wrapping ErrTooManyRedirects", err)
							}
							if n := len(srv.Requests()); n != 1+mediaclient.DefaultMaxRedirects {
								t.Errorf("%d requests; want the homeserver and %d redirects, no more", n, mediaclient.DefaultMaxRedirects)
							}
						case err != nil:
							t.Fatalf("err = %v", err)
						case sha256.Sum256(got) != sha256.Sum256(want):
							t.Fatalf("got %d bytes that differ from the %d of the media", len(got), len(want))
						}
						if n := leaks(srv); n != 0 {
							t.Errorf("%d requests away from the homeserver carried a credential or user_id: %+v", n, offHome(srv))
						}
						home := srv.RequestsTo(testserver.OriginHomeserver)
						if len(home) == 0 || !home[0].HasCredentials() || home[0].Query().Has("user_id") != setup.asked {
							t.Errorf("the homeserver request lacks the token or user_id: %+v", home)
						}
						if sc.resumed && rangedAt(srv, testserver.OriginCDN) == 0 {
							t.Error("no Range request at the CDN: the body was not resumed there")
						}
						if !sc.loop && len(offHome(srv)) == 0 {
							t.Error("nothing went to the CDN: the test proves nothing")
						}
					})
					t.Run(setup.name+"/"+method.name+"/without", func(t *testing.T) {
						t.Parallel()
						b := sc.behavior
						srv := testserver.New(t, testserver.Config{Behavior: &b})
						uri := srv.AddMedia(media, testserver.MediaOptions{ContentType: "image/png", Thumbnail: thumb})
						cli := setup.make(t, srv, nil)
						ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond) // mautrix waits out a stall for 180 s
						defer cancel()
						got, err := method.get(ctx, t, cli, uri)
						ok := err == nil && bytes.Equal(got, want)
						if ok != sc.plainOK {
							t.Errorf("mautrix alone: %d bytes, %v; expected it to %s", len(got), err, map[bool]string{true: "succeed", false: "fail"}[sc.plainOK])
						}
						if leaks(srv) == 0 {
							t.Errorf("mautrix alone sent no credential away from the homeserver: %+v", offHome(srv))
						}
					})
				}
			}
		})
	}
}

// TestMediaTransportErrorAnswers: a Matrix error answer reaches mautrix as the response it parses
// itself, so that its error values work as without the transport.
func TestMediaTransportErrorAnswers(t *testing.T) {
	srv := testserver.New(t, testserver.Config{Profile: testserver.ProfileMediaRepo})
	mt := newMediaTransport(t, nil, mediaclient.Options{})
	for _, setup := range mautrixSetups {
		with := setup.make(t, srv, mt)
		without := setup.make(t, srv, nil)
		missing := id.ContentURI{Homeserver: srv.ServerName, FileID: "missing"}
		for _, method := range mautrixMethods {
			for name, cli := range map[string]*mautrix.Client{"with": with, "without": without} {
				_, err := method.get(t.Context(), t, cli, missing)
				var he mautrix.HTTPError
				if !errors.Is(err, mautrix.MNotFound) || !errors.As(err, &he) || he.Response.StatusCode != http.StatusNotFound || he.RespError.Err != "Media not found" {
					t.Errorf("%s %s %s: %v; want mautrix's 404 M_NOT_FOUND with its message", setup.name, method.name, name, err)
				}
			}
		}
	}
	// A token the homeserver does not know: 401 M_UNKNOWN_TOKEN, which mautrix reads to refresh it.
	cli, _ := mautrix.NewClient(srv.URL, "", "wrong")
	cli.Client.Transport = mt
	uri := srv.AddMedia([]byte("x"), testserver.MediaOptions{})
	if _, err := cli.DownloadBytes(t.Context(), uri); !errors.Is(err, mautrix.MUnknownToken) {
		t.Errorf("bad token: %v; want M_UNKNOWN_TOKEN", err)
	}
}

// TestMediaTransportParamRejected: a homeserver that rejects allow_redirect gets the request again
// without it, once; the transport's Client for that homeserver remembers it for later requests.
func TestMediaTransportParamRejected(t *testing.T) {
	srv := testserver.New(t, testserver.Config{Profile: testserver.ProfileStrict})
	want := content(20_000, 1)
	uri := srv.AddMedia(want, testserver.MediaOptions{})
	mt := newMediaTransport(t, nil, mediaclient.Options{})
	cli := mautrixSetups[0].make(t, srv, mt)
	for i := range 2 {
		srv.ResetLog()
		got, err := cli.DownloadBytes(t.Context(), uri)
		if err != nil || !sameBytes(got, want) {
			t.Fatalf("download %d: %d bytes, %v", i+1, len(got), err)
		}
		var asked []string
		for _, r := range srv.Requests() {
			asked = append(asked, strconv.Itoa(r.Status)+" allow_redirect="+r.Query().Get("allow_redirect"))
		}
		wantAsked := []string{"400 allow_redirect=true", "200 allow_redirect="}
		if i == 1 {
			wantAsked = wantAsked[1:]
		}
		if fmt.Sprint(asked) != fmt.Sprint(wantAsked) {
			t.Errorf("download %d: requests %v; want %v", i+1, asked, wantAsked)
		}
	}
}

// TestMediaTransportRefusals: a redirect from a public homeserver into loopback space, and an
// https→http downgrade, are refused before any byte reaches the target; mautrix returns the error.
func TestMediaTransportRefusals(t *testing.T) {
	t.Run("private address", func(t *testing.T) {
		b := mediaRepo(nil)
		srv := testserver.New(t, testserver.Config{Behavior: &b})
		uri := srv.AddMedia([]byte("guarded"), testserver.MediaOptions{})
		mt := newMediaTransport(t, nil, mediaclient.Options{})
		u, _ := url.Parse(srv.URL)
		port, _ := strconv.Atoi(u.Port())
		mediaclient.SetTransportClassifier(mt, func(ap netip.AddrPort) string {
			if int(ap.Port()) == port {
				return "public"
			}
			return mediaclient.Classify(ap)
		})
		cli := mautrixSetups[1].make(t, srv, mt)
		if _, err := cli.DownloadBytes(t.Context(), uri); !errors.Is(err, mediaclient.ErrPrivateAddress) {
			t.Fatalf("err = %v; want ErrPrivateAddress", err)
		}
		if n := len(offHome(srv)); n != 0 {
			t.Errorf("%d requests reached the private target", n)
		}
	})
	t.Run("https to http", func(t *testing.T) {
		b := mediaRepo(nil)
		srv := testserver.New(t, testserver.Config{Behavior: &b, TLS: true})
		uri := srv.AddMedia([]byte("guarded"), testserver.MediaOptions{})
		mt := newMediaTransport(t, srv.Client().Transport, mediaclient.Options{})
		cli := mautrixSetups[0].make(t, srv, mt)
		if _, err := cli.DownloadBytes(t.Context(), uri); !errors.Is(err, mediaclient.ErrRedirectRefused) {
			t.Fatalf("err = %v; want ErrRedirectRefused", err)
		}
		if n := len(offHome(srv)); n != 0 {
			t.Errorf("%d requests went over http", n)
		}
	})
}

// TestMediaTransportPathPrefix: a homeserver URL with a path prefix (behind a reverse proxy) is
// recognised, and the homeserver request keeps the prefix.
func TestMediaTransportPathPrefix(t *testing.T) {
	b := mediaRepo(nil)
	srv := testserver.New(t, testserver.Config{Behavior: &b})
	want := content(50_000, 2)
	uri := srv.AddMedia(want, testserver.MediaOptions{})
	target, _ := url.Parse(srv.URL)
	proxy := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(target)
		r.Out.URL.Path = strings.TrimPrefix(r.In.URL.Path, "/matrix")
		r.Out.URL.RawPath = ""
	}}
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/matrix/_matrix/") {
			http.NotFound(w, r) // only what keeps the prefix reaches the homeserver
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)

	cli, err := mautrix.NewClient(front.URL+"/matrix", "", srv.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	cli.Client.Transport = newMediaTransport(t, nil, mediaclient.Options{})
	got, err := cli.DownloadBytes(t.Context(), uri)
	if err != nil || !sameBytes(got, want) {
		t.Fatalf("%d bytes, %v", len(got), err)
	}
	home := srv.RequestsTo(testserver.OriginHomeserver)
	if len(home) != 1 || home[0].Query().Get("allow_redirect") != "true" {
		t.Errorf("homeserver requests %+v; want one through the prefix, with allow_redirect", home)
	}
	if len(srv.RequestsTo(testserver.OriginCDN)) != 1 || credentialsAt(srv, testserver.OriginCDN) != 0 {
		t.Error("the CDN did not serve the bytes without the token")
	}
}

// TestMediaTransportRawRequests: requests that mautrix does not make but an http.Client user may.
func TestMediaTransportRawRequests(t *testing.T) {
	b := mediaRepo(nil)
	srv := testserver.New(t, testserver.Config{Behavior: &b})
	want := content(30_000, 6)
	uri := srv.AddMedia(want, testserver.MediaOptions{Thumbnail: []byte("thumb")})
	hc := &http.Client{Transport: newMediaTransport(t, nil, mediaclient.Options{})}
	get := func(path string, h http.Header) (*http.Response, []byte, error) {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+path, nil)
		for k, v := range h {
			req.Header[k] = v // as given, not canonicalised
		}
		resp, err := hc.Do(req)
		if err != nil {
			return nil, nil, err
		}
		defer resp.Body.Close()
		data, err := io.ReadAll(resp.Body)
		return resp, data, err
	}
	media := uri.Homeserver + "/" + uri.FileID
	bearer := http.Header{"Authorization": {"Bearer " + srv.AccessToken}}

	t.Run("conditional and range headers", func(t *testing.T) {
		srv.ResetLog()
		h := bearer.Clone()
		h.Set("Range", "bytes=100-")
		h.Set("If-None-Match", `"abc"`)
		h.Set("If-Modified-Since", "Mon, 02 Jan 2006 15:04:05 GMT")
		resp, got, err := get("/_matrix/client/v1/media/download/"+media, h)
		if err != nil || resp.StatusCode != http.StatusOK || !sameBytes(got, want) || resp.ContentLength != int64(len(want)) {
			t.Fatalf("%v, %d bytes, %v; want 200 and the whole media", resp, len(got), err)
		}
		for _, r := range srv.Requests() {
			if r.Header.Get("Range") != "" || r.Header.Get("If-None-Match") != "" || r.Header.Get("If-Modified-Since") != "" {
				t.Errorf("%s %s carried %v", r.Origin, r.Path, r.Header)
			}
		}
	})
	t.Run("credential under a lower-case key", func(t *testing.T) {
		srv.ResetLog()
		_, got, err := get("/_matrix/client/v1/media/download/"+media, http.Header{"authorization": {"Bearer " + srv.AccessToken}})
		if err != nil || !sameBytes(got, want) {
			t.Fatalf("%d bytes, %v", len(got), err)
		}
		if leaks(srv) != 0 || len(offHome(srv)) == 0 {
			t.Errorf("the token went off the homeserver: %+v", offHome(srv))
		}
	})
	t.Run("media v3 with a file name", func(t *testing.T) {
		srv.ResetLog()
		_, got, err := get("/_matrix/media/v3/download/"+media+"/my%20cat.png", nil)
		if err != nil || !sameBytes(got, want) {
			t.Fatalf("%d bytes, %v", len(got), err)
		}
		home := srv.RequestsTo(testserver.OriginHomeserver)
		if len(home) != 1 || home[0].Path != "/_matrix/media/v3/download/"+media+"/my cat.png" || home[0].Query().Get("allow_redirect") != "true" || len(offHome(srv)) != 1 {
			t.Errorf("requests %+v; want v3 with the file name and allow_redirect, then the CDN", srv.Requests())
		}
	})
	t.Run("v3 thumbnail", func(t *testing.T) {
		_, got, err := get("/_matrix/media/v3/thumbnail/"+media+"?width=32&height=32&method=crop", nil)
		if err != nil || string(got) != "thumb" {
			t.Fatalf("%q, %v", got, err)
		}
	})
	for name, tc := range map[string]struct {
		path string
		want error
	}{
		"no media ID":         {"/_matrix/client/v1/media/download/" + uri.Homeserver, mediaclient.ErrInvalidURI},
		"thumbnail file name": {"/_matrix/client/v1/media/thumbnail/" + media + "/x.png?width=1&height=1", mediaclient.ErrInvalidURI},
		"bad media ID":        {"/_matrix/client/v1/media/download/" + uri.Homeserver + "/a.b", mediaclient.ErrInvalidURI},
		"thumbnail size":      {"/_matrix/client/v1/media/thumbnail/" + media + "?width=0&height=32", mediaclient.ErrInvalidArgument},
		"semicolon in query":  {"/_matrix/client/v1/media/download/" + media + "?a=1;b=2", mediaclient.ErrInvalidURI},
	} {
		t.Run(name, func(t *testing.T) {
			srv.ResetLog()
			var me *mediaclient.Error
			if _, _, err := get(tc.path, bearer); !errors.Is(err, tc.want) || !errors.As(err, &me) {
				t.Errorf("err = %v; want an *Error wrapping %v", err, tc.want)
			}
			if n := len(srv.Requests()); n != 0 {
				t.Errorf("%d requests were sent", n)
			}
		})
	}
}

// recordingTransport records every request it is given and passes it on.
type recordingTransport struct {
	base http.RoundTripper
	mu   sync.Mutex
	reqs []*http.Request
	snap []string
}

func (r *recordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil {
		body, _ = io.ReadAll(req.Body)
		req.Body.Close()
		req.Body = io.NopCloser(bytes.NewReader(body))
	}
	var h bytes.Buffer
	req.Header.Write(&h)
	r.mu.Lock()
	r.reqs = append(r.reqs, req)
	r.snap = append(r.snap, fmt.Sprintf("%s %s host=%q len=%d\n%s\n%q", req.Method, req.URL, req.Host, req.ContentLength, h.String(), body))
	r.mu.Unlock()
	return r.base.RoundTrip(req)
}

func (r *recordingTransport) snapshots() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.snap...)
}

// TestMediaTransportPassesOtherRequests: every request that is not a media download (a HEAD of
// another path included; a HEAD of a media path is a download: TestAttack3HeadLeaksToken) reaches
// the wrapped transport as the very request the http.Client gave, byte for byte what the wrapped
// transport receives without the MediaTransport.
func TestMediaTransportPassesOtherRequests(t *testing.T) {
	srv := testserver.New(t, testserver.Config{Profile: testserver.ProfileMediaRepo})
	uri := srv.AddMedia([]byte("some media"), testserver.MediaOptions{})
	calls := func(cli *mautrix.Client) {
		ctx := t.Context()
		cli.Whoami(ctx)
		cli.GetMediaConfig(ctx)
		cli.UploadBytesWithName(ctx, []byte("uploaded bytes"), "text/plain", "a.txt")
		cli.MakeFullRequest(ctx, mautrix.FullRequest{Method: http.MethodHead, URL: cli.BuildURL(mautrix.ClientURLPath{"v1", "media", "config"})})
		cli.MakeFullRequest(ctx, mautrix.FullRequest{Method: http.MethodPost, URL: cli.BuildURL(mautrix.ClientURLPath{"v1", "media", "download", uri.Homeserver, uri.FileID}), RequestJSON: map[string]int{"a": 1}})
		cli.MakeFullRequest(ctx, mautrix.FullRequest{Method: http.MethodGet, URL: cli.BuildURL(mautrix.MediaURLPath{"v3", "preview_url"}) + "?url=https%3A%2F%2Fexample.org"})
	}
	run := func(install bool) (*recordingTransport, *recordingTransport) {
		inner := &recordingTransport{base: mediaclient.NewTransport()}
		t.Cleanup(inner.base.(*http.Transport).CloseIdleConnections)
		var rt http.RoundTripper = inner
		if install {
			rt = newMediaTransport(t, inner, mediaclient.Options{})
		}
		outer := &recordingTransport{base: rt}
		cli, err := mautrix.NewClient(srv.URL, "@bot:"+id.UserID(srv.ServerName), srv.AccessToken)
		if err != nil {
			t.Fatal(err)
		}
		cli.UserAgent = "my-bridge/1.0"
		cli.Client.Transport = outer
		calls(cli)
		return outer, inner
	}
	_, plain := run(false)
	outer, inner := run(true)
	if len(inner.reqs) != len(outer.reqs) || len(inner.reqs) < 6 {
		t.Fatalf("the wrapped transport saw %d requests of %d; want all of them, at least 6:\n%s", len(inner.reqs), len(outer.reqs), strings.Join(outer.snapshots(), "\n---\n"))
	}
	for i := range inner.reqs {
		if inner.reqs[i] != outer.reqs[i] {
			t.Errorf("request %d: the wrapped transport got another *http.Request than the MediaTransport", i)
		}
	}
	if got, want := inner.snapshots(), plain.snapshots(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("with the MediaTransport the wrapped transport saw\n%s\nwithout it\n%s", strings.Join(got, "\n---\n"), strings.Join(want, "\n---\n"))
	}
}

// TestMediaTransportCookies: a cookie a CDN sets is never filed under the homeserver by the
// http.Client's jar.
func TestMediaTransportCookies(t *testing.T) {
	cdn := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.SetCookie(w, &http.Cookie{Name: "cdn", Value: "tracking"})
		w.Write([]byte("from the CDN"))
	}))
	t.Cleanup(cdn.Close)
	port := cdn.URL[strings.LastIndexByte(cdn.URL, ':')+1:]
	loc := "http://localhost:" + port + "/object" // another host than the homeserver's 127.0.0.1
	b := testserver.Behavior{V1Redirect: testserver.Always, Location: &loc}
	srv := testserver.New(t, testserver.Config{Behavior: &b})
	uri := srv.AddMedia([]byte("unused"), testserver.MediaOptions{})
	home, _ := url.Parse(srv.URL + "/_matrix/client/v1/media/download/" + uri.Homeserver + "/" + uri.FileID)
	for _, install := range []bool{false, true} {
		jar, _ := cookiejar.New(nil)
		cli, _ := mautrix.NewClient(srv.URL, "", srv.AccessToken)
		cli.Client.Jar = jar
		if install {
			cli.Client.Transport = newMediaTransport(t, nil, mediaclient.Options{})
		}
		got, err := cli.DownloadBytes(t.Context(), uri)
		if err != nil || string(got) != "from the CDN" {
			t.Fatalf("install=%v: %q, %v", install, got, err)
		}
		if c := jar.Cookies(home); len(c) != 0 {
			t.Errorf("install=%v: the jar holds %v for the homeserver", install, c)
		}
	}
}

// TestMediaTransportRedirectCacheIsPerCredential: a 308 target learned with one token is not used
// for a request with another: that request asks the homeserver, which refuses it.
func TestMediaTransportRedirectCacheIsPerCredential(t *testing.T) {
	b := testserver.Behavior{Redirect: 308, V1Redirect: testserver.Always}
	srv := testserver.New(t, testserver.Config{Behavior: &b})
	uri := srv.AddMedia([]byte("members only"), testserver.MediaOptions{})
	mt := newMediaTransport(t, nil, mediaclient.Options{})
	good, _ := mautrix.NewClient(srv.URL, "", srv.AccessToken)
	good.Client.Transport = mt
	for range 2 {
		if got, err := good.DownloadBytes(t.Context(), uri); err != nil || string(got) != "members only" {
			t.Fatalf("%q, %v", got, err)
		}
	}
	if n := len(srv.RequestsTo(testserver.OriginHomeserver)); n != 1 {
		t.Fatalf("the homeserver saw %d requests; want 1 (the second download uses the 308 target)", n)
	}
	bad, _ := mautrix.NewClient(srv.URL, "", "stolen-or-revoked")
	bad.Client.Transport = mt
	if got, err := bad.DownloadBytes(t.Context(), uri); !errors.Is(err, mautrix.MUnknownToken) {
		t.Errorf("another token: %q, %v; want the homeserver's M_UNKNOWN_TOKEN", got, err)
	}
}

// TestMediaTransportConcurrent: many downloads at once through one transport, from two homeservers
// (run with -race).
func TestMediaTransportConcurrent(t *testing.T) {
	mt := newMediaTransport(t, nil, mediaclient.Options{})
	var servers []*testserver.Server
	var clients []*mautrix.Client
	for _, p := range []testserver.Profile{testserver.ProfileMediaRepo, testserver.ProfileStrict} {
		srv := testserver.New(t, testserver.Config{Profile: p})
		servers = append(servers, srv)
		clients = append(clients, mautrixSetups[0].make(t, srv, mt))
	}
	var wg sync.WaitGroup
	for i := range 32 {
		wg.Go(func() {
			srv, cli := servers[i%2], clients[i%2]
			want := content(10_000+i, byte(i))
			got, err := cli.DownloadBytes(t.Context(), srv.AddMedia(want, testserver.MediaOptions{}))
			if err != nil || !sameBytes(got, want) {
				t.Errorf("download %d: %d bytes, %v", i, len(got), err)
			}
		})
	}
	wg.Wait()
	for _, srv := range servers {
		if credentialsAt(srv, testserver.OriginCDN) != 0 {
			t.Error("token at the CDN")
		}
	}
}

func TestNewMediaTransportOptions(t *testing.T) {
	for name, opts := range map[string]mediaclient.Options{
		"homeserver":     {HomeserverURL: "https://example.org"},
		"token":          {AccessToken: "t"},
		"user agent":     {UserAgent: "x"},
		"header":         {Header: http.Header{"X": {"y"}}},
		"family":         {API: mediaclient.APIV1},
		"transport":      {Transport: http.DefaultTransport},
		"negative size":  {MaxSize: -1},
		"negative delay": {RetryWaitMin: -time.Second},
	} {
		if mt, err := mediaclient.NewMediaTransport(nil, opts); !errors.Is(err, mediaclient.ErrInvalidArgument) || mt != nil {
			t.Errorf("%s: %v; want ErrInvalidArgument", name, err)
		}
	}
}

// BenchmarkTransport runs mautrix's Client.Download through the MediaTransport, as
// BenchmarkLargeDownload and BenchmarkSmallFiles run the Client (one 307 hop to the CDN), next to
// plain mautrix on the same server.
func BenchmarkTransport(b *testing.B) {
	for _, install := range []bool{true, false} {
		name := "mautrix+transport"
		if !install {
			name = "mautrix"
		}
		newCli := func(b *testing.B, srv *testserver.Server) *mautrix.Client {
			cli, _ := mautrix.NewClient(srv.URL, "", srv.AccessToken)
			if install {
				cli.Client.Transport = newMediaTransport(b, nil, mediaclient.Options{})
			}
			b.Cleanup(cli.Client.CloseIdleConnections)
			return cli
		}
		for _, size := range []int64{1 << 20, 64 << 20} {
			b.Run(name+"/large-"+byteSize(size), func(b *testing.B) {
				srv := benchServer(b)
				uri := srv.AddGenerated(size, 1, testserver.MediaOptions{})
				cli := newCli(b, srv)
				buf := make([]byte, 256<<10)
				b.SetBytes(size)
				b.ReportAllocs()
				for b.Loop() {
					resp, err := cli.Download(b.Context(), uri)
					if err != nil {
						b.Fatal(err)
					}
					n, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{resp.Body}, buf)
					resp.Body.Close()
					if err != nil || n != size {
						b.Fatalf("%d bytes, %v", n, err)
					}
				}
			})
		}
		b.Run(name+"/small-16KiB-parallel-16", func(b *testing.B) {
			srv := benchServer(b)
			uris := make([]id.ContentURI, 1000)
			for i := range uris {
				uris[i] = srv.AddMedia(content(16<<10, byte(i)), testserver.MediaOptions{})
			}
			cli := newCli(b, srv)
			var next atomic.Int64
			b.SetParallelism(8)
			b.SetBytes(16 << 10)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				buf := make([]byte, 32<<10)
				for pb.Next() {
					resp, err := cli.Download(b.Context(), uris[next.Add(1)%int64(len(uris))])
					if err != nil {
						b.Error(err)
						return
					}
					n, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{resp.Body}, buf)
					resp.Body.Close()
					if err != nil || n != 16<<10 {
						b.Errorf("%d bytes, %v", n, err)
						return
					}
				}
			})
		})
	}
}

// TestMediaTransportHead: a HEAD of a media path runs the chain (credentials on the homeserver
// only) and returns the final answer's status and headers with an empty body; a HEAD of missing
// media is the homeserver's 404.
func TestMediaTransportHead(t *testing.T) {
	b := mediaRepo(func(b *testserver.Behavior) { b.CDNRejectsAuth = false })
	srv := testserver.New(t, testserver.Config{Behavior: &b})
	want := content(12_345, 7)
	uri := srv.AddMedia(want, testserver.MediaOptions{})
	hc := &http.Client{Transport: newMediaTransport(t, nil, mediaclient.Options{})}
	head := func(mediaID string) *http.Response {
		t.Helper()
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodHead, srv.URL+"/_matrix/client/v1/media/download/"+uri.Homeserver+"/"+mediaID, nil)
		req.Header.Set("Authorization", "Bearer "+srv.AccessToken)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if body, err := io.ReadAll(resp.Body); err != nil || len(body) != 0 {
			t.Errorf("HEAD body: %d bytes, %v; want none", len(body), err)
		}
		return resp
	}
	resp := head(uri.FileID)
	if resp.StatusCode != http.StatusOK || resp.ContentLength != int64(len(want)) || resp.Header.Get("Content-Length") != fmt.Sprint(len(want)) {
		t.Errorf("HEAD: %d, ContentLength %d, header %q; want 200 and %d", resp.StatusCode, resp.ContentLength, resp.Header.Get("Content-Length"), len(want))
	}
	cdn := offHome(srv)
	if len(cdn) != 1 || cdn[0].Method != http.MethodHead {
		t.Errorf("requests off the homeserver: %v; want the one HEAD at the CDN", cdn)
	}
	noCredentialsOffHome(t, srv)
	if resp := head("missing"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("HEAD of missing media: %d; want 404", resp.StatusCode)
	}
}

// TestMediaTransportStripsFollowUps: a request the MediaTransport passes on that is a redirect the
// http.Client follows loses its credential headers once the chain has been at another origin (Go
// forwards them to another port of the same host, and back); a same-origin redirect keeps them.
// Without the transport, the other port gets the token: the test shows the difference.
func TestMediaTransportStripsFollowUps(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]string{} // path → Authorization+Cookie as received
	record := func(r *http.Request) {
		mu.Lock()
		seen[r.URL.Path] = r.Header.Get("Authorization") + r.Header.Get("Cookie")
		mu.Unlock()
	}
	var hsURL string
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		record(r)
		http.Redirect(w, r, hsURL+"/_matrix/client/v3/back", http.StatusFound)
	}))
	t.Cleanup(other.Close)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		record(r)
		switch r.URL.Path {
		case "/_matrix/client/v3/same":
			http.Redirect(w, r, "/_matrix/client/v3/kept", http.StatusFound)
		case "/_matrix/client/v3/away":
			http.Redirect(w, r, other.URL+"/elsewhere", http.StatusTemporaryRedirect)
		default:
			w.Write([]byte("{}"))
		}
	}))
	t.Cleanup(hs.Close)
	hsURL = hs.URL
	for _, install := range []bool{false, true} {
		clear(seen)
		hc := &http.Client{}
		if install {
			hc.Transport = newMediaTransport(t, nil, mediaclient.Options{CredentialHeaders: []string{"X-Api-Key"}})
		}
		for _, path := range []string{"/_matrix/client/v3/same", "/_matrix/client/v3/away"} {
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, hs.URL+path, nil)
			req.Header.Set("Authorization", "Bearer secret")
			req.Header.Set("Cookie", "session=s")
			resp, err := hc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
		}
		if seen["/_matrix/client/v3/kept"] == "" {
			t.Errorf("install=%v: a same-origin redirect lost its credentials: %v", install, seen)
		}
		if away, back := seen["/elsewhere"], seen["/_matrix/client/v3/back"]; install && (away != "" || back != "") {
			t.Errorf("with the transport: credentials %q at the other port, %q back at the homeserver after it; want none", away, back)
		} else if !install && away == "" {
			t.Errorf("without the transport the other port got no token: the test proves nothing")
		}
	}
}

// TestMediaTransportBelowClient: a MediaTransport that a Client cannot recognise (wrapped in
// another RoundTripper) passes the Client's hops on as they are: an Offset download keeps its
// Range, and a 503 is asked 1+DefaultMaxRetries times, not that squared.
func TestMediaTransportBelowClient(t *testing.T) {
	fast := mediaclient.Options{RetryWaitMin: time.Millisecond, RetryWaitMax: 5 * time.Millisecond}
	hidden := func(t *testing.T) http.RoundTripper {
		mt := newMediaTransport(t, nil, mediaclient.Options{})
		return roundTripFunc(mt.RoundTrip)
	}
	b := mediaRepo(nil)
	srv := testserver.New(t, testserver.Config{Behavior: &b})
	want := content(100_000, 9)
	uri := srv.AddMedia(want, testserver.MediaOptions{})
	o := fast
	o.Transport = hidden(t)
	c := newClient(t, srv, o)
	m, err := c.Download(t.Context(), uri, mediaclient.DownloadOptions{Offset: 60_000})
	got, err := readAll(t, m, err)
	if err != nil || m.Offset != 60_000 || !sameBytes(got, want[60_000:]) || rangedAt(srv, testserver.OriginCDN) == 0 {
		t.Errorf("Offset download: %d bytes from %v, %v; want the last 40000 with Range at the CDN", len(got), m, err)
	}
	noCredentialsOffHome(t, srv)

	b5 := testserver.Behavior{Faults: []testserver.Fault{{Status: http.StatusServiceUnavailable}}}
	srv = testserver.New(t, testserver.Config{Behavior: &b5})
	uri = srv.AddMedia([]byte("x"), testserver.MediaOptions{})
	o.Transport = hidden(t)
	c = newClient(t, srv, o)
	if _, _, err := fetch(t, c, uri); httpStatus(err) != http.StatusServiceUnavailable {
		t.Fatalf("err = %v; want the 503", err)
	}
	n := 0
	for _, r := range srv.Requests() {
		if strings.Contains(r.Path, "/media/") {
			n++
		}
	}
	if n != 1+mediaclient.DefaultMaxRetries {
		t.Errorf("the media was asked for %d times; want %d", n, 1+mediaclient.DefaultMaxRetries)
	}
}

// TestMediaTransportFinalErrors: through mautrix, a policy refusal is final (it matches
// context.Canceled, which mautrix does not retry) and keeps the *Error and its sentinel; a network
// failure is not, and mautrix retries it as it would without the transport.
func TestMediaTransportFinalErrors(t *testing.T) {
	b := mediaRepo(func(b *testserver.Behavior) {
		b.CDNRejectsAuth = false
		b.Chain, b.Loop = []testserver.OriginName{testserver.OriginCDN, testserver.OriginCDNHost}, true
	})
	srv := testserver.New(t, testserver.Config{Behavior: &b})
	uri := srv.AddMedia([]byte("never"), testserver.MediaOptions{})
	mt := newMediaTransport(t, nil, mediaclient.Options{MaxRetries: -1})
	var calls int
	counting := roundTripFunc(func(req *http.Request) (*http.Response, error) {
		calls++
		return mt.RoundTrip(req)
	})
	cli := bridgeIntent(t, srv, counting, ghost)
	_, err := cli.DownloadBytes(t.Context(), uri)
	var me *mediaclient.Error
	if !errors.Is(err, mediaclient.ErrTooManyRedirects) || !errors.Is(err, context.Canceled) || !errors.As(err, &me) || calls != 1 {
		t.Errorf("loop: %v after %d calls; want one call, an *Error wrapping ErrTooManyRedirects that matches context.Canceled", err, calls)
	}

	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close() // nothing listens there any more: connection refused
	cli = bridgeIntent(t, srv, counting, ghost)
	cli.HomeserverURL, _ = url.Parse(closed.URL)
	calls = 0
	_, err = cli.DownloadBytes(t.Context(), uri)
	if err == nil || errors.Is(err, context.Canceled) || calls != 1+cli.DefaultHTTPRetries {
		t.Errorf("connection refused: %v after %d calls; want mautrix's %d tries, not a final error", err, calls, 1+cli.DefaultHTTPRetries)
	}
}

// TestMediaTransportDefaultTransportProxy: for a nil base, media goes through http.DefaultTransport's
// proxy (here a recording proxy), as every other request does; Wrap of a client without a transport
// too.
func TestMediaTransportDefaultTransportProxy(t *testing.T) {
	srv := testserver.New(t, testserver.Config{})
	want := content(5_000, 4)
	uri := srv.AddMedia(want, testserver.MediaOptions{})
	var proxied atomic.Int64
	target, _ := url.Parse(srv.URL)
	forward := httputil.NewSingleHostReverseProxy(target)
	direct := &http.Transport{} // not http.DefaultTransport, whose proxy is this one below
	t.Cleanup(direct.CloseIdleConnections)
	forward.Transport = direct
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.IsAbs() { // a request for a proxy names the whole URL
			proxied.Add(1)
		}
		forward.ServeHTTP(w, r)
	}))
	t.Cleanup(proxy.Close)
	proxyURL, _ := url.Parse(proxy.URL)
	dt := http.DefaultTransport.(*http.Transport)
	saved := dt.Proxy
	dt.Proxy = http.ProxyURL(proxyURL)
	t.Cleanup(func() { dt.Proxy = saved; dt.CloseIdleConnections() })

	cli, err := mautrix.NewClient(srv.URL, "", srv.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	cli.Client.Transport = newMediaTransport(t, nil, mediaclient.Options{})
	if got, err := cli.DownloadBytes(t.Context(), uri); err != nil || !sameBytes(got, want) || proxied.Load() == 0 {
		t.Errorf("with the transport: %d bytes, %v, %d requests through the proxy; want the media through it", len(got), err, proxied.Load())
	}
	proxied.Store(0)
	cli.Client.Transport = nil
	w, err := mediaclient.Wrap(cli)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Client().CloseIdleConnections)
	if got, err := w.DownloadBytes(t.Context(), uri); err != nil || !sameBytes(got, want) || proxied.Load() == 0 {
		t.Errorf("Wrap: %d bytes, %v, %d requests through the proxy; want the media through it", len(got), err, proxied.Load())
	}
}

// TestWrapAppserviceDevice: Wrap sends an appservice client's device_id (both names, as mautrix
// does) with its user_id to the homeserver, and to no other origin; a caller's own user_id wins.
func TestWrapAppserviceDevice(t *testing.T) {
	b := mediaRepo(func(b *testserver.Behavior) { b.CDNRejectsAuth = false })
	srv := testserver.New(t, testserver.Config{Behavior: &b})
	uri := srv.AddMedia([]byte("device"), testserver.MediaOptions{})
	cli := bridgeIntent(t, srv, nil, ghost)
	cli.DeviceID, cli.SetAppServiceDeviceID = "DEVICE", true
	w, err := mediaclient.Wrap(cli)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Client().CloseIdleConnections)
	resp, err := w.DownloadWithParams(t.Context(), uri, mautrix.DownloadExtra{Query: map[string]string{"user_id": "@other:" + srv.ServerName}})
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	h := srv.RequestsTo(testserver.OriginHomeserver)
	if len(h) == 0 {
		t.Fatal("no request reached the homeserver")
	}
	q := h[len(h)-1].Query()
	if q.Get("device_id") != "DEVICE" || q.Get("org.matrix.msc3202.device_id") != "DEVICE" || q.Get("user_id") != "@other:"+srv.ServerName {
		t.Errorf("homeserver query %v; want both device_id names and the caller's user_id", q)
	}
	for _, r := range offHome(srv) {
		if r.Query().Has("device_id") || r.Query().Has("user_id") || r.HasCredentials() {
			t.Errorf("%s %s carried the appservice's parameters or a credential", r.Origin, r.Path)
		}
	}
	if len(offHome(srv)) == 0 {
		t.Error("nothing went to the CDN: the test proves nothing")
	}
}
