package testserver_test

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/mxfetch/mxfetch/testserver"
)

// contentRange returns the Content-Range a 206 of content[first:last+1] carries.
func contentRange(first, last, total int) string {
	return fmt.Sprintf("bytes %d-%d/%d", first, last, total)
}

func TestRangeChunk(t *testing.T) {
	const size, chunk = 10000, 3000
	content := testContent(size)
	srv := testserver.New(t, testserver.Config{Behavior: &testserver.Behavior{
		V3Redirect: testserver.WhenAsked,
		Direct:     testserver.Serving{RangeChunk: chunk},
	}})
	uri := srv.AddMedia(content, testserver.MediaOptions{})
	for _, tc := range []struct {
		rng         string
		first, last int
	}{
		{"bytes=0-", 0, chunk - 1},
		{"bytes=9000-", 9000, size - 1},
		{"bytes=7000-", 7000, size - 1},
		{"bytes=6999-", 6999, 6999 + chunk - 1},
		{"bytes=100-5000", 100, 100 + chunk - 1},
		{"bytes=100-199", 100, 199},
		{"bytes=100-3099", 100, 3099},
		{"bytes=-5000", 5000, 5000 + chunk - 1},
		{"bytes=-100", size - 100, size - 1},
	} {
		a := get(t, srv, v3(srv, uri, ""), "Range", tc.rng)
		want := contentRange(tc.first, tc.last, size)
		if a.status != 206 || a.header.Get("Content-Range") != want || !bytes.Equal(a.body, content[tc.first:tc.last+1]) {
			t.Errorf("%s: got %d %q, %d bytes; want 206 %q, %d bytes", tc.rng, a.status, a.header.Get("Content-Range"), len(a.body), want, tc.last-tc.first+1)
		}
	}
	if a := get(t, srv, v3(srv, uri, "")); a.status != 200 || !bytes.Equal(a.body, content) {
		t.Errorf("no Range: got %d, %d bytes; want 200, the whole body", a.status, len(a.body))
	}
	// The CDN has its own Serving: the zero value honours the whole range.
	loc := get(t, srv, v3(srv, uri, "?allow_redirect=true")).header.Get("Location")
	if a := get(t, srv, loc, "Range", "bytes=100-"); a.status != 206 || a.header.Get("Content-Range") != contentRange(100, size-1, size) {
		t.Errorf("CDN bytes=100-: got %d %q; want 206 to the end", a.status, a.header.Get("Content-Range"))
	}

	srv.SetBehavior(testserver.Behavior{CDN: testserver.Serving{RangeChunk: chunk}, V3Redirect: testserver.Always})
	loc = get(t, srv, v3(srv, uri, "")).header.Get("Location")
	if a := get(t, srv, loc, "Range", "bytes=100-"); a.status != 206 || a.header.Get("Content-Range") != contentRange(100, 100+chunk-1, size) {
		t.Errorf("CDN with RangeChunk, bytes=100-: got %d %q", a.status, a.header.Get("Content-Range"))
	}
}

func TestValidatorsAndIfRange(t *testing.T) {
	content := testContent(1000)
	for _, tc := range []struct {
		name       string
		serving    testserver.Serving
		validators bool
		ifRange    int // status of a Range with a stale If-Range
	}{
		{"zero", testserver.Serving{}, true, 200},
		{"IgnoreIfRange", testserver.Serving{IgnoreIfRange: true}, true, 206},
		{"NoValidators", testserver.Serving{NoValidators: true}, false, 200},
		{"media-repo", testserver.Serving{NoValidators: true, IgnoreIfRange: true, RangeChunk: 100}, false, 206},
	} {
		srv := testserver.New(t, testserver.Config{Behavior: &testserver.Behavior{Direct: tc.serving}})
		uri := srv.AddMedia(content, testserver.MediaOptions{})
		a := get(t, srv, v3(srv, uri, ""))
		if got := a.header.Get("ETag") != "" && a.header.Get("Last-Modified") != ""; got != tc.validators {
			t.Errorf("%s: ETag %q, Last-Modified %q; want validators %v", tc.name, a.header.Get("ETag"), a.header.Get("Last-Modified"), tc.validators)
		}
		if !tc.validators && (a.header.Get("ETag") != "" || a.header.Get("Last-Modified") != "") {
			t.Errorf("%s: a validator was sent: %v", tc.name, a.header)
		}
		for _, ir := range []string{`"stale"`, "Mon, 02 Jan 2006 15:04:05 GMT"} {
			b := get(t, srv, v3(srv, uri, ""), "Range", "bytes=500-", "If-Range", ir)
			if b.status != tc.ifRange {
				t.Errorf("%s: Range with If-Range %s: got %d; want %d", tc.name, ir, b.status, tc.ifRange)
			}
		}
		if tc.validators {
			if b := get(t, srv, v3(srv, uri, ""), "Range", "bytes=500-", "If-Range", a.header.Get("ETag")); b.status != 206 || !bytes.Equal(b.body, content[500:]) {
				t.Errorf("%s: If-Range matching: got %d, %d bytes", tc.name, b.status, len(b.body))
			}
		}
	}
}

func TestIgnoreRange(t *testing.T) {
	content := testContent(1000)
	srv := testserver.New(t, testserver.Config{Behavior: &testserver.Behavior{Direct: testserver.Serving{IgnoreRange: true}}})
	uri := srv.AddMedia(content, testserver.MediaOptions{})
	for _, rng := range []string{"bytes=0-", "bytes=500-", "bytes=1-2", "bytes=-10"} {
		a := get(t, srv, v3(srv, uri, ""), "Range", rng)
		if a.status != 200 || !bytes.Equal(a.body, content) || a.header.Get("Content-Range") != "" || a.header.Get("Accept-Ranges") != "" {
			t.Errorf("%s: got %d, %d bytes, Content-Range %q, Accept-Ranges %q; want 200 with the whole body and neither header",
				rng, a.status, len(a.body), a.header.Get("Content-Range"), a.header.Get("Accept-Ranges"))
		}
	}
}

func TestMediaRepoProfileServing(t *testing.T) {
	b, _ := testserver.ProfileBehavior(testserver.ProfileMediaRepo)
	if b.Direct.RangeChunk != 10<<20 || !b.Direct.IgnoreIfRange {
		t.Errorf("media-repo Direct = %+v; want 10 MiB chunks and If-Range ignored", b.Direct)
	}
	if b.CDN != (testserver.Serving{}) {
		t.Errorf("media-repo CDN = %+v; want the zero Serving (an S3 store honours ranges)", b.CDN)
	}
	srv := testserver.New(t, testserver.Config{Profile: testserver.ProfileMediaRepo})
	const size = 10<<20 + 5000
	uri := srv.AddGenerated(size, 1, testserver.MediaOptions{})
	a := get(t, srv, v3(srv, uri, ""), "Range", "bytes=1000-")
	if want := contentRange(1000, 1000+10<<20-1, size); a.status != 206 || a.header.Get("Content-Range") != want || len(a.body) != 10<<20 {
		t.Errorf("bytes=1000-: got %d %q, %d bytes; want 206 %q", a.status, a.header.Get("Content-Range"), len(a.body), want)
	}
}

// testContent returns n bytes that differ at every offset within 251 bytes, so a body from the wrong
// offset never matches.
func testContent(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i % 251)
	}
	return b
}
