package mediaclient_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/federation"
	"maunium.net/go/mautrix/mediaproxy"

	"github.com/mxfetch/mxfetch/mediaclient"
	"github.com/mxfetch/mxfetch/testserver"
)

// TestMautrixMediaProxy downloads through mautrix's mediaproxy, an independently written server that
// answers client v1 downloads with 307 to a URL it is given: here a signed URL on a CDN origin of the
// test server, which refuses requests carrying Authorization as S3 does.
func TestMautrixMediaProxy(t *testing.T) {
	cdn := testserver.New(t, testserver.Config{Profile: testserver.ProfileMediaRepo})
	want := content(300_000, 42)
	uri := cdn.AddMedia(want, testserver.MediaOptions{ContentType: "image/png"})

	mp, err := mediaproxy.New("proxy.test", federation.GenerateSigningKey().SynapseString(),
		func(ctx context.Context, mediaID string, params map[string]string) (mediaproxy.GetMediaResponse, error) {
			return &mediaproxy.GetMediaResponseURL{
				URL:       cdn.SignedURL(testserver.OriginCDNHost, mediaID),
				ExpiresAt: time.Now().Add(time.Hour),
			}, nil
		})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mp.RegisterRoutes(mux, zerolog.Nop())
	var sawToken bool
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sawToken = r.Header.Get("Authorization") == "Bearer proxy-token"
		mux.ServeHTTP(w, r)
	}))
	defer proxy.Close()

	c := newClient(t, cdn, mediaclient.Options{HomeserverURL: proxy.URL, AccessToken: "proxy-token", API: mediaclient.APIV1})
	uri.Homeserver = "proxy.test"
	got, m, err := fetch(t, c, uri)
	if err != nil || !sameBytes(got, want) {
		t.Fatalf("got %d bytes, %v", len(got), err)
	}
	if !sawToken || len(m.Hops()) != 2 || m.Hops()[0].Status != 307 || !m.Hops()[0].Credentials || m.Hops()[1].Credentials {
		t.Errorf("hops %v, proxy saw token: %v", m.Hops(), sawToken)
	}
	reqs := cdn.RequestsTo(testserver.OriginCDNHost)
	if len(reqs) != 1 || reqs[0].HasCredentials() {
		t.Errorf("CDN requests %d, with credentials: %v", len(reqs), len(reqs) == 1 && reqs[0].HasCredentials())
	}
}
