package mediaclient_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/federation"
	"maunium.net/go/mautrix/mediaproxy"

	"github.com/mxfetch/mxfetch/mediaclient"
	"github.com/mxfetch/mxfetch/testserver"
)

// startMediaProxy starts mautrix's mediaproxy, an independently written server, as the homeserver
// "proxy.test": it answers client v1 downloads with 307 to a signed URL for the same media ID at
// origin of cdn (a CDN origin of the test server, which refuses requests carrying Authorization as
// S3 does). It returns the proxy's URL and a function that reports the Authorization header of the
// last request the proxy received.
func startMediaProxy(t *testing.T, cdn *testserver.Server, origin testserver.OriginName) (proxyURL string, lastAuthorization func() string) {
	t.Helper()
	mp, err := mediaproxy.New("proxy.test", federation.GenerateSigningKey().SynapseString(),
		func(ctx context.Context, mediaID string, params map[string]string) (mediaproxy.GetMediaResponse, error) {
			return &mediaproxy.GetMediaResponseURL{URL: cdn.SignedURL(origin, mediaID), ExpiresAt: time.Now().Add(time.Hour)}, nil
		})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mp.RegisterRoutes(mux, zerolog.Nop())
	var mu sync.Mutex
	var auth string
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		auth = r.Header.Get("Authorization")
		mu.Unlock()
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(proxy.Close)
	return proxy.URL, func() string {
		mu.Lock()
		defer mu.Unlock()
		return auth
	}
}

// TestMautrixMediaProxy downloads through mautrix's mediaproxy: the token goes to the proxy only.
func TestMautrixMediaProxy(t *testing.T) {
	cdn := testserver.New(t, testserver.Config{Profile: testserver.ProfileMediaRepo})
	want := content(300_000, 42)
	uri := cdn.AddMedia(want, testserver.MediaOptions{ContentType: "image/png"})
	proxyURL, lastAuthorization := startMediaProxy(t, cdn, testserver.OriginCDNHost)

	c := newClient(t, cdn, mediaclient.Options{HomeserverURL: proxyURL, AccessToken: "proxy-token", API: mediaclient.APIV1})
	uri.Homeserver = "proxy.test"
	got, m, err := fetch(t, c, uri)
	if err != nil {
		t.Fatal(err)
	}
	if !sameBytes(got, want) {
		t.Errorf("got %d bytes; want the %d bytes uploaded", len(got), len(want))
	}
	if auth := lastAuthorization(); auth != "Bearer proxy-token" {
		t.Errorf("the proxy saw Authorization %q; want the token", auth)
	}
	if len(m.Hops()) != 2 {
		t.Fatalf("hops %v; want 307 from the proxy, then 200 from the CDN", m.Hops())
	}
	if m.Hops()[0].Status != 307 || !m.Hops()[0].Credentials {
		t.Errorf("first hop %+v; want 307 with credentials", m.Hops()[0])
	}
	if m.Hops()[1].Credentials {
		t.Errorf("second hop %+v; want no credentials", m.Hops()[1])
	}
	reqs := cdn.RequestsTo(testserver.OriginCDNHost)
	if len(reqs) != 1 {
		t.Fatalf("CDN requests: %d; want 1", len(reqs))
	}
	if reqs[0].HasCredentials() {
		t.Error("the CDN request carried credentials")
	}
}
