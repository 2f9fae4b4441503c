package mediaclient_test

import (
	"testing"

	"maunium.net/go/mautrix/id"

	"github.com/mxfetch/mxfetch/mediaclient"
	"github.com/mxfetch/mxfetch/testserver"
)

func TestPermanentRedirectCache(t *testing.T) {
	b := testserver.Behavior{Redirect: 308, V1Redirect: testserver.Always}
	srv, c := setup(t, testserver.Config{Behavior: &b}, mediaclient.Options{API: mediaclient.APIV1})
	uri := srv.AddMedia([]byte("permanent"), testserver.MediaOptions{})
	counts := func() (int, int) {
		defer srv.ResetLog()
		return len(srv.RequestsTo(testserver.OriginHomeserver)), len(srv.RequestsTo(testserver.OriginCDN))
	}
	if got, _, err := fetch(t, c, uri); err != nil || string(got) != "permanent" {
		t.Fatal(got, err)
	}
	if h, cdn := counts(); h != 1 || cdn != 1 {
		t.Fatalf("first download: %d homeserver, %d CDN requests", h, cdn)
	}
	got, m := mustFetch(t, c, uri)
	if string(got) != "permanent" {
		t.Errorf("second download: body %q; want %q", got, "permanent")
	}
	if len(m.Hops()) != 1 || m.Hops()[0].Credentials {
		t.Errorf("second download: hops %v; want one, without credentials", m.Hops())
	}
	if n := credentialsAt(srv, testserver.OriginCDN); n != 0 {
		t.Errorf("second download: %d CDN requests with credentials; want 0", n)
	}
	if h, cdn := counts(); h != 0 || cdn != 1 {
		t.Fatalf("second download: %d homeserver, %d CDN requests; want the homeserver skipped", h, cdn)
	}

	// A remembered target that fails is dropped and the chain starts at the homeserver.
	b.Faults = []testserver.Fault{{At: testserver.RoleCDN, Count: 1, Status: 503}}
	srv.SetBehavior(b)
	if got, _, err := fetch(t, c, uri); err != nil || string(got) != "permanent" {
		t.Fatal(got, err)
	}
	if h, cdn := counts(); h != 1 || cdn != 2 {
		t.Errorf("after a failing target: %d homeserver, %d CDN requests; want 1 and 2", h, cdn)
	}

	// 307 is never remembered.
	srv.SetBehavior(testserver.Behavior{V1Redirect: testserver.Always})
	other := srv.AddMedia([]byte("temporary"), testserver.MediaOptions{})
	for range 2 {
		if _, _, err := fetch(t, c, other); err != nil {
			t.Fatal(err)
		}
	}
	if h, _ := counts(); h != 2 {
		t.Errorf("307: %d homeserver requests; want 2", h)
	}
}

func TestPermanentRedirectCacheOffAndBounded(t *testing.T) {
	b := testserver.Behavior{Redirect: 308, V1Redirect: testserver.Always}
	srv, off := setup(t, testserver.Config{Behavior: &b}, mediaclient.Options{API: mediaclient.APIV1, RedirectCacheSize: -1})
	u1 := srv.AddMedia([]byte("1"), testserver.MediaOptions{})
	u2 := srv.AddMedia([]byte("2"), testserver.MediaOptions{})
	for range 2 {
		if _, _, err := fetch(t, off, u1); err != nil {
			t.Fatal(err)
		}
	}
	if h := len(srv.RequestsTo(testserver.OriginHomeserver)); h != 2 {
		t.Errorf("cache off: %d homeserver requests; want 2", h)
	}
	one := newClient(t, srv, mediaclient.Options{API: mediaclient.APIV1, RedirectCacheSize: 1})
	srv.ResetLog()
	for _, u := range []id.ContentURI{u1, u2, u1} { // u2 evicts u1
		if got, _, err := fetch(t, one, u); err != nil || len(got) != 1 {
			t.Fatalf("%v: %q, %v", u, got, err)
		}
	}
	if h := len(srv.RequestsTo(testserver.OriginHomeserver)); h != 3 {
		t.Errorf("size 1: %d homeserver requests; want 3", h)
	}
}
