package mediaclient_test

// Interoperability of the federation download with mautrix's own federation code: its signing (the
// X-Matrix header of mautrix's federation.Client, byte for byte), its client reading the test
// server's answers, and its media proxy — an independently written server whose federation
// endpoint checks signatures with mautrix's ServerAuth — serving the FederationClient.

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.mau.fi/util/exhttp"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/federation"
	"maunium.net/go/mautrix/mediaproxy"

	"github.com/mxfetch/mxfetch/mediaclient"
	"github.com/mxfetch/mxfetch/testserver"
)

// mautrixFederationClient returns mautrix's federation client, signing as originName with key,
// finding remote.test at srv, trusting srv's certificate. allowIP decides the addresses it may
// connect to, for the remote server and a Location alike (nil: any).
func mautrixFederationClient(t *testing.T, srv *testserver.Server, key *federation.SigningKey, allowIP func(net.IP) bool) *federation.Client {
	u, _ := url.Parse(srv.URL)
	cache := federation.NewInMemoryCache()
	cache.StoreResolution(t.Context(), &federation.ResolvedServerName{ServerName: "remote.test", HostHeader: u.Host, IPPort: []string{u.Host}, Expires: time.Now().Add(time.Hour)})
	settings := exhttp.SensibleClientSettings.WithTLSConfig(&tls.Config{RootCAs: srv.CertPool()})
	fc := federation.NewClient(originName, key, cache, settings)
	fc.AllowIP = allowIP
	return fc
}

// TestFederationSignatureMatchesMautrix: for the same request, the FederationClient's X-Matrix
// Authorization is byte for byte the one mautrix's federation client sends (Ed25519 signatures are
// deterministic), and mautrix's client reads the test server's inline and Location answers.
func TestFederationSignatureMatchesMautrix(t *testing.T) {
	want := content(40_000, 11)
	for _, fb := range []testserver.FederationBehavior{{}, {Location: true}} {
		srv, key := fedServer(t, testserver.Behavior{Chain: []testserver.OriginName{testserver.OriginCDNTLS}}, fb)
		uri := srv.AddMedia(want, testserver.MediaOptions{ContentType: "image/webp"})

		meta, body, err := mautrixFederationClient(t, srv, key, nil).DownloadMedia(t.Context(), "remote.test", uri.FileID)
		if err != nil || body == nil {
			t.Fatalf("location=%t: mautrix: %v, %v", fb.Location, body, err)
		}
		got, err := io.ReadAll(body)
		body.Close()
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("location=%t: mautrix read %d bytes, %v", fb.Location, len(got), err)
		}
		if !fb.Location && meta.Header.Get("Content-Type") != "image/webp" {
			t.Errorf("mautrix saw the part headers %v", meta.Header)
		}
		theirs := federationRequests(srv)[0].Header.Get("Authorization")

		srv.ResetLog()
		f := newFed(t, srv, key, mediaclient.FederationOptions{Options: mediaclient.Options{ServerUploadWait: -1}})
		playPublic(t, f, srv, testserver.OriginCDNTLS)
		if got, _, err := fedFetch(t, f, uri.String()); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("location=%t: ours: %d bytes, %v", fb.Location, len(got), err)
		}
		reqs := federationRequests(srv)
		if ours := reqs[0].Header.Get("Authorization"); ours != theirs || reqs[0].RawQuery != "" {
			t.Errorf("Authorization\n ours   %q\n mautrix %q", ours, theirs)
		}
	}
}

// TestMautrixDownloadMediaOnFailure records what the README warns about: when the federation
// request fails (here the remote server answers 404 M_NOT_FOUND), mautrix's DownloadMedia returns
// no metadata, no body and no error. The FederationClient returns an *Error that matches
// mautrix.MNotFound.
func TestMautrixDownloadMediaOnFailure(t *testing.T) {
	srv, key := fedServer(t, testserver.Behavior{}, testserver.FederationBehavior{})
	meta, body, err := mautrixFederationClient(t, srv, key, nil).DownloadMedia(t.Context(), "remote.test", "missing")
	if meta != nil || body != nil || err != nil {
		t.Errorf("mautrix's DownloadMedia now returns %v, %v, %v: update the README", meta, body, err)
	}
	f := newFed(t, srv, key, mediaclient.FederationOptions{})
	_, _, err = fedFetch(t, f, "mxc://remote.test/missing")
	var me *mediaclient.Error
	if !errors.As(err, &me) || !errors.Is(err, mautrix.MNotFound) {
		t.Errorf("err = %v; want an *Error matching M_NOT_FOUND", err)
	}
}

// TestMautrixLocationGuard records the difference of guards: mautrix's client has one address
// filter (AllowIP) for the remote server and its Location alike, so a client that may reach a
// remote server on a private network follows a Location into it; the FederationClient keeps
// Locations public whatever the class of the remote server.
func TestMautrixLocationGuard(t *testing.T) {
	trapPort, accepted := trap(t)
	loc := "https://127.0.0.1:" + strconv.Itoa(trapPort) + "/internal"
	srv, key := fedServer(t, testserver.Behavior{}, testserver.FederationBehavior{LocationURL: &loc})
	uri := srv.AddMedia([]byte("x"), testserver.MediaOptions{})

	loopback := func(ip net.IP) bool { return ip.IsLoopback() }
	_, body, err := mautrixFederationClient(t, srv, key, loopback).DownloadMedia(t.Context(), "remote.test", uri.FileID)
	if body != nil {
		body.Close()
	}
	if accepted.Load() == 0 {
		t.Errorf("mautrix's client did not connect to the Location (err %v): update the README", err)
	}

	before := accepted.Load()
	f := newFed(t, srv, key, mediaclient.FederationOptions{})
	if _, _, err := fedFetch(t, f, uri.String()); !errors.Is(err, mediaclient.ErrPrivateAddress) {
		t.Errorf("err = %v; want ErrPrivateAddress", err)
	}
	if n := accepted.Load() - before; n != 0 {
		t.Errorf("the FederationClient connected %d times to the Location", n)
	}
}

// TestFederationAgainstMautrixMediaProxy downloads through mautrix's media proxy with federation
// authentication on: it verifies the FederationClient's signature with mautrix's ServerAuth and
// answers inline (the bytes) or with a Location part (a signed URL on the test server's CDN).
func TestFederationAgainstMautrixMediaProxy(t *testing.T) {
	cdn := testserver.New(t, testserver.Config{})
	want := content(250_000, 12)
	cdn.AddMedia(want, testserver.MediaOptions{MediaID: "located"})

	mp, err := mediaproxy.New("proxy.test", federation.GenerateSigningKey().SynapseString(),
		func(ctx context.Context, mediaID string, params map[string]string) (mediaproxy.GetMediaResponse, error) {
			switch mediaID {
			case "inline":
				return &mediaproxy.GetMediaResponseData{Reader: io.NopCloser(bytes.NewReader(want)), ContentType: "image/png", ContentLength: int64(len(want))}, nil
			case "located":
				return &mediaproxy.GetMediaResponseURL{URL: cdn.SignedURL(testserver.OriginCDNTLS, mediaID), ExpiresAt: time.Now().Add(time.Hour)}, nil
			}
			return nil, mautrix.MNotFound
		})
	if err != nil {
		t.Fatal(err)
	}
	key := federation.GenerateSigningKey()
	keys := federation.NewInMemoryCache()
	raw, _ := json.Marshal(key.GenerateKeyResponse(originName, nil))
	var skr federation.ServerKeyResponse
	if err := json.Unmarshal(raw, &skr); err != nil {
		t.Fatal(err)
	}
	keys.StoreKeys(t.Context(), &skr)
	// The proxy's own check (EnableServerAuth) runs after its router has stripped the
	// /_matrix/federation prefix from the path, so it verifies the signature against another URI
	// and refuses every correctly signed request, mautrix's own client's included (v0.32.0). The
	// same ServerAuth checks the request here, on the path as sent.
	auth := federation.NewServerAuth(&federation.Client{AllowServer: func(string) bool { return false }}, keyCache{keys},
		func(federation.XMatrixAuth) string { return mp.GetServerName() })
	mux := http.NewServeMux()
	mp.RegisterRoutes(mux, zerolog.Nop())
	var signed, refused atomic.Int64
	proxy := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r, rerr := auth.Authenticate(r)
		if rerr != nil {
			refused.Add(1)
			rerr.Write(w)
			return
		}
		signed.Add(1)
		mux.ServeHTTP(w, r)
	}))
	proxy.StartTLS()
	defer proxy.Close()
	pu, _ := url.Parse(proxy.URL)

	roots := cdn.CertPool()
	roots.AddCert(proxy.Certificate())
	tr := mediaclient.NewFederationTransport()
	tr.TLSClientConfig = &tls.Config{RootCAs: roots}
	defer tr.CloseIdleConnections()
	f, err := mediaclient.NewFederationClient(mediaclient.FederationOptions{
		ServerName: originName, Key: key, AllowPrivateServers: true,
		ResolveServer: func(_ context.Context, name string) (*federation.ResolvedServerName, error) {
			return &federation.ResolvedServerName{ServerName: name, HostHeader: pu.Host, IPPort: []string{pu.Host}}, nil
		},
		Options: mediaclient.Options{Transport: tr},
	})
	if err != nil {
		t.Fatal(err)
	}
	playPublic(t, f, cdn, testserver.OriginCDNTLS)
	for _, id := range []string{"inline", "located"} {
		got, m, err := fedFetch(t, f, "mxc://proxy.test/"+id)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s: %d bytes, %v", id, len(got), err)
		}
		if id == "inline" && m.ContentType != "image/png" {
			t.Errorf("inline: type %q", m.ContentType)
		}
	}
	if signed.Load() != 2 || refused.Load() != 0 {
		t.Errorf("the proxy verified %d requests and refused %d; want 2 and 0", signed.Load(), refused.Load())
	}
	if reqs := cdn.RequestsTo(testserver.OriginCDNTLS); len(reqs) != 1 || reqs[0].HasCredentials() || reqs[0].Status != 200 {
		t.Errorf("CDN requests %v", reqs)
	}
	if _, _, err := fedFetch(t, f, "mxc://proxy.test/other"); !errors.Is(err, mautrix.MNotFound) {
		t.Errorf("unknown media: err = %v; want M_NOT_FOUND", err)
	}

	// A key the proxy does not know is refused.
	other, err := mediaclient.NewFederationClient(mediaclient.FederationOptions{
		ServerName: originName, Key: federation.GenerateSigningKey(), AllowPrivateServers: true,
		ResolveServer: func(_ context.Context, name string) (*federation.ResolvedServerName, error) {
			return &federation.ResolvedServerName{ServerName: name, HostHeader: pu.Host, IPPort: []string{pu.Host}}, nil
		},
		Options: mediaclient.Options{Transport: tr},
	})
	if err != nil {
		t.Fatal(err)
	}
	var he mautrix.HTTPError
	if _, _, err := fedFetch(t, other, "mxc://proxy.test/inline"); !errors.As(err, &he) || he.Response.StatusCode != http.StatusUnauthorized || refused.Load() != 1 {
		t.Errorf("unknown key: err = %v, refused %d", err, refused.Load())
	}
}

// keyCache is mautrix's in-memory key cache, but StoreFetchError hands back the error it stores:
// mautrix's ServerAuth (v0.32.0) returns StoreFetchError's result in place of the fetch error, so
// with a nil there it goes on without keys and panics on a request with an unknown key.
type keyCache struct{ *federation.InMemoryCache }

func (k keyCache) StoreFetchError(ctx context.Context, serverName string, err error) error {
	k.InMemoryCache.StoreFetchError(ctx, serverName, err)
	return err
}
