package mediaclient_test

import (
	"errors"
	"io"
	"net/http"
	"testing"

	"github.com/mxfetch/mxfetch/mediaclient"
	"github.com/mxfetch/mxfetch/testserver"
)

func TestResume(t *testing.T) {
	want := content(300_000, 4)
	for _, tc := range []struct {
		name     string
		behavior testserver.Behavior
		ok       bool
	}{
		{"truncated at the CDN", testserver.Behavior{V3Redirect: testserver.Always, Faults: []testserver.Fault{{At: testserver.RoleCDN, Count: 1, Truncate: true, TruncateAt: 70_000}}}, true},
		{"reset mid-body", testserver.Behavior{V3Redirect: testserver.Always, Faults: []testserver.Fault{{At: testserver.RoleCDN, Count: 2, Truncate: true, Reset: true, TruncateAt: 50_000}}}, true},
		{"truncated at the homeserver", testserver.Behavior{Faults: []testserver.Fault{{Count: 1, Truncate: true, TruncateAt: 1}}}, true},
		{"server ignores Range, no Content-Length", testserver.Behavior{NoContentLength: true, Faults: []testserver.Fault{{Count: 1, Truncate: true, TruncateAt: 123_456}}}, true},
		{"breaks every time", testserver.Behavior{V3Redirect: testserver.Always, Faults: []testserver.Fault{{At: testserver.RoleCDN, Truncate: true, TruncateAt: 1000}}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.behavior
			srv, c := setup(t, testserver.Config{Behavior: &b}, mediaclient.Options{API: mediaclient.APIV3})
			uri := srv.AddMedia(want, testserver.MediaOptions{})
			got, _, err := fetch(t, c, uri)
			if !tc.ok {
				if !errors.Is(err, mediaclient.ErrTruncated) {
					t.Fatalf("err = %v; want ErrTruncated after the bounded resumes", err)
				}
				if n := len(srv.RequestsTo(testserver.OriginCDN)); n != 4 {
					t.Errorf("CDN saw %d requests; want 1 + 3 resumes", n)
				}
				return
			}
			if err != nil || !sameBytes(got, want) {
				t.Fatalf("got %d bytes (%v); want exactly the %d bytes", len(got), err, len(want))
			}
			reqs := srv.Requests()
			last := reqs[len(reqs)-1]
			if last.Header.Get("If-Range") == "" || last.Header.Get("Range") == "" {
				t.Errorf("resumed request lacks Range/If-Range: %v", last.Header)
			}
			if credentialsAt(srv, testserver.OriginCDN) != 0 {
				t.Error("token at the CDN")
			}
		})
	}
}

// TestResumeChangedMedia: if the media changed between the break and the resume, the reader gets an
// error, never a mix of old and new bytes.
func TestResumeChangedMedia(t *testing.T) {
	srv := testserver.New(t, testserver.Config{Behavior: &testserver.Behavior{V3Redirect: testserver.Always, Faults: []testserver.Fault{{At: testserver.RoleCDN, Count: 1, Truncate: true, TruncateAt: 10_000}}}})
	uri := srv.AddMedia(content(100_000, 1), testserver.MediaOptions{})
	tr := &hookTransport{base: mediaclient.NewTransport(), after: func(resp *http.Response) {
		if resp.StatusCode == 200 {
			srv.SetContent(uri.FileID, content(100_000, 2))
		}
	}}
	c := newClient(t, srv, mediaclient.Options{API: mediaclient.APIV3, Transport: tr})
	m, err := c.Download(t.Context(), uri)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	got, err := io.ReadAll(m)
	if !errors.Is(err, mediaclient.ErrChanged) || !errors.Is(err, mediaclient.ErrTruncated) {
		t.Fatalf("err = %v; want ErrChanged", err)
	}
	if !sameBytes(got, content(100_000, 1)[:len(got)]) {
		t.Error("bytes of the new version were mixed in")
	}
}

func TestDownloadFromOffset(t *testing.T) {
	want := content(50_000, 6)
	srv, c := setup(t, testserver.Config{Profile: testserver.ProfileMediaRepo}, mediaclient.Options{})
	uri := srv.AddMedia(want, testserver.MediaOptions{})
	first, err := c.Download(t.Context(), uri)
	if err != nil {
		t.Fatal(err)
	}
	first.Close()
	etag := first.Header.Get("ETag")
	read := func(opts mediaclient.DownloadOptions) (int64, []byte) {
		t.Helper()
		m, err := c.Download(t.Context(), uri, opts)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		data, err := io.ReadAll(m)
		if err != nil {
			t.Fatal(err)
		}
		return m.Offset, data
	}
	if off, data := read(mediaclient.DownloadOptions{Offset: 20_000, IfRange: etag}); off != 20_000 || !sameBytes(data, want[20_000:]) {
		t.Errorf("honoured range: offset %d, %d bytes", off, len(data))
	}
	if off, data := read(mediaclient.DownloadOptions{Offset: 20_000, IfRange: `"stale"`}); off != 0 || !sameBytes(data, want) {
		t.Errorf("stale validator: offset %d, %d bytes; want the whole media", off, len(data))
	}
	srv.SetBehavior(testserver.Behavior{NoContentLength: true}) // ignores Range
	if off, data := read(mediaclient.DownloadOptions{Offset: 20_000, IfRange: etag}); off != 20_000 || !sameBytes(data, want[20_000:]) {
		t.Errorf("range ignored, same validator: offset %d, %d bytes", off, len(data))
	}
	if off, data := read(mediaclient.DownloadOptions{Offset: 20_000}); off != 0 || !sameBytes(data, want) {
		t.Errorf("range ignored, no validator: offset %d, %d bytes", off, len(data))
	}
	if _, err := c.Download(t.Context(), uri, mediaclient.DownloadOptions{Offset: -1}); !errors.Is(err, mediaclient.ErrInvalidArgument) {
		t.Errorf("negative offset: %v", err)
	}
}
