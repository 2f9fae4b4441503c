package mediaclient_test

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/mxfetch/mxfetch/mediaclient"
	"github.com/mxfetch/mxfetch/testserver"
)

// noToken in Options.AccessToken makes setup leave the token out.
const noToken = "<none>"

// setup starts a test server and a Client for it. Unless opts says otherwise, the client uses the
// server's token, trusts its certificate and backs off for milliseconds only.
func setup(t testing.TB, cfg testserver.Config, opts mediaclient.Options) (*testserver.Server, *mediaclient.Client) {
	t.Helper()
	srv := testserver.New(t, cfg)
	return srv, newClient(t, srv, opts)
}

func newClient(t testing.TB, srv *testserver.Server, opts mediaclient.Options) *mediaclient.Client {
	t.Helper()
	if opts.HomeserverURL == "" {
		opts.HomeserverURL = srv.URL
	}
	switch opts.AccessToken {
	case "":
		opts.AccessToken = srv.AccessToken
	case noToken:
		opts.AccessToken = ""
	}
	if opts.Transport == nil {
		tr := mediaclient.NewTransport()
		tr.TLSClientConfig = &tls.Config{RootCAs: srv.CertPool()}
		t.Cleanup(tr.CloseIdleConnections)
		opts.Transport = tr
	}
	if opts.RetryWaitMin == 0 {
		opts.RetryWaitMin = time.Millisecond
	}
	if opts.RetryWaitMax == 0 {
		opts.RetryWaitMax = 5 * time.Millisecond
	}
	c, err := mediaclient.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// fetch downloads uri and reads it whole.
func fetch(t testing.TB, c *mediaclient.Client, uri id.ContentURI) ([]byte, *mediaclient.Media, error) {
	t.Helper()
	m, err := c.Download(t.Context(), uri)
	if err != nil {
		return nil, nil, err
	}
	defer m.Close()
	data, err := io.ReadAll(m)
	return data, m, err
}

func content(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7) + seed
	}
	return b
}

func sameBytes(a, b []byte) bool { return bytes.Equal(a, b) }

// credentialsAt counts the requests to origin that carried any credential.
func credentialsAt(srv *testserver.Server, origin testserver.OriginName) int {
	n := 0
	for _, r := range srv.RequestsTo(origin) {
		if r.HasCredentials() {
			n++
		}
	}
	return n
}

// fallbacks joins the fallbacks of a download, "" when there were none.
func fallbacks(m *mediaclient.Media) string {
	var s []string
	for _, f := range m.Fallbacks() {
		s = append(s, string(f))
	}
	return strings.Join(s, "; ")
}

// hopSummary renders hops as [{status origin credentials} …].
func hopSummary(hops []mediaclient.Hop) string {
	var s []string
	for _, h := range hops {
		s = append(s, fmt.Sprintf("{%d %s %t}", h.Status, h.Origin, h.Credentials))
	}
	return "[" + strings.Join(s, " ") + "]"
}

// mustFetch is fetch for a download that must succeed: an error ends the test.
func mustFetch(t testing.TB, c *mediaclient.Client, uri id.ContentURI) ([]byte, *mediaclient.Media) {
	t.Helper()
	got, m, err := fetch(t, c, uri)
	if err != nil {
		t.Fatalf("download %s: %v", uri, err)
	}
	return got, m
}

// httpStatus returns the status of the mautrix.HTTPError in err's chain, or 0 if there is none.
func httpStatus(err error) int {
	var he mautrix.HTTPError
	if !errors.As(err, &he) || he.Response == nil {
		return 0
	}
	return he.Response.StatusCode
}

// forwardProxy starts a plain HTTP forward proxy on loopback that calls seen with each request it is
// asked to forward (before it forwards it, without Proxy-Authorization, through a transport of its
// own), and closes it when the test ends.
func forwardProxy(t testing.TB, seen func(*http.Request)) *httptest.Server {
	t.Helper()
	direct := &http.Transport{}
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if seen != nil {
			seen(r)
		}
		out, _ := http.NewRequestWithContext(r.Context(), r.Method, r.URL.String(), nil)
		out.Header = r.Header.Clone()
		out.Header.Del("Proxy-Authorization")
		resp, err := direct.RoundTrip(out)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
	}))
	t.Cleanup(func() { proxy.Close(); direct.CloseIdleConnections() })
	return proxy
}
