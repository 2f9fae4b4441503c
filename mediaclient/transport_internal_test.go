package mediaclient

import (
	"errors"
	"net/http"
	"testing"
)

func TestParseMediaRequest(t *testing.T) {
	for _, tc := range []struct {
		method, url string
		media       bool   // a request for a media endpoint
		want        string // prefix api thumbnail server/media fileName, or "invalid"
	}{
		{"GET", "http://hs/_matrix/client/v1/media/download/s.org/abc", true, " v1 false s.org/abc "},
		{"GET", "http://hs/_matrix/client/v1/media/download/s.org/abc/cat%20pic.png?user_id=%40a%3As.org", true, " v1 false s.org/abc cat pic.png"},
		{"GET", "https://hs:8448/base/path/_matrix/media/v3/thumbnail/s.org/abc?width=1&height=1", true, "/base/path v3 true s.org/abc "},
		{"GET", "https://hs/a%20b/_matrix/media/v3/download/s.org:8448/abc", true, "/a%20b v3 false s.org:8448/abc "},
		{"GET", "https://hs/_matrix/media/v3/download/%5B::1%5D:8448/abc", true, " v3 false [::1]:8448/abc "},
		{"GET", "http://hs/_matrix/client/v1/media/download/s.org", true, "invalid"},
		{"GET", "http://hs/_matrix/client/v1/media/download/s.org/abc/x/y", true, "invalid"},
		{"GET", "http://hs/_matrix/client/v1/media/thumbnail/s.org/abc/x", true, "invalid"},
		{"GET", "http://hs/_matrix/client/v1/media/download/s.org/abc?a=1;b=2", true, "invalid"},
		{"HEAD", "http://hs/_matrix/client/v1/media/download/s.org/abc", true, " v1 false s.org/abc "},
		{"HEAD", "http://hs/_matrix/client/v1/media/config", false, ""},
		{"POST", "http://hs/_matrix/media/v3/download/s.org/abc", false, ""},
		{"GET", "http://hs/_matrix/client/v1/media/config", false, ""},
		{"GET", "http://hs/_matrix/media/v3/preview_url?url=x", false, ""},
		{"GET", "http://hs/_matrix/client/v3/download/s.org/abc", false, ""},
		{"GET", "http://hs/_matrix/client/v1/media/downloads/s.org/abc", false, ""},
	} {
		req, err := http.NewRequest(tc.method, tc.url, nil)
		if err != nil {
			t.Fatal(err)
		}
		mr, ok := parseMediaRequest(req)
		if ok != tc.media {
			t.Errorf("%s %s: media request %t; want %t", tc.method, tc.url, ok, tc.media)
			continue
		}
		if !ok {
			continue
		}
		got := "invalid"
		if mr.err == nil {
			got = mr.prefix + " " + string(mr.api) + " " + map[bool]string{true: "true", false: "false"}[mr.thumbnail] + " " + mr.uri.Homeserver + "/" + mr.uri.FileID + " " + mr.fileName
		} else if !errors.Is(mr.err, ErrInvalidURI) {
			t.Errorf("%s: %v; want ErrInvalidURI", tc.url, mr.err)
		}
		if got != tc.want {
			t.Errorf("%s %s: %q; want %q", tc.method, tc.url, got, tc.want)
		}
	}
}
