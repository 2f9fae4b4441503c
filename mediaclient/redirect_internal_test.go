package mediaclient

import (
	"errors"
	"net/url"
	"strings"
	"testing"
)

func TestOriginOf(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		same bool
	}{
		{"https://h", "https://h:443", true},
		{"http://h", "http://h:80", true},
		{"https://h", "http://h", false},
		{"https://h", "https://h:8443", false},
		{"https://H.Example.ORG", "https://h.example.org", true},
		{"https://h.example.org.", "https://h.example.org", true},
		{"https://h.example.org", "https://sub.h.example.org", false},
		{"https://h:0443", "https://h", true},
		{"http://[::1]:80", "http://[::1]", true},
		{"http://[0:0:0:0:0:0:0:1]", "http://[::1]", true},
		{"http://[fe80::1%25eth0]", "http://[fe80::1%25eth1]", false},
		{"http://[fe80::1%25eth0]", "http://[fe80::1]", false},
		{"http://[::ffff:127.0.0.1]", "http://127.0.0.1", false},
		{"https://bücher.example", "https://xn--bcher-kva.example", true},
		{"https://BÜCHER.example", "https://xn--bcher-kva.example", true},
		{"http://127.0.0.1:8008", "http://localhost:8008", false},
	} {
		a, _ := url.Parse(tc.a)
		b, _ := url.Parse(tc.b)
		if got := originOf(a) == originOf(b); got != tc.same {
			t.Errorf("same(%s, %s) = %v; want %v (%v vs %v)", tc.a, tc.b, got, tc.same, originOf(a), originOf(b))
		}
	}
	u, _ := url.Parse("HTTPS://Example.org:443/x")
	if got := originOf(u).String(); got != "https://example.org" {
		t.Errorf("String() = %s", got)
	}
}

func TestResolveLocation(t *testing.T) {
	cur, _ := url.Parse("https://hs.example/_matrix/media/v3/download/s/m?allow_redirect=true")
	for _, tc := range []struct {
		loc  []string
		want string // "" means refused
	}{
		{[]string{"https://cdn.example/o?sig=1"}, "https://cdn.example/o?sig=1"},
		{[]string{"/other"}, "https://hs.example/other"},
		{[]string{"../x"}, "https://hs.example/_matrix/media/v3/download/x"},
		{[]string{"?q=1"}, "https://hs.example/_matrix/media/v3/download/s/m?q=1"},
		{[]string{"//cdn.example/o"}, "https://cdn.example/o"},
		{[]string{"https://cdn.example/o#frag"}, "https://cdn.example/o"},
		{[]string{" https://cdn.example/o "}, "https://cdn.example/o"},
		{[]string{"https://cdn.example/o", "https://cdn.example/o"}, "https://cdn.example/o"},
		{[]string{"HTTP://cdn.example/o"}, "http://cdn.example/o"},
		{nil, ""},
		{[]string{""}, ""},
		{[]string{"   "}, ""},
		{[]string{"https://a/", "https://b/"}, ""},
		{[]string{"file:///etc/passwd"}, ""},
		{[]string{"data:text/plain,x"}, ""},
		{[]string{"ftp://cdn.example/o"}, ""},
		{[]string{"javascript:alert(1)"}, ""},
		{[]string{"https://user:pw@cdn.example/o"}, ""},
		{[]string{"https://user@cdn.example/o"}, ""},
		{[]string{"https://cdn.example/o\r\nX-Evil: 1"}, ""},
		{[]string{"https://cdn.example/\x00"}, ""},
		{[]string{"https://cdn.example/" + strings.Repeat("a", 10<<10)}, ""},
		{[]string{"https:///nohost"}, ""},
		{[]string{"http://[::1"}, ""},
	} {
		got, err := resolveLocation(cur, tc.loc)
		if tc.want == "" {
			if err == nil || !errors.Is(err, ErrRedirectRefused) {
				t.Errorf("resolveLocation(%.60q) = %v, %v; want refused", tc.loc, got, err)
			}
			continue
		}
		if err != nil || got.String() != tc.want {
			t.Errorf("resolveLocation(%q) = %v, %v; want %s", tc.loc, got, err, tc.want)
		}
	}
}

func FuzzResolveLocation(f *testing.F) {
	for _, s := range []string{"https://cdn.example/o?sig=1", "/x", "//h/x", "file:///x", "https://u:p@h/", "?q", "#f", "http://[::1%25eth0]:80/"} {
		f.Add(s)
	}
	cur, _ := url.Parse("https://hs.example/_matrix/media/v3/download/s/m")
	f.Fuzz(func(t *testing.T, loc string) {
		next, err := resolveLocation(cur, []string{loc})
		if err != nil {
			if !errors.Is(err, ErrRedirectRefused) {
				t.Fatalf("error %v is not a refusal", err)
			}
			return
		}
		if next.User != nil {
			t.Fatalf("accepted %q as %v, with userinfo", loc, next)
		}
		if next.Fragment != "" {
			t.Fatalf("accepted %q as %v, with a fragment", loc, next)
		}
		if next.Scheme != "http" && next.Scheme != "https" {
			t.Fatalf("accepted %q as %v, neither http nor https", loc, next)
		}
		if next.Hostname() == "" {
			t.Fatalf("accepted %q as %v, without a host", loc, next)
		}
		_ = originOf(next).String()
	})
}

func FuzzParseURI(f *testing.F) {
	for _, s := range []string{"mxc://example.org/abc", "mxc://[::1]:8448/x", "mxc://a/../b", "mxc://a/b/c", "mxc://a:1/b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		uri, err := ParseURI(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidURI) {
				t.Fatalf("error %v is not ErrInvalidURI", err)
			}
			return
		}
		if strings.ContainsAny(uri.FileID, "/.%") {
			t.Fatalf("accepted %q with media ID %q", s, uri.FileID)
		}
		if strings.Contains(uri.Homeserver, "/") {
			t.Fatalf("accepted %q with server name %q", s, uri.Homeserver)
		}
		if uri.String() != s {
			t.Fatalf("accepted %q as %q", s, uri.String())
		}
		c, _ := New(Options{HomeserverURL: "https://hs.example/p"})
		u := c.buildURL(&request{uri: uri}, APIV3, true, 0)
		if !strings.HasPrefix(u.EscapedPath(), "/p/_matrix/media/v3/download/") || strings.Count(u.EscapedPath(), "/") != 7 {
			t.Fatalf("URL %s for %q", u, s)
		}
	})
}
