package testserver_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mxfetch/mxfetch/internal/leakcheck"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/mxfetch/mxfetch/mediaclient"
	"github.com/mxfetch/mxfetch/testserver"
)

type answer struct {
	status int
	header http.Header
	body   []byte
	err    error // error reading the body
}

func (a answer) errcode() string {
	var e struct {
		ErrCode string `json:"errcode"`
	}
	json.Unmarshal(a.body, &e)
	return e.ErrCode
}

// get sends one GET without following redirects.
func get(t *testing.T, srv *testserver.Server, rawURL string, header ...string) answer {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, rawURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	c := srv.Client()
	defer c.CloseIdleConnections()
	resp, err := c.Do(req)
	if err != nil {
		return answer{err: err}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return answer{status: resp.StatusCode, header: resp.Header, body: body, err: err}
}

func v3(srv *testserver.Server, uri id.ContentURI, query string) string {
	return srv.URL + "/_matrix/media/v3/download/" + uri.Homeserver + "/" + uri.FileID + query
}

func v1(srv *testserver.Server, uri id.ContentURI, query string) string {
	return srv.URL + "/_matrix/client/v1/media/download/" + uri.Homeserver + "/" + uri.FileID + query
}

func bearer(srv *testserver.Server) []string {
	return []string{"Authorization", "Bearer " + srv.AccessToken}
}

func TestServesDirectly(t *testing.T) {
	srv := testserver.New(t, testserver.Config{Profile: testserver.ProfileSynapse})
	content := []byte("hello, matrix")
	uri := srv.AddMedia(content, testserver.MediaOptions{ContentType: "text/plain", FileName: "hello.txt"})

	a := get(t, srv, v3(srv, uri, "?allow_redirect=true"))
	if a.status != 200 || !bytes.Equal(a.body, content) {
		t.Fatalf("v3: got %d %q; want 200 %q", a.status, a.body, content)
	}
	if got := a.header.Get("Content-Type"); got != "text/plain" {
		t.Errorf("Content-Type = %q; want text/plain", got)
	}
	if got := a.header.Get("Content-Disposition"); got != "inline; filename=hello.txt" {
		t.Errorf("Content-Disposition = %q", got)
	}
	if a := get(t, srv, v3(srv, uri, "/other.bin")); a.header.Get("Content-Disposition") != "inline; filename=other.bin" {
		t.Errorf("file name in path: Content-Disposition = %q", a.header.Get("Content-Disposition"))
	}

	for _, tc := range []struct {
		name    string
		header  []string
		status  int
		errcode string
	}{
		{"no token", nil, 401, "M_MISSING_TOKEN"},
		{"wrong token", []string{"Authorization", "Bearer nope"}, 401, "M_UNKNOWN_TOKEN"},
		{"basic auth", []string{"Authorization", "Basic eDp5"}, 401, "M_UNKNOWN_TOKEN"},
		{"token", bearer(srv), 200, ""},
	} {
		a := get(t, srv, v1(srv, uri, ""), tc.header...)
		if a.status != tc.status || a.errcode() != tc.errcode {
			t.Errorf("v1 %s: got %d %q; want %d %q", tc.name, a.status, a.errcode(), tc.status, tc.errcode)
		}
	}
	if got := len(srv.Requests()); got != 6 {
		t.Errorf("request log has %d entries; want 6", got)
	}
}

func TestRedirectStatuses(t *testing.T) {
	for _, status := range []int{301, 302, 303, 307, 308, 300} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			srv := testserver.New(t, testserver.Config{Behavior: &testserver.Behavior{Redirect: status, V3Redirect: testserver.WhenAsked}})
			content := []byte("redirected bytes")
			uri := srv.AddMedia(content, testserver.MediaOptions{})
			if a := get(t, srv, v3(srv, uri, "")); a.status != 200 {
				t.Fatalf("without allow_redirect: got %d; want 200", a.status)
			}
			a := get(t, srv, v3(srv, uri, "?allow_redirect=true"))
			loc := a.header.Get("Location")
			if a.status != status || !strings.HasPrefix(loc, srv.Origin(testserver.OriginCDN)+"/") {
				t.Fatalf("got %d Location %q; want %d to the CDN", a.status, loc, status)
			}
			b := get(t, srv, loc)
			if b.status != 200 || !bytes.Equal(b.body, content) {
				t.Fatalf("CDN: got %d %q", b.status, b.body)
			}
			if got := len(srv.RequestsTo(testserver.OriginCDN)); got != 1 {
				t.Errorf("CDN saw %d requests; want 1", got)
			}
		})
	}
}

func TestV1RedirectsRegardless(t *testing.T) {
	srv := testserver.New(t, testserver.Config{Profile: testserver.ProfileMediaRepo})
	uri := srv.AddMedia([]byte("x"), testserver.MediaOptions{})
	if a := get(t, srv, v1(srv, uri, "?allow_redirect=false"), bearer(srv)...); a.status != 307 {
		t.Errorf("v1: got %d; want 307", a.status)
	}
	if a := get(t, srv, v3(srv, uri, "?allow_redirect=false")); a.status != 200 {
		t.Errorf("v3 allow_redirect=false: got %d; want 200", a.status)
	}
}

func TestChains(t *testing.T) {
	chain := []testserver.OriginName{testserver.OriginCDNHost, testserver.OriginCDNTLS, testserver.OriginHomeserver, testserver.OriginCDN}
	srv := testserver.New(t, testserver.Config{Behavior: &testserver.Behavior{V3Redirect: testserver.WhenAsked, Redirect: 308, Chain: chain}})
	content := bytes.Repeat([]byte("chain"), 1000)
	uri := srv.AddMedia(content, testserver.MediaOptions{})
	next := v3(srv, uri, "?allow_redirect=true")
	var origins []string
	for range len(chain) {
		a := get(t, srv, next)
		if a.status != 308 {
			t.Fatalf("hop %d: got %d; want 308", len(origins), a.status)
		}
		next = a.header.Get("Location")
		origins = append(origins, next[:strings.Index(next, "/_cdn/")])
	}
	for i, name := range chain {
		if origins[i] != srv.Origin(name) {
			t.Errorf("hop %d went to %s; want %s (%s)", i, origins[i], srv.Origin(name), name)
		}
	}
	if a := get(t, srv, next); a.status != 200 || !bytes.Equal(a.body, content) {
		t.Fatalf("end of chain: got %d, %d bytes", a.status, len(a.body))
	}

	// A loop never ends.
	srv.SetBehavior(testserver.Behavior{V3Redirect: testserver.WhenAsked, Chain: []testserver.OriginName{testserver.OriginCDN, testserver.OriginCDNHost}, Loop: true})
	next = v3(srv, uri, "?allow_redirect=true")
	for i := range 12 {
		a := get(t, srv, next)
		if a.status != 307 {
			t.Fatalf("loop hop %d: got %d; want 307", i, a.status)
		}
		next = a.header.Get("Location")
	}
}

func TestRawLocation(t *testing.T) {
	for _, loc := range []string{"/relative/path", "../x", "?q=1", "//evil.example/x", "file:///etc/passwd",
		"data:text/plain,hi", "http://user:pass@127.0.0.1:1/x", "http://127.0.0.1:1/x#frag", "", strings.Repeat("a", 10<<10)} {
		srv := testserver.New(t, testserver.Config{Behavior: &testserver.Behavior{V3Redirect: testserver.Always, Location: &loc}})
		uri := srv.AddMedia([]byte("x"), testserver.MediaOptions{})
		a := get(t, srv, v3(srv, uri, ""))
		if got, ok := a.header["Location"]; a.status != 307 || !ok || got[0] != loc {
			t.Errorf("Location %.40q: got %d %.40q", loc, a.status, got)
		}
	}
	srv := testserver.New(t, testserver.Config{Behavior: &testserver.Behavior{V3Redirect: testserver.Always, NoLocation: true}})
	uri := srv.AddMedia([]byte("x"), testserver.MediaOptions{})
	if a := get(t, srv, v3(srv, uri, "")); a.status != 307 || a.header["Location"] != nil {
		t.Errorf("NoLocation: got %d %q", a.status, a.header["Location"])
	}
}

func TestProfiles(t *testing.T) {
	for _, tc := range []struct {
		profile testserver.Profile
		url     func(*testserver.Server, id.ContentURI) string
		auth    bool
		status  int
		errcode string
	}{
		{testserver.ProfileStrict, func(s *testserver.Server, u id.ContentURI) string { return v3(s, u, "?allow_redirect=true") }, false, 400, "M_INVALID_PARAM"},
		{testserver.ProfileStrict, func(s *testserver.Server, u id.ContentURI) string { return v3(s, u, "") }, false, 200, ""},
		{testserver.ProfileStrict, func(s *testserver.Server, u id.ContentURI) string { return v1(s, u, "?allow_redirect=true") }, true, 400, "M_INVALID_PARAM"},
		{testserver.ProfileMediaRepo, func(s *testserver.Server, u id.ContentURI) string { return v3(s, u, "?allow_redirect=yes") }, false, 400, "M_UNKNOWN"},
		{testserver.ProfileMediaRepo, func(s *testserver.Server, u id.ContentURI) string { return v3(s, u, "?allow_redirect=true") }, false, 307, ""},
		{testserver.ProfileSynapse, func(s *testserver.Server, u id.ContentURI) string { return v3(s, u, "?allow_redirect=yes") }, false, 200, ""},
		{testserver.ProfileLegacy, func(s *testserver.Server, u id.ContentURI) string { return v1(s, u, "") }, true, 404, "M_UNRECOGNIZED"},
		{testserver.ProfileLegacy, func(s *testserver.Server, u id.ContentURI) string { return v3(s, u, "?allow_redirect=true") }, false, 307, ""},
		{testserver.ProfileMediaProxy, func(s *testserver.Server, u id.ContentURI) string { return v3(s, u, "") }, false, 404, "M_UNRECOGNIZED"},
		{testserver.ProfileMediaProxy, func(s *testserver.Server, u id.ContentURI) string { return v1(s, u, "") }, true, 307, ""},
	} {
		srv := testserver.New(t, testserver.Config{Profile: tc.profile})
		uri := srv.AddMedia([]byte("x"), testserver.MediaOptions{})
		var h []string
		if tc.auth {
			h = bearer(srv)
		}
		u := tc.url(srv, uri)
		a := get(t, srv, u, h...)
		if a.status != tc.status || a.errcode() != tc.errcode {
			t.Errorf("%s %s: got %d %q; want %d %q", tc.profile, strings.TrimPrefix(u, srv.URL), a.status, a.errcode(), tc.status, tc.errcode)
		}
		if tc.profile == testserver.ProfileMediaProxy && a.status == 307 && a.header.Get("Cache-Control") == "" {
			t.Errorf("mediaproxy redirect has no Cache-Control")
		}
	}

	legacy := testserver.New(t, testserver.Config{Profile: testserver.ProfileLegacy})
	var versions struct{ Versions []string }
	json.Unmarshal(get(t, legacy, legacy.URL+"/_matrix/client/versions").body, &versions)
	if strings.Contains(strings.Join(versions.Versions, ","), "v1.11") {
		t.Errorf("legacy /versions lists v1.11: %v", versions.Versions)
	}
	if _, err := testserver.Start(testserver.Config{Profile: "nope"}); err == nil {
		t.Error("unknown profile: no error")
	}
}

// TestZeroValues shows that the zero Config, the zero Behavior and the synapse profile agree.
func TestZeroValues(t *testing.T) {
	for _, p := range []testserver.Profile{"", testserver.ProfileSynapse} {
		if b, ok := testserver.ProfileBehavior(p); !ok || !reflect.DeepEqual(b, testserver.Behavior{}) {
			t.Errorf("ProfileBehavior(%q) = %+v, %v; want the zero Behavior", p, b, ok)
		}
	}
	for _, cfg := range []testserver.Config{{}, {Behavior: &testserver.Behavior{}}} {
		srv := testserver.New(t, cfg)
		uri := srv.AddMedia([]byte("zero"), testserver.MediaOptions{})
		a := get(t, srv, v3(srv, uri, "?allow_redirect=true"))
		b := get(t, srv, v1(srv, uri, "?allow_redirect=true"), bearer(srv)...)
		if a.status != 200 || b.status != 200 || a.header.Get("ETag") == "" {
			t.Errorf("%+v: v3 %d, v1 %d, ETag %q; want both served directly with validators", cfg, a.status, b.status, a.header.Get("ETag"))
		}
	}
}

func TestFaults(t *testing.T) {
	content := bytes.Repeat([]byte("0123456789"), 10000)
	t.Run("429 then 200", func(t *testing.T) {
		srv := testserver.New(t, testserver.Config{Behavior: &testserver.Behavior{Faults: []testserver.Fault{{Count: 1, Status: 429, RetryAfter: "1", RetryAfterMS: 1000}}}})
		uri := srv.AddMedia(content, testserver.MediaOptions{})
		a := get(t, srv, v3(srv, uri, ""))
		if a.status != 429 || a.errcode() != "M_LIMIT_EXCEEDED" || a.header.Get("Retry-After") != "1" || !bytes.Contains(a.body, []byte(`"retry_after_ms":1000`)) {
			t.Errorf("got %d %s %q", a.status, a.body, a.header.Get("Retry-After"))
		}
		if a := get(t, srv, v3(srv, uri, "")); a.status != 200 {
			t.Errorf("second request: got %d; want 200", a.status)
		}
	})
	t.Run("503 twice at the CDN", func(t *testing.T) {
		srv := testserver.New(t, testserver.Config{Behavior: &testserver.Behavior{V3Redirect: testserver.Always, Faults: []testserver.Fault{{At: testserver.RoleCDN, Count: 2, Status: 503}}}})
		uri := srv.AddMedia(content, testserver.MediaOptions{})
		var got []int
		for range 3 {
			a := get(t, srv, v3(srv, uri, ""))
			got = append(got, get(t, srv, a.header.Get("Location")).status)
		}
		if fmt.Sprint(got) != "[503 503 200]" {
			t.Errorf("CDN answered %v; want [503 503 200]", got)
		}
	})
	t.Run("truncated", func(t *testing.T) {
		srv := testserver.New(t, testserver.Config{Behavior: &testserver.Behavior{Faults: []testserver.Fault{{Count: 1, Truncate: true, TruncateAt: 1000}}}})
		uri := srv.AddMedia(content, testserver.MediaOptions{})
		a := get(t, srv, v3(srv, uri, ""))
		if a.status != 200 || len(a.body) != 1000 || !errors.Is(a.err, io.ErrUnexpectedEOF) {
			t.Errorf("got %d, %d bytes, %v; want 200, 1000 bytes, unexpected EOF", a.status, len(a.body), a.err)
		}
		if a.header.Get("Content-Length") != fmt.Sprint(len(content)) {
			t.Errorf("Content-Length = %s; want %d", a.header.Get("Content-Length"), len(content))
		}
		if reqs := srv.Requests(); len(reqs) != 1 || reqs[0].Sent != 1000 || !strings.Contains(reqs[0].String(), "-> 200 (1000 bytes)") {
			t.Errorf("log: %v; want one entry of 1000 bytes sent", reqs)
		}
	})
	t.Run("reset", func(t *testing.T) {
		srv := testserver.New(t, testserver.Config{Behavior: &testserver.Behavior{Faults: []testserver.Fault{{Count: 1, Reset: true}}}})
		uri := srv.AddMedia(content, testserver.MediaOptions{})
		if a := get(t, srv, v3(srv, uri, "")); a.err == nil {
			t.Errorf("got %d; want a connection error", a.status)
		}
		if reqs := srv.Requests(); len(reqs) != 1 || reqs[0].Status != 0 {
			t.Errorf("log: %+v; want one entry with status 0", reqs)
		}
	})
	t.Run("slow", func(t *testing.T) {
		srv := testserver.New(t, testserver.Config{Behavior: &testserver.Behavior{SlowBody: time.Millisecond}})
		uri := srv.AddMedia(content, testserver.MediaOptions{})
		if a := get(t, srv, v3(srv, uri, "")); sha256.Sum256(a.body) != sha256.Sum256(content) {
			t.Errorf("slow body differs")
		}
	})
}

func TestSignedURLs(t *testing.T) {
	srv := testserver.New(t, testserver.Config{Behavior: &testserver.Behavior{V3Redirect: testserver.Always, ExpiredURLs: 1, CDNRejectsAuth: true}})
	uri := srv.AddMedia([]byte("signed"), testserver.MediaOptions{})
	expired := get(t, srv, v3(srv, uri, "")).header.Get("Location")
	fresh := get(t, srv, v3(srv, uri, "")).header.Get("Location")
	if a := get(t, srv, expired); a.status != 403 || !bytes.Contains(a.body, []byte("expired")) {
		t.Errorf("expired URL: got %d %s", a.status, a.body)
	}
	if a := get(t, srv, strings.Replace(fresh, "sig=", "sig=0", 1)); a.status != 403 {
		t.Errorf("tampered URL: got %d; want 403", a.status)
	}
	if a := get(t, srv, fresh, bearer(srv)...); a.status != 400 || !bytes.Contains(a.body, []byte("Only one auth mechanism")) {
		t.Errorf("with Authorization: got %d %s; want 400", a.status, a.body)
	}
	if a := get(t, srv, fresh); a.status != 200 || string(a.body) != "signed" {
		t.Errorf("fresh URL: got %d %q", a.status, a.body)
	}
}

func TestGeneratedAndChangedContent(t *testing.T) {
	srv := testserver.New(t, testserver.Config{Profile: testserver.ProfileSynapse})
	uri := srv.AddGenerated(200_000, 3, testserver.MediaOptions{})
	want := make([]byte, 200_000)
	testserver.GeneratedContent(3).ReadAt(want, 0)
	a := get(t, srv, v3(srv, uri, ""))
	if !bytes.Equal(a.body, want) {
		t.Fatal("generated content differs from GeneratedContent")
	}
	if r := get(t, srv, v3(srv, uri, ""), "Range", "bytes=100000-100009"); !bytes.Equal(r.body, want[100000:100010]) {
		t.Errorf("range of generated content: %q", r.body)
	}
	fixed := srv.AddMedia([]byte("before"), testserver.MediaOptions{})
	etag := get(t, srv, v3(srv, fixed, "")).header.Get("ETag")
	if !srv.SetContent(fixed.FileID, []byte("after!")) || srv.SetContent("nope", nil) {
		t.Fatal("SetContent")
	}
	b := get(t, srv, v3(srv, fixed, ""))
	if string(b.body) != "after!" || b.header.Get("ETag") == etag {
		t.Errorf("after SetContent: %q, ETag %s (was %s)", b.body, b.header.Get("ETag"), etag)
	}
}

func TestRanges(t *testing.T) {
	srv := testserver.New(t, testserver.Config{Profile: testserver.ProfileSynapse})
	uri := srv.AddMedia([]byte("0123456789"), testserver.MediaOptions{})
	full := get(t, srv, v3(srv, uri, ""))
	etag := full.header.Get("ETag")
	if etag == "" || full.header.Get("Last-Modified") == "" || full.header.Get("Accept-Ranges") != "bytes" {
		t.Fatalf("validators missing: %v", full.header)
	}
	if a := get(t, srv, v3(srv, uri, ""), "Range", "bytes=2-5"); a.status != 206 || string(a.body) != "2345" {
		t.Errorf("range: got %d %q; want 206 \"2345\"", a.status, a.body)
	}
	if a := get(t, srv, v3(srv, uri, ""), "Range", "bytes=8-", "If-Range", etag); a.status != 206 || string(a.body) != "89" {
		t.Errorf("If-Range matching: got %d %q", a.status, a.body)
	}
	if a := get(t, srv, v3(srv, uri, ""), "Range", "bytes=8-", "If-Range", `"other"`); a.status != 200 || len(a.body) != 10 {
		t.Errorf("If-Range not matching: got %d %q; want the whole body", a.status, a.body)
	}
}

func TestThumbnails(t *testing.T) {
	srv := testserver.New(t, testserver.Config{Profile: testserver.ProfileMediaRepo})
	uri := srv.AddMedia([]byte("full image"), testserver.MediaOptions{ContentType: "image/png", Thumbnail: []byte("thumb")})
	base := srv.URL + "/_matrix/media/v3/thumbnail/" + uri.Homeserver + "/" + uri.FileID
	first := get(t, srv, base+"?width=64&height=64&method=scale&allow_redirect=true")
	second := get(t, srv, base+"?width=64&height=64&method=scale&allow_redirect=true")
	if first.status != 200 || string(first.body) != "thumb" || second.status != 307 {
		t.Fatalf("got %d %q then %d; want 200 \"thumb\" then 307", first.status, first.body, second.status)
	}
	if a := get(t, srv, second.header.Get("Location")); string(a.body) != "thumb" {
		t.Errorf("thumbnail via CDN: %q", a.body)
	}
	for _, q := range []string{"", "?width=64", "?width=abc&height=1", "?width=0&height=1", "?width=-1&height=1",
		"?width=99999999999&height=1", "?width=1&height=1&method=zoom", "?width=1&height=1&animated=maybe"} {
		if a := get(t, srv, base+q); a.status != 400 || a.errcode() != "M_UNKNOWN" {
			t.Errorf("thumbnail %s: got %d %q; want 400 M_UNKNOWN", q, a.status, a.errcode())
		}
	}
}

func TestBadRequests(t *testing.T) {
	srv := testserver.New(t, testserver.Config{})
	uri := srv.AddMedia([]byte("x"), testserver.MediaOptions{})
	for _, tc := range []struct {
		path    string
		status  int
		errcode string
	}{
		{"/_matrix/media/v3/download/" + uri.Homeserver + "/unknown", 404, "M_NOT_FOUND"},
		{"/_matrix/media/v3/download/other.server/" + uri.FileID, 404, "M_NOT_FOUND"},
		{"/_matrix/media/v3/download/" + uri.Homeserver, 404, "M_UNRECOGNIZED"},
		{"/_matrix/media/v3/download/" + uri.Homeserver + "/a/b/c", 404, "M_UNRECOGNIZED"},
		{"/_matrix/media/v3/download/" + uri.Homeserver + "/" + uri.FileID + "?timeout_ms=abc", 400, "M_INVALID_PARAM"},
		{"/nonsense", 404, "M_UNRECOGNIZED"},
		{"/_cdn/download/" + uri.Homeserver + "/" + uri.FileID, 403, ""},
		{"/_matrix/client/v3/account/whoami", 401, "M_MISSING_TOKEN"},
	} {
		if a := get(t, srv, srv.URL+tc.path); a.status != tc.status || a.errcode() != tc.errcode {
			t.Errorf("%s: got %d %q; want %d %q", tc.path, a.status, a.errcode(), tc.status, tc.errcode)
		}
	}
}

func post(t *testing.T, srv *testserver.Server, method, rawURL, contentType string, body []byte, auth bool) answer {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), method, rawURL, bytes.NewReader(body))
	req.Header.Set("Content-Type", contentType)
	if auth {
		req.Header.Set("Authorization", "Bearer "+srv.AccessToken)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return answer{status: resp.StatusCode, header: resp.Header, body: data}
}

func TestUploads(t *testing.T) {
	srv := testserver.New(t, testserver.Config{MaxUploadSize: 1000})
	a := post(t, srv, "POST", srv.URL+"/_matrix/media/v3/upload?filename=cat.png", "image/png", []byte("png bytes"), true)
	var up struct {
		ContentURI id.ContentURI `json:"content_uri"`
	}
	if err := json.Unmarshal(a.body, &up); a.status != 200 || err != nil {
		t.Fatalf("upload: %d %s", a.status, a.body)
	}
	d := get(t, srv, v3(srv, up.ContentURI, ""))
	if string(d.body) != "png bytes" || d.header.Get("Content-Type") != "image/png" || d.header.Get("Content-Disposition") != "inline; filename=cat.png" {
		t.Errorf("download of upload: %q %v", d.body, d.header)
	}
	if a := post(t, srv, "POST", srv.URL+"/_matrix/media/v3/upload", "x/y", make([]byte, 1001), true); a.status != 413 || a.errcode() != "M_TOO_LARGE" {
		t.Errorf("oversized upload: %d %s", a.status, a.body)
	}
	if a := post(t, srv, "POST", srv.URL+"/_matrix/media/v3/upload", "x/y", nil, false); a.status != 401 {
		t.Errorf("upload without token: %d", a.status)
	}

	// Asynchronous upload: a download that times out, then one that waits for the bytes.
	a = post(t, srv, "POST", srv.URL+"/_matrix/media/v1/create", "application/json", []byte("{}"), true)
	var created struct {
		ContentURI id.ContentURI `json:"content_uri"`
	}
	json.Unmarshal(a.body, &created)
	d = get(t, srv, v3(srv, created.ContentURI, "?timeout_ms=1"))
	var respErr mautrix.RespError
	if err := json.Unmarshal(d.body, &respErr); err != nil || d.status != 504 || !errors.Is(respErr, mediaclient.MNotYetUploaded) {
		t.Errorf("not yet uploaded: %d %s; want 504 and the client's MNotYetUploaded", d.status, d.body)
	}
	var wg sync.WaitGroup
	var waited answer
	wg.Go(func() {
		req, _ := http.NewRequestWithContext(t.Context(), "GET", v3(srv, created.ContentURI, "?timeout_ms=60000"), nil)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Errorf("waiting download: %v", err)
			return
		}
		defer resp.Body.Close()
		waited.status = resp.StatusCode
		waited.body, _ = io.ReadAll(resp.Body)
	})
	put := srv.URL + "/_matrix/media/v3/upload/" + created.ContentURI.Homeserver + "/" + created.ContentURI.FileID
	if a := post(t, srv, "PUT", put, "text/plain", []byte("late"), true); a.status != 200 {
		t.Errorf("PUT: %d %s", a.status, a.body)
	}
	wg.Wait()
	if waited.status != 200 || string(waited.body) != "late" {
		t.Errorf("waiting download: %d %q", waited.status, waited.body)
	}
	if a := post(t, srv, "PUT", put, "text/plain", []byte("again"), true); a.status != 409 || a.errcode() != "M_CANNOT_OVERWRITE_MEDIA" {
		t.Errorf("second PUT: %d %s", a.status, a.body)
	}
}

// TestMautrixClient shows that a stock mautrix client works against the server.
func TestMautrixClient(t *testing.T) {
	srv := testserver.New(t, testserver.Config{Profile: testserver.ProfileSynapse})
	cli, err := mautrix.NewClient(srv.URL, "", srv.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	who, err := cli.Whoami(t.Context())
	if err != nil || who.UserID == "" {
		t.Fatalf("whoami: %v %v", who, err)
	}
	cli.UserID = who.UserID
	up, err := cli.UploadBytes(t.Context(), []byte("via mautrix"), "text/plain")
	if err != nil {
		t.Fatal(err)
	}
	data, err := cli.DownloadBytes(t.Context(), up.ContentURI)
	if err != nil || string(data) != "via mautrix" {
		t.Fatalf("download: %q %v", data, err)
	}
	if _, err := cli.GetMediaConfig(t.Context()); err != nil {
		t.Errorf("media config: %v", err)
	}
}

func TestParallelAndClose(t *testing.T) {
	leakcheck.Check(t)
	srv, err := testserver.Start(testserver.Config{Profile: testserver.ProfileMediaRepo})
	if err != nil {
		t.Fatal(err)
	}
	client := srv.Client()
	var wg sync.WaitGroup
	const n = 64
	for i := range n {
		content := bytes.Repeat([]byte{byte(i)}, 1000+i)
		uri := srv.AddMedia(content, testserver.MediaOptions{})
		wg.Go(func() {
			resp, err := client.Get(v3(srv, uri, "?allow_redirect=true"))
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			loc, _ := url.Parse(resp.Header.Get("Location"))
			resp, err = client.Get(loc.String())
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if sha256.Sum256(body) != sha256.Sum256(content) {
				t.Errorf("media %d: wrong bytes", i)
			}
		})
	}
	wg.Wait()
	if got := len(srv.Requests()); got != 2*n {
		t.Errorf("log has %d entries; want %d", got, 2*n)
	}
	if c := srv.Connections(testserver.OriginHomeserver); c < 1 || c > n {
		t.Errorf("homeserver accepted %d connections; want 1 to %d", c, n)
	}
	srv.ResetConnections()
	if c := srv.Connections(testserver.OriginCDN); c != 0 {
		t.Errorf("after ResetConnections: %d", c)
	}
	srv.ResetLog()
	if got := len(srv.Requests()); got != 0 {
		t.Errorf("after ResetLog: %d entries", got)
	}
	client.CloseIdleConnections()
	srv.Close()
	srv.Close()
}

// countingReaderAt counts the bytes read through it.
type countingReaderAt struct {
	r io.ReaderAt
	n atomic.Int64
}

func (c *countingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.r.ReadAt(p, off)
	c.n.Add(int64(n))
	return n, err
}

func TestAddReaderAt(t *testing.T) {
	content := testContent(5000)
	r := &countingReaderAt{r: bytes.NewReader(content)}
	mod := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	opts := testserver.MediaOptions{MediaID: "fixed", ModTime: mod}
	srv := testserver.New(t, testserver.Config{})
	uri := srv.AddReaderAt(r, int64(len(content)), opts)
	if n := r.n.Load(); n != 0 || uri.FileID != "fixed" {
		t.Fatalf("AddReaderAt read %d bytes and gave %v; want nothing read yet and the media ID asked for", n, uri)
	}
	a := get(t, srv, v3(srv, uri, ""), "Range", "bytes=4000-")
	if a.status != 206 || !bytes.Equal(a.body, content[4000:]) || r.n.Load() != 1000 {
		t.Errorf("range: got %d, %d bytes, %d read; want 206 with the last 1000 bytes, 1000 read", a.status, len(a.body), r.n.Load())
	}
	if got := a.header.Get("Last-Modified"); got != mod.Format(http.TimeFormat) {
		t.Errorf("Last-Modified = %q; want %q", got, mod.Format(http.TimeFormat))
	}
	other := testserver.New(t, testserver.Config{})
	b := get(t, other, v3(other, other.AddReaderAt(r, int64(len(content)), opts), ""))
	if etag := a.header.Get("ETag"); etag == "" || b.header.Get("ETag") != etag {
		t.Errorf("ETag %q, then %q on another server with the same options; want the same", etag, b.header.Get("ETag"))
	}
}
