package main

import (
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
