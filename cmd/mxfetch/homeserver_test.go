package main

import (
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/mxfetch/mxfetch/mediaclient"
	"github.com/mxfetch/mxfetch/testserver"
)

// wellKnown starts an https server that answers /.well-known/matrix/client with the base URL that
// *base holds when asked, and returns its host:port and a file holding its certificate.
func wellKnown(t *testing.T, base *string) (hostPort, caFile string) {
	t.Helper()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/.well-known/matrix/client" {
			http.NotFound(w, r)
			return
		}
		if r.Header.Get("Authorization") != "" {
			t.Errorf("the .well-known lookup carried a token")
		}
		fmt.Fprintf(w, `{"m.homeserver":{"base_url":%q}}`, *base)
	}))
	t.Cleanup(srv.Close)
	caFile = filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644)
	return strings.TrimPrefix(srv.URL, "https://"), caFile
}

// TestHomeserverServerName: --homeserver NAME is looked up through .well-known.
func TestHomeserverServerName(t *testing.T) {
	srv := testserver.New(t, testserver.Config{Profile: testserver.ProfileMediaRepo})
	uri := srv.AddMedia([]byte("discovered"), testserver.MediaOptions{}).String()
	base := srv.URL + "/"
	name, ca := wellKnown(t, &base)
	r := cli(t, "", "--homeserver", name, "--token", srv.AccessToken, "--cacert", ca, "-o", "-", uri)
	if r.code != 0 || r.stdout != "discovered" {
		t.Fatalf("exit %d, %q, %s", r.code, r.stdout, r.stderr)
	}
	if reqs := srv.RequestsTo(testserver.OriginHomeserver); len(reqs) == 0 || !reqs[len(reqs)-1].HasCredentials() {
		t.Errorf("the homeserver found through .well-known did not get the token")
	}
	// A .well-known that names no usable base URL is an error that says where it looked.
	badBase := "ftp://nope"
	bad, ca2 := wellKnown(t, &badBase)
	if r := cli(t, "", "--homeserver", bad, "--token", "t", "--cacert", ca2, "-o", "-", uri); r.code != 1 || !strings.Contains(r.stderr, "https://"+bad+"/.well-known/matrix/client") {
		t.Errorf("bad base_url: exit %d, %s", r.code, r.stderr)
	}
}

// TestHomeserverWellKnown404: a server name without .well-known is the homeserver itself, over https.
func TestHomeserverWellKnown404(t *testing.T) {
	srv := testserver.New(t, testserver.Config{Profile: testserver.ProfileSynapse, TLS: true})
	uri := srv.AddMedia([]byte("direct"), testserver.MediaOptions{}).String()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(ca, srv.CertPEM(), 0o644)
	name := strings.TrimPrefix(srv.URL, "https://")
	if r := cli(t, "", "--homeserver", name, "--token", srv.AccessToken, "--cacert", ca, "-o", "-", uri); r.code != 0 || r.stdout != "direct" {
		t.Errorf("exit %d, %q, %s", r.code, r.stdout, r.stderr)
	}
}

// TestHomeserverFromURI: without --homeserver and without a token, the server named in the URI is
// looked up.
func TestHomeserverFromURI(t *testing.T) {
	var base string
	name, ca := wellKnown(t, &base)
	srv := testserver.New(t, testserver.Config{Profile: testserver.ProfileLegacy, ServerName: name})
	base = srv.URL
	uri := srv.AddMedia([]byte("from the uri"), testserver.MediaOptions{}).String()
	t.Setenv("MATRIX_HOMESERVER", "")
	t.Setenv("MATRIX_ACCESS_TOKEN", "")
	if r := cli(t, "", "--cacert", ca, "-o", "-", uri); r.code != 0 || r.stdout != "from the uri" {
		t.Errorf("exit %d, %q, %s", r.code, r.stdout, r.stderr)
	}
	if reqs := downloads(srv); len(reqs) == 0 || reqs[0].HasCredentials() {
		t.Errorf("requests %+v", reqs)
	}
}

// publicPort returns a classify that takes the addresses with port for public ones: a server name
// on loopback that plays a public one.
func publicPort(port string) func(netip.AddrPort) string {
	return func(ap netip.AddrPort) string {
		if fmt.Sprint(ap.Port()) == port {
			return classPublic
		}
		return classify(ap)
	}
}

// TestDiscoveryStaysPublic: the .well-known of a public server name (from a URI, without a token)
// cannot send mxfetch into loopback space, by its base_url or by a redirect, and nothing is asked
// of the address it named; a server name on loopback may name loopback (TestHomeserverFromURI).
func TestDiscoveryStaysPublic(t *testing.T) {
	srv := testserver.New(t, testserver.Config{Profile: testserver.ProfileLegacy})
	base := srv.URL
	name, ca := wellKnown(t, &base)
	_, port, _ := net.SplitHostPort(name)
	ctx := context.WithValue(t.Context(), classifyKey{}, publicPort(port))
	t.Setenv("MATRIX_HOMESERVER", "")
	t.Setenv("MATRIX_ACCESS_TOKEN", "")
	r := cliCtx(t, ctx, "", "--cacert", ca, "-o", t.TempDir(), "mxc://"+name+"/abc")
	if r.code != 1 || !strings.Contains(r.stderr, "a loopback address") || !strings.Contains(r.stderr, "--homeserver URL") {
		t.Errorf("base_url on loopback: exit %d %s", r.code, r.stderr)
	}
	if n := len(srv.Requests()); n != 0 {
		t.Errorf("the loopback homeserver got %d requests", n)
	}

	// A redirect of the .well-known into loopback is not followed.
	var asked atomic.Int32
	inside := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { asked.Add(1) }))
	defer inside.Close()
	redirector := httptest.NewTLSServer(http.RedirectHandler(inside.URL+"/.well-known/matrix/client", http.StatusFound))
	defer redirector.Close()
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(caFile, append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: redirector.Certificate().Raw}), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: inside.Certificate().Raw})...), 0o644)
	rname := strings.TrimPrefix(redirector.URL, "https://")
	_, rport, _ := net.SplitHostPort(rname)
	ctx = context.WithValue(t.Context(), classifyKey{}, publicPort(rport))
	r = cliCtx(t, ctx, "", "--cacert", caFile, "-o", t.TempDir(), "mxc://"+rname+"/abc")
	if r.code != 1 || !strings.Contains(r.stderr, "a loopback address") || asked.Load() != 0 {
		t.Errorf("redirect into loopback: exit %d, %d requests inside: %s", r.code, asked.Load(), r.stderr)
	}
}

// TestGuardDials: a connection that reaches an address the request's policy does not allow is
// closed before anything is sent on it, and the error is final (not retried by the library).
func TestGuardDials(t *testing.T) {
	var asked atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { asked.Add(1) }))
	defer srv.Close()
	tr := guardDials(mediaclient.NewTransport())
	defer tr.CloseIdleConnections()
	p := &addrPolicy{server: "example.org", allowed: map[string]bool{classPublic: true}, classify: classify}
	req, _ := http.NewRequestWithContext(withPolicy(t.Context(), p), http.MethodGet, srv.URL, nil)
	resp, err := tr.RoundTrip(req)
	if err == nil {
		resp.Body.Close()
	}
	if !errors.Is(err, errNotAllowed) || !errors.Is(err, mediaclient.ErrRedirectRefused) || asked.Load() != 0 {
		t.Errorf("err %v, %d requests; want the connection refused before the request", err, asked.Load())
	}
	req, _ = http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL, nil)
	if resp, err := tr.RoundTrip(req); err != nil || resp.StatusCode != 200 {
		t.Errorf("without a policy: %v", err)
	} else {
		resp.Body.Close()
	}
}

// TestDiscoveryHint: a server name that does not exist is told to pass the homeserver's URL; one
// that fails otherwise (TLS, a refused connection) may speak plain http.
func TestDiscoveryHint(t *testing.T) {
	notFound := fmt.Errorf("get: %w", &net.DNSError{Err: "no such host", Name: "nowhere.invalid", IsNotFound: true})
	if h := discoveryHint(notFound, "nowhere.invalid"); !strings.Contains(h, "pass --homeserver URL") || strings.Contains(h, "http://nowhere") {
		t.Errorf("no such host: %q", h)
	}
	refused := &net.OpError{Op: "dial", Err: errors.New("connection refused")}
	if h := discoveryHint(refused, "localhost:8008"); !strings.Contains(h, "--homeserver http://localhost:8008") {
		t.Errorf("refused: %q", h)
	}
}
