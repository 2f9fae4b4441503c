package testserver_test

import (
	"bytes"
	"encoding/json"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"testing"

	"maunium.net/go/mautrix/federation"

	"github.com/mxfetch/mxfetch/testserver"
)

// xMatrix signs a GET for requestURI from origin to dest, as the spec's request authentication says.
func xMatrix(t *testing.T, key *federation.SigningKey, origin, dest, requestURI string) string {
	t.Helper()
	sig, err := key.SignJSON(map[string]string{"method": "GET", "uri": requestURI, "origin": origin, "destination": dest})
	if err != nil {
		t.Fatal(err)
	}
	return federation.XMatrixAuth{Origin: origin, Destination: dest, KeyID: key.ID, Signature: sig}.String()
}

// part is one part of a multipart answer.
type part struct {
	header map[string][]string
	body   []byte
}

// parts reads a multipart/mixed answer whole.
func parts(t *testing.T, a answer) []part {
	t.Helper()
	mt, params, err := mime.ParseMediaType(a.header.Get("Content-Type"))
	if err != nil || mt != "multipart/mixed" {
		t.Fatalf("Content-Type %q: %v", a.header.Get("Content-Type"), err)
	}
	var out []part
	mr := multipart.NewReader(bytes.NewReader(a.body), params["boundary"])
	for {
		p, err := mr.NextRawPart()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(p)
		out = append(out, part{header: p.Header, body: body})
	}
}

func TestFederationEndpoints(t *testing.T) {
	srv := testserver.New(t, testserver.Config{TLS: true, ServerName: "remote.test", Behavior: &testserver.Behavior{Chain: []testserver.OriginName{testserver.OriginCDNTLS}}})
	key := federation.GenerateSigningKey()
	if err := srv.TrustServerKeys(key.GenerateKeyResponse("origin.test", nil)); err != nil {
		t.Fatal(err)
	}
	want := bytes.Repeat([]byte("federated "), 1000)
	uri := srv.AddMedia(want, testserver.MediaOptions{ContentType: "text/plain", FileName: "f.txt", Thumbnail: []byte("small")})
	path := "/_matrix/federation/v1/media/download/" + uri.FileID
	signed := func(p string) string { return xMatrix(t, key, "origin.test", "remote.test", p) }

	// Inline: the metadata part, then the bytes with their headers.
	a := get(t, srv, srv.URL+path, "Authorization", signed(path))
	if a.status != http.StatusOK {
		t.Fatalf("status %d %s", a.status, a.body)
	}
	ps := parts(t, a)
	if len(ps) != 2 || string(ps[0].body) != "{}" || ps[0].header["Content-Type"][0] != "application/json" ||
		!bytes.Equal(ps[1].body, want) || ps[1].header["Content-Type"][0] != "text/plain" || ps[1].header["Content-Disposition"][0] != `inline; filename=f.txt` {
		t.Errorf("parts %+v", ps)
	}

	// Thumbnail, with its query signed too.
	tp := "/_matrix/federation/v1/media/thumbnail/" + uri.FileID + "?width=32&height=32"
	if ps := parts(t, get(t, srv, srv.URL+tp, "Authorization", signed(tp))); len(ps) != 2 || string(ps[1].body) != "small" {
		t.Errorf("thumbnail parts %+v", ps)
	}
	bad := "/_matrix/federation/v1/media/thumbnail/" + uri.FileID + "?width=0&height=32"
	if a := get(t, srv, srv.URL+bad, "Authorization", signed(bad)); a.status != http.StatusBadRequest {
		t.Errorf("bad thumbnail: %d", a.status)
	}

	// Location: a signed URL on the CDN that serves the bytes.
	srv.SetFederation(testserver.FederationBehavior{Location: true, MetadataSize: 1000})
	ps = parts(t, get(t, srv, srv.URL+path, "Authorization", signed(path)))
	if len(ps) != 2 || len(ps[0].body) < 1000 || !json.Valid(ps[0].body) || len(ps[1].header["Location"]) != 1 {
		t.Fatalf("parts %+v", ps)
	}
	loc, _ := url.Parse(ps[1].header["Location"][0])
	if loc.Scheme+"://"+loc.Host != srv.Origin(testserver.OriginCDNTLS) {
		t.Errorf("Location %s", loc)
	}
	if a := get(t, srv, loc.String()); a.status != http.StatusOK || !bytes.Equal(a.body, want) {
		t.Errorf("Location answered %d with %d bytes", a.status, len(a.body))
	}

	// Refusals: no signature, a Bearer token, a signature for another URI, another destination, a
	// server whose keys are unknown (twice: the server does not fall over).
	other := federation.GenerateSigningKey()
	for name, auth := range map[string]string{
		"none":                "",
		"bearer":              "Bearer " + srv.AccessToken,
		"another URI":         signed(path + "?x=1"),
		"another destination": xMatrix(t, key, "origin.test", "elsewhere.test", path),
		"unknown server":      xMatrix(t, other, "stranger.test", "remote.test", path),
		"unknown key":         xMatrix(t, other, "origin.test", "remote.test", path),
	} {
		for range 2 {
			if a := get(t, srv, srv.URL+path, "Authorization", auth); a.status != http.StatusUnauthorized || a.errcode() != "M_UNAUTHORIZED" {
				t.Errorf("%s: %d %s", name, a.status, a.errcode())
			}
		}
	}

	// Hostile and legacy behaviours.
	srv.SetFederation(testserver.FederationBehavior{ContentType: "multipart/mixed"})
	if a := get(t, srv, srv.URL+path, "Authorization", signed(path)); a.header.Get("Content-Type") != "multipart/mixed" {
		t.Errorf("Content-Type %q", a.header.Get("Content-Type"))
	}
	srv.SetFederation(testserver.FederationBehavior{Redirect: true})
	if a := get(t, srv, srv.URL+path, "Authorization", signed(path)); a.status != http.StatusTemporaryRedirect {
		t.Errorf("redirect: %d", a.status)
	}
	srv.SetFederation(testserver.FederationBehavior{Unrecognized: true})
	if a := get(t, srv, srv.URL+path, "Authorization", signed(path)); a.status != http.StatusNotFound || a.errcode() != "M_UNRECOGNIZED" {
		t.Errorf("unrecognized: %d %s", a.status, a.errcode())
	}
	if a := get(t, srv, srv.URL+"/_matrix/media/v3/download/remote.test/"+uri.FileID+"?allow_remote=false"); a.status != http.StatusOK || !bytes.Equal(a.body, want) {
		t.Errorf("legacy: %d", a.status)
	}
}
