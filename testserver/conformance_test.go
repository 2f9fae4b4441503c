package testserver_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mxfetch/mxfetch/mediaclient"
	"github.com/mxfetch/mxfetch/testserver"
)

// runCatalogue publishes the catalogue on a fresh server, downloads every item at once with get
// (each within 1.2 s, which ends the stalled one), closes the server and returns its report.
func runCatalogue(t *testing.T, get func(ctx context.Context, srv *testserver.Server, p testserver.Published) error) testserver.Report {
	t.Helper()
	t.Parallel()
	srv := testserver.New(t, testserver.Config{})
	published := srv.Publish(testserver.Catalogue())
	var wg sync.WaitGroup
	for _, p := range published {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(t.Context(), 1200*time.Millisecond)
			defer cancel()
			get(ctx, srv, p)
		})
	}
	wg.Wait()
	srv.Close() // every answer is over: the bytes sent are final
	return srv.Judge(published)
}

func verdicts(r testserver.Report) map[string]testserver.Verdict {
	out := map[string]testserver.Verdict{}
	for _, res := range r.Results {
		out[res.Name] = res.Verdict
	}
	return out
}

// TestCatalogueWithGoHTTPClient runs Go's http.Client, following redirects with the token in a
// header, against the catalogue: it forwards the token to another port of the same host.
func TestCatalogueWithGoHTTPClient(t *testing.T) {
	rep := runCatalogue(t, func(ctx context.Context, srv *testserver.Server, p testserver.Published) error {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: srv.CertPool()}}
		defer tr.CloseIdleConnections()
		req, _ := http.NewRequestWithContext(ctx, "GET", v1(srv, p.URI, ""), nil)
		req.Header.Set("Authorization", "Bearer "+srv.AccessToken)
		resp, err := (&http.Client{Transport: tr}).Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		_, err = io.Copy(io.Discard, resp.Body)
		return err
	})
	want := map[string]testserver.Verdict{
		"direct":                    testserver.Pass,
		"param-rejected":            testserver.Pass, // it never sends allow_redirect
		"v1-unrecognized":           testserver.Fail, // it does not fall back to v3
		"redirect-other-port":       testserver.Fail,
		"redirect-other-host":       testserver.Pass, // another host name: Go drops the token
		"redirect-308":              testserver.Fail,
		"redirect-chain":            testserver.Fail,
		"redirect-loop":             testserver.Fail,
		"location-userinfo":         testserver.Fail,
		"https-to-http":             testserver.Fail,
		"cdn-refuses-authorization": testserver.Fail,
		"truncated":                 testserver.Observed,
		"truncated-no-validators":   testserver.Observed,
		"range-chunks":              testserver.Observed,
		"stalled-body":              testserver.Observed,
		"rate-limited":              testserver.Observed,
		"range-unasked":             testserver.Observed,
	}
	got := verdicts(rep)
	for name, v := range want {
		if got[name] != v {
			t.Errorf("%s: %s; want %s", name, got[name], v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("the catalogue has %d scenarios; the test knows %d", len(got), len(want))
	}
	for _, res := range rep.Results {
		for _, e := range res.Evidence {
			if strings.Contains(e, testserver.DefaultAccessToken) || strings.Contains(e, "sig=") && !strings.Contains(e, "sig=REDACTED") {
				t.Errorf("%s: evidence leaks a secret: %s", res.Name, e)
			}
		}
		if res.Verdict != testserver.Pass && len(res.Evidence) == 0 {
			t.Errorf("%s: %s without evidence", res.Name, res.Verdict)
		}
	}
	if t.Failed() {
		var b bytes.Buffer
		rep.WriteText(&b)
		t.Log("\n" + b.String())
	}
}

// TestCatalogueWithMediaclient runs this module's client, with a short stall timeout, against the
// catalogue: it passes every scenario the log can judge.
func TestCatalogueWithMediaclient(t *testing.T) {
	rep := runCatalogue(t, func(ctx context.Context, srv *testserver.Server, p testserver.Published) error {
		tr := mediaclient.NewTransport()
		tr.TLSClientConfig = &tls.Config{RootCAs: srv.CertPool()}
		defer tr.CloseIdleConnections()
		c, err := mediaclient.New(mediaclient.Options{HomeserverURL: srv.URL, AccessToken: srv.AccessToken, Transport: tr,
			StallTimeout: 200 * time.Millisecond})
		if err != nil {
			t.Error(err)
			return err
		}
		m, err := c.Download(ctx, p.URI)
		if err != nil {
			return err
		}
		defer m.Close()
		_, err = io.Copy(io.Discard, m)
		return err
	})
	for _, res := range rep.Results {
		// A 206 to a request without Range ends in an error, which the log cannot see.
		if res.Verdict != testserver.Pass && !(res.Name == "range-unasked" && res.Verdict == testserver.Observed) {
			t.Errorf("%s: %s (%s); want pass", res.Name, res.Verdict, res.Why)
		}
	}
	var b bytes.Buffer
	rep.WriteText(&b)
	t.Log("\n" + b.String())
}

// TestCatalogueWithCurl runs curl -L with the token in a header, as a shell script would, against the
// catalogue. Only verdicts that do not depend on curl's version are checked; the report is logged.
func TestCatalogueWithCurl(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl is not installed")
	}
	cert := filepath.Join(t.TempDir(), "cert.pem")
	var once sync.Once
	rep := runCatalogue(t, func(ctx context.Context, srv *testserver.Server, p testserver.Published) error {
		once.Do(func() { os.WriteFile(cert, srv.CertPEM(), 0o644) })
		return exec.CommandContext(ctx, curl, "-sS", "-L", "--cacert", cert, "-o", os.DevNull,
			"-H", "Authorization: Bearer "+srv.AccessToken, v1(srv, p.URI, "")).Run()
	})
	got := verdicts(rep)
	for name, want := range map[string]testserver.Verdict{
		"direct":            testserver.Pass,
		"v1-unrecognized":   testserver.Fail,     // no fallback to v3
		"redirect-loop":     testserver.Fail,     // up to 50 redirects
		"location-userinfo": testserver.Fail,     // follows, sending the user name and password
		"https-to-http":     testserver.Fail,     // steps down to http
		"truncated":         testserver.Observed, // exits with an error, keeping what it got in the file
	} {
		if got[name] != want {
			t.Errorf("%s: %s; want %s", name, got[name], want)
		}
	}
	var b bytes.Buffer
	rep.WriteText(&b)
	t.Log("\n" + b.String())
}

func TestReportFormats(t *testing.T) {
	rep := testserver.Report{Time: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC), Results: []testserver.Result{
		{Name: "a", Verdict: testserver.Pass, Why: "fine"},
		{Name: "b<script>", Verdict: testserver.Fail, Why: "leaked", Evidence: []string{"GET /x -> 200 <b>"}},
		{Name: "c", Verdict: testserver.NotTried, Why: "nothing"},
	}}
	if got := rep.Summary(); got != "1 pass, 1 fail, 0 observed, 1 not tried" {
		t.Errorf("Summary = %q", got)
	}
	var text, js, page bytes.Buffer
	if err := rep.WriteText(&text); err != nil || !strings.Contains(text.String(), "FAIL       b<script>") || !strings.Contains(text.String(), "GET /x -> 200 <b>") {
		t.Errorf("text: %v\n%s", err, text.String())
	}
	var back testserver.Report
	if err := rep.WriteJSON(&js); err != nil || json.Unmarshal(js.Bytes(), &back) != nil || len(back.Results) != 3 || back.Results[1].Verdict != testserver.Fail {
		t.Errorf("JSON: %v\n%s", err, js.String())
	}
	if err := rep.WriteHTML(&page); err != nil || strings.Contains(page.String(), "<script>") || !strings.Contains(page.String(), `data-verdict="not tried"`) {
		t.Errorf("HTML: %v\n%s", err, page.String())
	}
}
