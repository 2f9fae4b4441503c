package mediaclient_test

// A hostile review of the mautrix media transport (NewMediaTransport) and of the wrapper (Wrap), as
// a bridge developer installs them and as a hostile homeserver or CDN treats them. The first part
// holds one test per defect (each fails today), most severe first; the second part, after the
// marker, holds properties that were attacked and held.

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/mxfetch/mxfetch/internal/leakcheck"
	"github.com/mxfetch/mxfetch/mediaclient"
	"github.com/mxfetch/mxfetch/testserver"
)

// bridgeIntent returns the client of an appservice intent as appservice.NewMautrixClient builds it,
// with appservice.Create's DefaultHTTPRetries (4) but a 1 ms backoff instead of 4 s, sharing one
// http.Client (cookie jar, 180 s timeout) whose transport is rt (nil: none installed).
func bridgeIntent(t *testing.T, srv *testserver.Server, rt http.RoundTripper, user string) *mautrix.Client {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	shared := &http.Client{Timeout: 180 * time.Second, Jar: jar, Transport: rt}
	t.Cleanup(shared.CloseIdleConnections)
	hs, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	return &mautrix.Client{
		HomeserverURL:       hs,
		UserID:              id.NewUserID(user, srv.ServerName),
		SetAppServiceUserID: true,
		AccessToken:         srv.AccessToken,
		UserAgent:           mautrix.DefaultUserAgent,
		Client:              shared,
		Log:                 zerolog.Nop(),
		DefaultHTTPRetries:  4,
		DefaultHTTPBackoff:  time.Millisecond,
	}
}

// TestAttack3HeadLeaksToken: with the transport installed, a HEAD of a media URL (matrix-media-repo
// serves HEAD, MSC4120) is passed through untouched, so the http.Client follows the homeserver's
// 307 and hands the token to the CDN on another port of the same host — the very leak the transport
// is installed to stop. The transport sees that second request (req.Response is set: it is a
// redirect the http.Client follows) and passes it on with the token.
func TestAttack3HeadLeaksToken(t *testing.T) {
	b := mediaRepo(func(b *testserver.Behavior) { b.CDNRejectsAuth = false })
	srv := testserver.New(t, testserver.Config{Behavior: &b})
	uri := srv.AddMedia([]byte("some media"), testserver.MediaOptions{})
	cli := mautrixSetups[0].make(t, srv, newMediaTransport(t, nil, mediaclient.Options{}))
	_, _, err := cli.MakeFullRequestWithResp(t.Context(), mautrix.FullRequest{
		Method: http.MethodHead, DontReadResponse: true,
		URL: cli.BuildURL(mautrix.ClientURLPath{"v1", "media", "download", uri.Homeserver, uri.FileID}),
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(offHome(srv)) == 0 {
		t.Fatal("the HEAD was not redirected: the test proves nothing")
	}
	noCredentialsOffHome(t, srv)
}

// TestAttack3WrapOverInstalledTransport: the README tells a bridge to install the transport once on
// the http.Client mautrix uses, and to switch call sites to Wrap. Wrap takes cli.Client.Transport —
// the MediaTransport — as the transport of its own Client, so every hop of a wrapped download is a
// whole second download: Range is stripped on the way (an Offset or a resume gets the whole media
// from byte 0), and the two retry budgets multiply (a 503 is asked 25 times instead of 5).
func TestAttack3WrapOverInstalledTransport(t *testing.T) {
	fast := mediaclient.Options{RetryWaitMin: time.Millisecond, RetryWaitMax: 5 * time.Millisecond}
	t.Run("offset", func(t *testing.T) {
		b := mediaRepo(nil)
		srv := testserver.New(t, testserver.Config{Behavior: &b})
		want := content(200_000, 4)
		uri := srv.AddMedia(want, testserver.MediaOptions{})
		cli := mautrixSetups[0].make(t, srv, newMediaTransport(t, nil, mediaclient.Options{}))
		w, err := mediaclient.Wrap(cli, fast)
		if err != nil {
			t.Fatal(err)
		}
		m, err := w.Client().Download(t.Context(), uri, mediaclient.DownloadOptions{Offset: 150_000})
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		got, err := io.ReadAll(m)
		if err != nil {
			t.Fatal(err)
		}
		if m.Offset != 150_000 || sha256.Sum256(got) != sha256.Sum256(want[150_000:]) {
			t.Errorf("Offset %d, %d bytes; want the last 50000 bytes from offset 150000", m.Offset, len(got))
		}
		if rangedAt(srv, testserver.OriginCDN) == 0 {
			t.Errorf("no request carried Range: %v", srv.Requests())
		}
		noCredentialsOffHome(t, srv)
	})
	t.Run("retries", func(t *testing.T) {
		b := testserver.Behavior{Faults: []testserver.Fault{{Status: http.StatusServiceUnavailable}}}
		srv := testserver.New(t, testserver.Config{Behavior: &b})
		uri := srv.AddMedia([]byte("x"), testserver.MediaOptions{})
		cli := mautrixSetups[0].make(t, srv, newMediaTransport(t, nil, mediaclient.Options{}))
		w, err := mediaclient.Wrap(cli, fast)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.DownloadBytes(t.Context(), uri); httpStatus(err) != http.StatusServiceUnavailable {
			t.Fatalf("err = %v; want the 503", err)
		}
		n := 0
		for _, r := range srv.RequestsTo(testserver.OriginHomeserver) {
			if strings.Contains(r.Path, "/media/") {
				n++
			}
		}
		if n != 1+mediaclient.DefaultMaxRetries {
			t.Errorf("the homeserver was asked for the media %d times; want %d (one try and DefaultMaxRetries)", n, 1+mediaclient.DefaultMaxRetries)
		}
	})
}

// TestAttack3PolicyRefusalRetriedByMautrix: rules 3 and 6 say a loop, one hop too many or a refused
// redirect is final and never retried. Through the transport it reaches mautrix as a transport
// error, which mautrix retries DefaultHTTPRetries times (4 in appservice.Create, with a 4 s backoff
// doubling: a minute per refused media item in a bridgev2 bridge): the whole chain runs five times.
// The same goes for a request the transport refuses before sending anything (a bad thumbnail size).
func TestAttack3PolicyRefusalRetriedByMautrix(t *testing.T) {
	t.Run("redirect loop", func(t *testing.T) {
		b := mediaRepo(func(b *testserver.Behavior) {
			b.CDNRejectsAuth = false
			b.Chain, b.Loop = []testserver.OriginName{testserver.OriginCDN, testserver.OriginCDNHost}, true
		})
		srv := testserver.New(t, testserver.Config{Behavior: &b})
		uri := srv.AddMedia([]byte("never"), testserver.MediaOptions{})
		cli := bridgeIntent(t, srv, newMediaTransport(t, nil, mediaclient.Options{}), ghost)
		_, err := cli.DownloadBytes(t.Context(), uri)
		if !errors.Is(err, mediaclient.ErrTooManyRedirects) {
			t.Fatalf("err = %v; want ErrTooManyRedirects", err)
		}
		if n := len(srv.RequestsTo(testserver.OriginHomeserver)); n != 1 {
			t.Errorf("the homeserver saw %d requests, %d in all: a loop was run again; want one chain of %d requests",
				n, len(srv.Requests()), 1+mediaclient.DefaultMaxRedirects)
		}
	})
	t.Run("private address", func(t *testing.T) {
		b := mediaRepo(nil)
		srv := testserver.New(t, testserver.Config{Behavior: &b})
		uri := srv.AddMedia([]byte("guarded"), testserver.MediaOptions{})
		mt := newMediaTransport(t, nil, mediaclient.Options{})
		home := portOf(t, srv.URL)
		mediaclient.SetTransportClassifier(mt, func(ap netip.AddrPort) string {
			if int(ap.Port()) == home {
				return "public"
			}
			return mediaclient.Classify(ap)
		})
		cli := bridgeIntent(t, srv, mt, ghost)
		if _, err := cli.DownloadBytes(t.Context(), uri); !errors.Is(err, mediaclient.ErrPrivateAddress) {
			t.Fatalf("err = %v; want ErrPrivateAddress", err)
		}
		if n := len(srv.RequestsTo(testserver.OriginHomeserver)); n != 1 {
			t.Errorf("the homeserver was asked %d times for a redirect the policy refuses; want once", n)
		}
	})
	t.Run("bad thumbnail size", func(t *testing.T) {
		srv := testserver.New(t, testserver.Config{Profile: testserver.ProfileMediaRepo})
		uri := srv.AddMedia([]byte("x"), testserver.MediaOptions{Thumbnail: []byte("t")})
		mt := newMediaTransport(t, nil, mediaclient.Options{})
		var refusals int
		counting := roundTripFunc(func(req *http.Request) (*http.Response, error) {
			refusals++
			return mt.RoundTrip(req)
		})
		cli := bridgeIntent(t, srv, counting, ghost)
		if _, err := cli.DownloadThumbnail(t.Context(), uri, 0, 32); !errors.Is(err, mediaclient.ErrInvalidArgument) {
			t.Fatalf("err = %v; want ErrInvalidArgument", err)
		}
		if refusals != 1 {
			t.Errorf("the same invalid request went through the transport %d times; want once", refusals)
		}
	})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

// TestAttack3IgnoresDefaultTransport: a bridge whose http.Client has no Transport uses
// http.DefaultTransport, and a self-hosted one often trusts its homeserver's certificate there
// (http.DefaultTransport.(*http.Transport).TLSClientConfig). The one line the README gives,
// NewMediaTransport(cli.Client.Transport, …), then sends media through NewTransport(), which knows
// nothing of it: every download fails while every other request works. Wrap does the same.
func TestAttack3IgnoresDefaultTransport(t *testing.T) {
	srv := testserver.New(t, testserver.Config{TLS: true})
	want := content(20_000, 3)
	uri := srv.AddMedia(want, testserver.MediaOptions{})
	dt := http.DefaultTransport.(*http.Transport)
	saved := dt.TLSClientConfig
	dt.TLSClientConfig = &tls.Config{RootCAs: srv.CertPool()}
	t.Cleanup(func() { dt.TLSClientConfig = saved; dt.CloseIdleConnections() })

	cli, err := mautrix.NewClient(srv.URL, "", srv.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := cli.DownloadBytes(t.Context(), uri); err != nil || sha256.Sum256(got) != sha256.Sum256(want) {
		t.Fatalf("without the transport: %d bytes, %v", len(got), err)
	}
	cli.Client.Transport, err = mediaclient.NewMediaTransport(cli.Client.Transport, mediaclient.Options{MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Whoami(t.Context()); err != nil {
		t.Fatalf("whoami with the transport: %v", err)
	}
	if got, err := cli.DownloadBytes(t.Context(), uri); err != nil || sha256.Sum256(got) != sha256.Sum256(want) {
		t.Errorf("with the transport: %d bytes, %v; want the media, as without it", len(got), err)
	}
	cli.Client.Transport = nil
	w, err := mediaclient.Wrap(cli, mediaclient.Options{MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := w.DownloadBytes(t.Context(), uri); err != nil || sha256.Sum256(got) != sha256.Sum256(want) {
		t.Errorf("Wrap: %d bytes, %v; want the media, as cli.DownloadBytes gets it", len(got), err)
	}
}

// TestAttack3TooLargeRetried: 502 M_TOO_LARGE (and 413) is the homeserver's final word that the
// media is over its limit (spec; FACTS.md). The retry policy takes any 5xx but 501 for a transient
// fault, so the transport asks five times before mautrix sees the answer.
func TestAttack3TooLargeRetried(t *testing.T) {
	b := testserver.Behavior{Faults: []testserver.Fault{{Status: http.StatusBadGateway, ErrCode: "M_TOO_LARGE"}}}
	srv := testserver.New(t, testserver.Config{Behavior: &b})
	uri := srv.AddMedia([]byte("x"), testserver.MediaOptions{})
	cli := mautrixSetups[0].make(t, srv, newMediaTransport(t, nil, mediaclient.Options{}))
	if _, err := cli.DownloadBytes(t.Context(), uri); !errors.Is(err, mautrix.MTooLarge) {
		t.Fatalf("err = %v; want M_TOO_LARGE", err)
	}
	if n := len(srv.Requests()); n != 1 {
		t.Errorf("a 502 M_TOO_LARGE was asked %d times; want once", n)
	}
}

// TestAttack3WrapDropsAppserviceUser: mautrix's Download from an appservice intent sends user_id (the
// ghost it acts as); Wrap reads the token but not SetAppServiceUserID, so a wrapped intent downloads
// as the appservice's bot user instead: on a homeserver that limits media to who may see it, or
// rate-limits by user, the answer differs from cli.Download's.
func TestAttack3WrapDropsAppserviceUser(t *testing.T) {
	b := mediaRepo(nil)
	srv := testserver.New(t, testserver.Config{Behavior: &b})
	uri := srv.AddMedia([]byte("for the ghost"), testserver.MediaOptions{})
	w, err := mediaclient.Wrap(bridgeIntent(t, srv, nil, ghost))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := w.DownloadBytes(t.Context(), uri); err != nil || string(got) != "for the ghost" {
		t.Fatalf("%q, %v", got, err)
	}
	want := id.NewUserID(ghost, srv.ServerName).String()
	for _, r := range srv.RequestsTo(testserver.OriginHomeserver) {
		if !strings.Contains(r.Path, "/media/") {
			continue
		}
		if got := r.Query().Get("user_id"); got != want {
			t.Errorf("%s: user_id %q; want %q as mautrix sends it", r.Path, got, want)
		}
	}
	noCredentialsOffHome(t, srv)
}

// TestAttack3HomeserverCookieOnErrorLost: the transport keeps a homeserver's Set-Cookie for the
// http.Client's jar on a success, and errorResponse means to keep it on an error answer from the
// homeserver (it deletes Set-Cookie only for another origin) — but httpError's redacted copy has
// dropped it already. A load balancer's affinity cookie on a 404 or 429 never reaches the jar.
func TestAttack3HomeserverCookieOnErrorLost(t *testing.T) {
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.SetCookie(w, &http.Cookie{Name: "affinity", Value: "node-7", Path: "/"})
		mautrix.MNotFound.WithMessage("Media not found").Write(w)
	}))
	t.Cleanup(hs.Close)
	u, _ := url.Parse(hs.URL)
	for _, install := range []bool{false, true} {
		jar, _ := cookiejar.New(nil)
		cli, _ := mautrix.NewClient(hs.URL, "", "token")
		cli.Client.Jar = jar
		if install {
			cli.Client.Transport = newMediaTransport(t, nil, mediaclient.Options{})
		}
		if _, err := cli.DownloadBytes(t.Context(), id.ContentURI{Homeserver: "example.org", FileID: "missing"}); !errors.Is(err, mautrix.MNotFound) {
			t.Fatalf("install=%v: %v; want M_NOT_FOUND", install, err)
		}
		if c := jar.Cookies(u); len(c) != 1 {
			t.Errorf("install=%v: the jar holds %v for the homeserver; want its affinity cookie", install, c)
		}
	}
}

// TestAttack3CallerAllowRedirectFalse: a caller that asks the homeserver for the bytes themselves
// (DownloadWithParams with allow_redirect=false, as against a CDN it cannot reach) has its choice
// turned into allow_redirect=true by the transport.
func TestAttack3CallerAllowRedirectFalse(t *testing.T) {
	b := testserver.Behavior{V1Redirect: testserver.WhenAsked}
	srv := testserver.New(t, testserver.Config{Behavior: &b})
	uri := srv.AddMedia([]byte("served by the homeserver"), testserver.MediaOptions{})
	cli := mautrixSetups[0].make(t, srv, newMediaTransport(t, nil, mediaclient.Options{}))
	resp, err := cli.DownloadWithParams(t.Context(), uri, mautrix.DownloadExtra{Query: map[string]string{"allow_redirect": "false"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for _, r := range srv.RequestsTo(testserver.OriginHomeserver) {
		if v := r.Query().Get("allow_redirect"); v != "false" {
			t.Errorf("allow_redirect=%q; the caller asked for false", v)
		}
	}
	if n := len(offHome(srv)); n != 0 {
		t.Errorf("%d requests went to the CDN the caller wanted to avoid", n)
	}
}

// TestAttack3WrapResponseWithoutRequest: mautrix's Download returns a response whose Request is set
// (code that logs resp.Request.URL, or reads it after a redirect, relies on it); Wrap's drop-in
// returns one with a nil Request. (Fixed: the homeserver request, redacted — no credential header —
// so that a logged response carries no token.)
func TestAttack3WrapResponseWithoutRequest(t *testing.T) {
	srv := testserver.New(t, testserver.Config{})
	uri := srv.AddMedia([]byte("x"), testserver.MediaOptions{})
	cli := mautrixSetups[0].make(t, srv, nil)
	w, err := mediaclient.Wrap(cli)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := cli.Download(t.Context(), uri)
	if err != nil {
		t.Fatal(err)
	}
	plain.Body.Close()
	resp, err := w.Download(t.Context(), uri)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if plain.Request == nil || resp.Request == nil {
		t.Fatalf("Request: mautrix %v, Wrap %v; want both set", plain.Request != nil, resp.Request != nil)
	}
	if resp.Request.URL.Path != plain.Request.URL.Path || resp.Request.Header.Get("Authorization") != "" {
		t.Errorf("Wrap's Request: %s %v; want mautrix's path %s without credentials", resp.Request.URL, resp.Request.Header, plain.Request.URL.Path)
	}
}

// ---- Properties that were attacked and held. ----

// TestHolds3RedirectCachePerMasqueradedUser: two intents of one appservice send the same as_token
// and differ only in user_id: a 308 target learned for one ghost is not used for the other, whose
// request goes to the homeserver with its own user_id.
func TestHolds3RedirectCachePerMasqueradedUser(t *testing.T) {
	b := testserver.Behavior{Redirect: 308, V1Redirect: testserver.Always}
	srv := testserver.New(t, testserver.Config{Behavior: &b})
	want := content(40_000, 5)
	uri := srv.AddMedia(want, testserver.MediaOptions{})
	mt := newMediaTransport(t, nil, mediaclient.Options{})
	one, two := bridgeIntent(t, srv, mt, "ghost_1"), bridgeIntent(t, srv, mt, "ghost_2")
	for i, cli := range []*mautrix.Client{one, one, two, two} {
		got, err := cli.DownloadBytes(t.Context(), uri)
		if err != nil || sha256.Sum256(got) != sha256.Sum256(want) {
			t.Fatalf("download %d: %d bytes, %v", i, len(got), err)
		}
	}
	var users []string
	for _, r := range srv.RequestsTo(testserver.OriginHomeserver) {
		users = append(users, r.Query().Get("user_id"))
	}
	if len(users) != 2 || !strings.Contains(users[0], "ghost_1") || !strings.Contains(users[1], "ghost_2") {
		t.Errorf("homeserver requests as %v; want one per ghost", users)
	}
	if n := leaks(srv); n != 0 {
		t.Errorf("%d credentials or user_id off the homeserver", n)
	}
}

// TestHolds3CredentialsAnyCaseAndJar: a token under a lower-case key, a cookie from the jar and an
// extra credential header named in Options go to the homeserver and to no other origin.
func TestHolds3CredentialsAnyCaseAndJar(t *testing.T) {
	b := mediaRepo(func(b *testserver.Behavior) { b.CDNRejectsAuth = false })
	srv := testserver.New(t, testserver.Config{Behavior: &b})
	want := content(30_000, 1)
	uri := srv.AddMedia(want, testserver.MediaOptions{})
	mt := newMediaTransport(t, nil, mediaclient.Options{CredentialHeaders: []string{"x-api-key"}})
	jar, _ := cookiejar.New(nil)
	home, _ := url.Parse(srv.URL)
	jar.SetCookies(home, []*http.Cookie{{Name: "session", Value: "s3cret"}})
	hc := &http.Client{Transport: mt, Jar: jar}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+"/_matrix/client/v1/media/download/"+uri.Homeserver+"/"+uri.FileID, nil)
	req.Header["authorization"] = []string{"Bearer " + srv.AccessToken}
	req.Header["x-API-key"] = []string{"k"}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || sha256.Sum256(got) != sha256.Sum256(want) {
		t.Fatalf("%d bytes, %v", len(got), err)
	}
	h := srv.RequestsTo(testserver.OriginHomeserver)
	if len(h) != 1 || h[0].Header.Get("Cookie") != "session=s3cret" || h[0].Header.Get("X-Api-Key") != "k" || !h[0].HasCredentials() {
		t.Errorf("the homeserver request lacks a credential: %v", h)
	}
	if len(offHome(srv)) == 0 {
		t.Fatal("nothing went to the CDN")
	}
	noCredentialsOffHome(t, srv, "X-Api-Key")
}

// TestHolds3GuardWithBaseTransport: with a base transport (not NewTransport's dialer) the guard
// checks the target's address before the request: a public homeserver's redirect into loopback is
// refused and the target sees nothing.
func TestHolds3GuardWithBaseTransport(t *testing.T) {
	for _, cdn := range []testserver.OriginName{testserver.OriginCDN, testserver.OriginCDNNamed} {
		b := mediaRepo(func(b *testserver.Behavior) { b.CDNRejectsAuth = false; b.Chain = []testserver.OriginName{cdn} })
		srv := testserver.New(t, testserver.Config{Behavior: &b})
		uri := srv.AddMedia([]byte("guarded"), testserver.MediaOptions{})
		base := &http.Transport{}
		t.Cleanup(base.CloseIdleConnections)
		mt := newMediaTransport(t, base, mediaclient.Options{})
		home := portOf(t, srv.URL)
		mediaclient.SetTransportClassifier(mt, func(ap netip.AddrPort) string {
			if int(ap.Port()) == home {
				return "public"
			}
			return mediaclient.Classify(ap)
		})
		cli := mautrixSetups[0].make(t, srv, mt)
		if _, err := cli.DownloadBytes(t.Context(), uri); !errors.Is(err, mediaclient.ErrPrivateAddress) {
			t.Errorf("%s: err = %v; want ErrPrivateAddress", cdn, err)
		}
		if n := len(offHome(srv)); n != 0 {
			t.Errorf("%s: %d requests reached the private target", cdn, n)
		}
	}
}

// TestHolds3NoRedirectReachesHTTPClient: whatever 3xx the homeserver answers (followed or not, with
// redirects turned off), the http.Client's CheckRedirect never runs: the answer is an error.
func TestHolds3NoRedirectReachesHTTPClient(t *testing.T) {
	for _, tc := range []struct {
		status, maxRedirects int
	}{{300, 0}, {304, 0}, {305, 0}, {307, -1}, {308, -1}} {
		b := testserver.Behavior{Redirect: tc.status, V1Redirect: testserver.Always}
		srv := testserver.New(t, testserver.Config{Behavior: &b})
		uri := srv.AddMedia([]byte("x"), testserver.MediaOptions{})
		cli := mautrixSetups[0].make(t, srv, newMediaTransport(t, nil, mediaclient.Options{MaxRedirects: tc.maxRedirects}))
		checked := 0
		cli.Client.CheckRedirect = func(*http.Request, []*http.Request) error { checked++; return nil }
		resp, err := cli.Download(t.Context(), uri)
		if err == nil {
			resp.Body.Close()
		}
		if err == nil || checked != 0 || len(srv.Requests()) != 1 {
			t.Errorf("%d: err %v, CheckRedirect ran %d times, %d requests; want an error, no redirect, one request", tc.status, err, checked, len(srv.Requests()))
		}
	}
}

// TestHolds3RateLimitRetriesBounded: a homeserver that answers 429 forever is asked a bounded number
// of times: the transport's tries times mautrix's (documented), and mautrix's alone with MaxRetries -1.
func TestHolds3RateLimitRetriesBounded(t *testing.T) {
	for _, tc := range []struct {
		maxRetries, want int
	}{{0, 5 * 5}, {-1, 5}} {
		b := testserver.Behavior{Faults: []testserver.Fault{{Status: http.StatusTooManyRequests, RetryAfterMS: 1}}}
		srv := testserver.New(t, testserver.Config{Behavior: &b})
		uri := srv.AddMedia([]byte("x"), testserver.MediaOptions{})
		cli := bridgeIntent(t, srv, newMediaTransport(t, nil, mediaclient.Options{MaxRetries: tc.maxRetries}), ghost)
		if _, err := cli.DownloadBytes(t.Context(), uri); !errors.Is(err, mautrix.MLimitExceeded) {
			t.Fatalf("err = %v; want M_LIMIT_EXCEEDED", err)
		}
		if n := len(srv.Requests()); n != tc.want {
			t.Errorf("MaxRetries %d: %d requests; want %d", tc.maxRetries, n, tc.want)
		}
	}
}

// TestHolds3ConcurrentManyHomeservers: 64 goroutines through one transport, two homeservers (one
// behind a path prefix is a third Client), downloads and thumbnails, some cancelled mid-body: exact
// bytes for the others, no credential off a homeserver, and no goroutine left once it is over.
func TestHolds3ConcurrentManyHomeservers(t *testing.T) {
	before := leakcheck.Snapshot()
	var servers []*testserver.Server
	for _, p := range []testserver.Profile{testserver.ProfileMediaRepo, testserver.ProfileStrict} {
		servers = append(servers, testserver.New(t, testserver.Config{Profile: p}))
	}
	mt, err := mediaclient.NewMediaTransport(nil, mediaclient.Options{RetryWaitMin: time.Millisecond, RetryWaitMax: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	type item struct {
		srv         *testserver.Server
		uri         id.ContentURI
		media, thum []byte
	}
	var items []item
	for i := range 8 {
		srv := servers[i%2]
		m, th := content(50_000+i*1000, byte(i)), content(5000+i, byte(i+1))
		items = append(items, item{srv, srv.AddMedia(m, testserver.MediaOptions{Thumbnail: th}), m, th})
	}
	var wg sync.WaitGroup
	for g := range 64 {
		wg.Go(func() {
			it := items[g%len(items)]
			cli := bridgeIntent(t, it.srv, mt, "ghost_"+string(rune('a'+g%5)))
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			var resp *http.Response
			var err error
			want := it.media
			if g%3 == 0 {
				want = it.thum
				resp, err = cli.DownloadThumbnail(ctx, it.uri, 32, 32)
			} else {
				resp, err = cli.Download(ctx, it.uri)
			}
			if err != nil {
				t.Errorf("goroutine %d: %v", g, err)
				return
			}
			defer resp.Body.Close()
			if g%4 == 1 {
				buf := make([]byte, 1000)
				io.ReadFull(resp.Body, buf)
				cancel()
				// What was already on its way may still be read; an end without error is the media.
				if rest, err := io.ReadAll(resp.Body); err == nil && sha256.Sum256(append(buf, rest...)) != sha256.Sum256(want) {
					t.Errorf("goroutine %d: a cancelled read ended without error after %d bytes that are not the media", g, len(buf)+len(rest))
				}
				return
			}
			got, err := io.ReadAll(resp.Body)
			if err != nil || sha256.Sum256(got) != sha256.Sum256(want) {
				t.Errorf("goroutine %d: %d bytes, %v", g, len(got), err)
			}
		})
	}
	wg.Wait()
	for _, srv := range servers {
		if n := leaks(srv); n != 0 {
			t.Errorf("%d credentials or user_id off the homeserver: %v", n, offHome(srv))
		}
	}
	mt.CloseIdleConnections()
	for _, srv := range servers {
		srv.Close()
	}
	for _, g := range leakcheck.Wait(before, 2*time.Second) {
		if strings.Contains(g, "mediaclient") || strings.Contains(g, "net/http") {
			t.Errorf("goroutine left running:\n%s", g)
		}
	}
}

// TestHolds3ClientTimeoutStopsStalledBody: mautrix's http.Client.Timeout still bounds an exchange
// through the transport: a CDN body that stalls (the stall timeout set far beyond) ends at the
// Timeout with an error, and nothing is left running.
func TestHolds3ClientTimeoutStopsStalledBody(t *testing.T) {
	before := leakcheck.Snapshot()
	b := mediaRepo(func(b *testserver.Behavior) {
		b.CDNRejectsAuth = false
		b.Faults = []testserver.Fault{{At: testserver.RoleCDN, Stall: testserver.StallBody, StallAfter: 10_000}}
	})
	srv := testserver.New(t, testserver.Config{Behavior: &b})
	uri := srv.AddMedia(content(100_000, 2), testserver.MediaOptions{})
	mt, err := mediaclient.NewMediaTransport(nil, mediaclient.Options{StallTimeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	cli, _ := mautrix.NewClient(srv.URL, "", srv.AccessToken)
	cli.Client = &http.Client{Transport: mt, Timeout: 200 * time.Millisecond}
	start := time.Now()
	_, err = cli.DownloadBytes(t.Context(), uri)
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 5*time.Second {
		t.Errorf("err = %v after %v; want the Client.Timeout", err, time.Since(start))
	}
	mt.CloseIdleConnections()
	srv.Close()
	for _, g := range leakcheck.Wait(before, 2*time.Second) {
		if strings.Contains(g, "mediaclient") || strings.Contains(g, "net/http") {
			t.Errorf("goroutine left running:\n%s", g)
		}
	}
}
