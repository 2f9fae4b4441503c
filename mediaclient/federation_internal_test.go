package mediaclient

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix/federation"
)

func TestResolvedBase(t *testing.T) {
	for _, tc := range []struct {
		hostHeader, ipPort string
		base, host         string // host: the Host header sent
		from, to           string // empty: no dial override
		bad                bool
	}{
		{hostHeader: "example.org", ipPort: "example.org:8448", base: "https://example.org:8448", host: "example.org"},
		{hostHeader: "Example.ORG:8448", ipPort: "example.org:8448", base: "https://example.org:8448", host: "example.org:8448"},
		{hostHeader: "matrix.example.org:443", ipPort: "matrix.example.org:443", base: "https://matrix.example.org:443", host: "matrix.example.org:443"},
		{hostHeader: "example.org", ipPort: "matrix-fed.example.net.:8443", base: "https://example.org:8443", host: "example.org", from: "example.org:8443", to: "matrix-fed.example.net.:8443"},
		{hostHeader: "1.2.3.4", ipPort: "1.2.3.4:8448", base: "https://1.2.3.4:8448", host: "1.2.3.4"},
		{hostHeader: "[2001:db8::1]:8448", ipPort: "[2001:db8::1]:8448", base: "https://[2001:db8::1]:8448", host: "[2001:db8::1]:8448"},
		{hostHeader: "[2001:DB8::1]", ipPort: "[2001:db8::1]:8448", base: "https://[2001:db8::1]:8448", host: "[2001:db8::1]"},
		{hostHeader: "example.org", ipPort: "example.org", bad: true},
		{hostHeader: "example.org", ipPort: "example.org:0", bad: true},
		{hostHeader: "user@example.org", ipPort: "example.org:8448", bad: true},
		{hostHeader: "example.org/path", ipPort: "example.org:8448", bad: true},
		{hostHeader: "example.org?q", ipPort: "example.org:8448", bad: true},
		{hostHeader: "exämple.org", ipPort: "xn--exmple-cua.org:8448", bad: true},
		{hostHeader: "example.org:99999", ipPort: "example.org:8448", bad: true},
		{hostHeader: "", ipPort: "example.org:8448", bad: true},
	} {
		base, host, dial, err := resolvedBase(&federation.ResolvedServerName{HostHeader: tc.hostHeader, IPPort: []string{tc.ipPort}})
		if tc.bad {
			if !errors.Is(err, ErrInvalidArgument) {
				t.Errorf("%q %q: err = %v; want ErrInvalidArgument", tc.hostHeader, tc.ipPort, err)
			}
			continue
		}
		if err != nil || base.String() != tc.base || host != tc.host {
			t.Errorf("%q %q: base %v, Host %q, %v; want %s, %q", tc.hostHeader, tc.ipPort, base, host, err, tc.base, tc.host)
			continue
		}
		var from, to string
		if dial != nil {
			from, to = dial.from, dial.to
		}
		if from != tc.from || to != tc.to {
			t.Errorf("%q %q: dial override %q → %q; want %q → %q", tc.hostHeader, tc.ipPort, from, to, tc.from, tc.to)
		}
	}
	if _, _, _, err := resolvedBase(&federation.ResolvedServerName{HostHeader: "example.org"}); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("no address: err = %v", err)
	}
}

func TestValidBoundary(t *testing.T) {
	for b, want := range map[string]bool{
		"simple": true, "a'()+_,-./:=? b": true, strings.Repeat("x", 70): true,
		"": false, strings.Repeat("x", 71): false, "ends with space ": false, "semi;colon": false,
		"quote\"": false, "new\nline": false, "ünïcode": false,
	} {
		if got := validBoundary(b); got != want {
			t.Errorf("validBoundary(%q) = %t; want %t", b, got, want)
		}
	}
}

// answer builds a federation answer with the given Content-Type and body.
func answer(ct string, body []byte) *http.Response {
	return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {ct}}, Body: io.NopCloser(bytes.NewReader(body)), ContentLength: -1}
}

func TestReadMultipart(t *testing.T) {
	const ct = "multipart/mixed; boundary=b0undary"
	for _, tc := range []struct {
		name, body string
		inline     string // the media part's bytes, for an inline answer
		location   string
		bad        bool
	}{
		{name: "inline", body: "--b0undary\r\nContent-Type: application/json\r\n\r\n{}\r\n--b0undary\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b0undary--\r\n", inline: "hello"},
		{name: "inline without closing delimiter", body: "--b0undary\r\n\r\n{\"a\":1}\r\n--b0undary\r\n\r\nhello\r\n--b0undary", inline: "hello"},
		{name: "preamble", body: "ignored\r\n--b0undary\r\n\r\n {} \r\n--b0undary\r\n\r\nhi\r\n--b0undary--", inline: "hi"},
		{name: "location", body: "--b0undary\r\nContent-Type: application/json\r\n\r\n{}\r\n--b0undary\r\nLocation: https://cdn.example/x\r\n\r\n\r\n--b0undary--\r\n", location: "https://cdn.example/x"},
		{name: "metadata not an object", body: "--b0undary\r\n\r\n[]\r\n--b0undary\r\n\r\nhi\r\n--b0undary--", bad: true},
		{name: "metadata not JSON", body: "--b0undary\r\n\r\n{nope\r\n--b0undary\r\n\r\nhi\r\n--b0undary--", bad: true},
		{name: "metadata of another type", body: "--b0undary\r\nContent-Type: text/plain\r\n\r\n{}\r\n--b0undary\r\n\r\nhi\r\n--b0undary--", bad: true},
		{name: "no media part", body: "--b0undary\r\n\r\n{}\r\n--b0undary--\r\n", bad: true},
		{name: "empty", body: "", bad: true},
		{name: "endless preamble", body: strings.Repeat("x", maxAnswerHead+10), bad: true},
		{name: "media part with a bad length", body: "--b0undary\r\n\r\n{}\r\n--b0undary\r\nContent-Length: -3\r\n\r\nhi\r\n--b0undary--", bad: true},
	} {
		ans, err := readMultipart(answer(ct, []byte(tc.body)), headLimits{})
		switch {
		case tc.bad:
			if !errors.Is(err, ErrBadMultipart) {
				t.Errorf("%s: err = %v; want ErrBadMultipart", tc.name, err)
			}
		case err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.location != "":
			if ans.inline != nil || len(ans.location) != 1 || ans.location[0] != tc.location {
				t.Errorf("%s: location %q", tc.name, ans.location)
			}
		default:
			got, err := io.ReadAll(ans.inline.Body)
			if err != nil || string(got) != tc.inline {
				t.Errorf("%s: media %q, %v", tc.name, got, err)
			}
		}
	}
	// A media part cut short is a break, not a clean end.
	ans, err := readMultipart(answer(ct, []byte("--b0undary\r\n\r\n{}\r\n--b0undary\r\n\r\nhello, wor")), headLimits{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(ans.inline.Body); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("cut media part: err = %v; want io.ErrUnexpectedEOF", err)
	}
}

func FuzzReadMultipart(f *testing.F) {
	f.Add("multipart/mixed; boundary=b", []byte("--b\r\n\r\n{}\r\n--b\r\n\r\nhello\r\n--b--\r\n"))
	f.Add("multipart/mixed; boundary=b", []byte("--b\r\n\r\n{}\r\n--b\r\nLocation: /x\r\n\r\n--b--\r\n"))
	f.Add("multipart/mixed", []byte("--b\r\n\r\n{}\r\n"))
	f.Add(`multipart/mixed; boundary="a b"`, []byte("--a b\r\nContent-Length: 2\r\n\r\n{}\r\n--a b\r\nContent-Length: 5\r\n\r\nhello\r\n--a b--"))
	f.Fuzz(func(t *testing.T, ct string, body []byte) {
		ans, err := readMultipart(answer(ct, body), headLimits{})
		if err != nil {
			return
		}
		if len(ans.meta) == 0 || ans.meta[0] != '{' {
			t.Fatalf("accepted metadata %q", ans.meta)
		}
		if ans.inline != nil {
			n, _ := io.Copy(io.Discard, ans.inline.Body)
			if n > int64(len(body)) {
				t.Fatalf("read %d bytes from a body of %d", n, len(body))
			}
			ans.inline.Body.Close()
		} else if len(ans.location) == 0 {
			t.Fatal("neither media nor Location")
		}
	})
}

// TestPartBodyLength: an inline media part that gives its Content-Length is held to it: a part that
// goes on past it is an error once its announced bytes are read (an empty one, which is not read,
// at once); one that ends there ends cleanly; one that ends early is cut short, as an HTTP body
// would be. Reads go no further than the Content-Length, as the resuming body's.
func TestPartBodyLength(t *testing.T) {
	const ct = "multipart/mixed; boundary=b0"
	const meta = "--b0\r\n\r\n{}\r\n"
	for _, tc := range []struct {
		name, part string
		want       string
		err        error // nil: the part's bytes and a clean end
	}{
		{"exact", "Content-Length: 5\r\n\r\nhello", "hello", nil},
		{"empty", "Content-Length: 0\r\n\r\n", "", nil},
		{"longer", "Content-Length: 5\r\n\r\nhello, world", "hello", ErrBadMultipart},
		{"one byte longer", "Content-Length: 4\r\n\r\nhello", "hell", ErrBadMultipart},
		{"empty but not", "Content-Length: 0\r\n\r\nx", "", ErrBadMultipart},
		{"shorter", "Content-Length: 9\r\n\r\nhello", "hello", nil},
		{"no length", "\r\nhello, world", "hello, world", nil},
	} {
		var got []byte
		ans, err := readMultipart(answer(ct, []byte(meta+"--b0\r\n"+tc.part+"\r\n--b0--\r\n")), headLimits{})
		if err == nil {
			body := io.Reader(ans.inline.Body)
			if ans.inline.ContentLength >= 0 {
				body = io.LimitReader(body, ans.inline.ContentLength)
			}
			got, err = io.ReadAll(body)
		}
		if string(got) != tc.want || !errors.Is(err, tc.err) {
			t.Errorf("%s: got %q, %v; want %q, %v", tc.name, got, err, tc.want, tc.err)
		}
	}
}

// TestBufferWellKnown: a .well-known answer is read into memory, bounded: one of more than 64 KiB
// is refused (server discovery then takes it for none).
func TestBufferWellKnown(t *testing.T) {
	c, err := New(Options{HomeserverURL: "https://hs.example"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		size int
		err  error
	}{{100, nil}, {maxWellKnown, nil}, {maxWellKnown + 1, errWellKnownTooLong}} {
		body := `{"m.server":"` + strings.Repeat("a", tc.size-15) + `"}`
		resp := &http.Response{StatusCode: 200, Body: io.NopCloser(strings.NewReader(body)), ContentLength: -1}
		err := c.bufferWellKnown(resp)
		if !errors.Is(err, tc.err) {
			t.Errorf("%d bytes: err = %v; want %v", tc.size, err, tc.err)
			continue
		}
		if err == nil {
			if got, _ := io.ReadAll(resp.Body); string(got) != body || resp.ContentLength != int64(len(body)) {
				t.Errorf("%d bytes: buffered %d bytes, Content-Length %d", tc.size, len(got), resp.ContentLength)
			}
		}
	}
}

// TestDiscoverHonoursExpiry: a kept discovery result is used until it expires, then discovery runs
// again (here for an address literal, which needs no network).
func TestDiscoverHonoursExpiry(t *testing.T) {
	f, err := NewFederationClient(FederationOptions{ServerName: "origin.example", Key: federation.GenerateSigningKey()})
	if err != nil {
		t.Fatal(err)
	}
	const name = "192.0.2.1:8448"
	kept := &federation.ResolvedServerName{ServerName: name, HostHeader: name, IPPort: []string{"192.0.2.9:1"}, Expires: time.Now().Add(time.Hour)}
	f.resolutions.Add(name, kept)
	if res, err := f.discover(t.Context(), name); err != nil || res != kept {
		t.Errorf("unexpired: %+v, %v; want the kept result", res, err)
	}
	kept.Expires = time.Now().Add(-time.Second)
	res, err := f.discover(t.Context(), name)
	if err != nil || res == kept || res.IPPort[0] != name {
		t.Fatalf("expired: %+v, %v; want a fresh result", res, err)
	}
	if again, _ := f.resolutions.Get(name); again != res {
		t.Errorf("the fresh result is not kept")
	}
}

// TestAppliesDialOverride: NewFederationTransport's transport and its Clones connect where a dial
// override says; a transport whose dialer is another (or wraps it, or dials TLS itself), or that
// goes through a proxy, is taken for one that connects to the URL's host.
func TestAppliesDialOverride(t *testing.T) {
	wrapped := NewFederationTransport()
	dial := wrapped.DialContext
	wrapped.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) { return dial(ctx, network, addr) }
	tlsDial := NewFederationTransport()
	tlsDial.DialTLSContext = func(context.Context, string, string) (net.Conn, error) { return nil, errors.New("no") }
	for _, tc := range []struct {
		name     string
		rt       http.RoundTripper
		viaProxy bool
		want     bool
	}{
		{"NewFederationTransport", NewFederationTransport(), false, true},
		{"a Clone", NewFederationTransport().Clone(), false, true},
		{"through a proxy", NewFederationTransport(), true, false},
		{"NewTransport", NewTransport(), false, false},
		{"a bare http.Transport", &http.Transport{}, false, false},
		{"a wrapped dialer", wrapped, false, false},
		{"a TLS dialer", tlsDial, false, false},
		{"not an http.Transport", roundTripFunc(func(*http.Request) (*http.Response, error) { return nil, nil }), false, false},
	} {
		if got := appliesDialOverride(tc.rt, tc.viaProxy); got != tc.want {
			t.Errorf("%s: %t; want %t", tc.name, got, tc.want)
		}
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestDialTarget: the dial override applies to the URL whose host and port are its own, spelt as
// the transport gives them to its dialer (the scheme's port when the URL has none).
func TestDialTarget(t *testing.T) {
	ctx := context.WithValue(t.Context(), dialOverrideKey{}, &dialOverride{from: "example.org:443", to: "192.0.2.7:8443"})
	for _, tc := range []struct {
		url  string
		host string
		port uint16
		over bool
	}{
		{"https://example.org/x", "192.0.2.7", 8443, true},
		{"https://EXAMPLE.org:443/x", "192.0.2.7", 8443, true},
		{"https://example.org:8448/x", "example.org", 8448, false},
		{"http://example.org/x", "example.org", 80, false},
		{"https://other.example/x", "other.example", 443, false},
	} {
		u, _ := url.Parse(tc.url)
		host, port, over := dialTarget(ctx, u)
		if host != tc.host || port != tc.port || over != tc.over {
			t.Errorf("%s: %s %d %t; want %s %d %t", tc.url, host, port, over, tc.host, tc.port, tc.over)
		}
	}
}
