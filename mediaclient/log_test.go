package mediaclient_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/mxfetch/mxfetch/mediaclient"
	"github.com/mxfetch/mxfetch/testserver"
)

// TestLogs: decisions are logged at debug level when a logger is given, and neither the token nor a
// signed query string ever reaches the log.
func TestLogs(t *testing.T) {
	var buf bytes.Buffer
	log := zerolog.New(&buf).Level(zerolog.DebugLevel)
	b := testserver.Behavior{V3Redirect: testserver.WhenAsked, Param: testserver.ParamAccept, ExpiredURLs: 1,
		Faults: []testserver.Fault{{Count: 1, Status: 503}}}
	srv, c := setup(t, testserver.Config{Behavior: &b}, mediaclient.Options{API: mediaclient.APIV3, Logger: &log})
	uri := srv.AddMedia([]byte("logged"), testserver.MediaOptions{})
	if got, _, err := fetch(t, c, uri); err != nil || string(got) != "logged" {
		t.Fatal(got, err)
	}
	out := buf.String()
	for _, want := range []string{"retrying", "following redirect", "re-resolving"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	for _, secret := range []string{srv.AccessToken, "sig=", "exp="} {
		if strings.Contains(out, secret) {
			t.Errorf("log contains %q:\n%s", secret, out)
		}
	}

	// The strict server's rejection is a logged fallback too.
	buf.Reset()
	srv.SetBehavior(testserver.Behavior{Param: testserver.ParamReject})
	if _, _, err := fetch(t, c, uri); err != nil || !strings.Contains(buf.String(), "parameter rejected") {
		t.Errorf("fallback not logged: %v\n%s", err, buf.String())
	}
}
