package testserver_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto/attachment"
	"maunium.net/go/mautrix/id"

	"github.com/mxfetch/mxfetch/internal/conformancetable"
	"github.com/mxfetch/mxfetch/mediaclient"
	"github.com/mxfetch/mxfetch/testserver"
)

// stalls reports whether a scenario's body stalls until the client gives up.
func stalls(sc *testserver.Scenario) bool {
	for _, f := range sc.Behavior.Faults {
		if f.Stall != testserver.NoStall && f.StallFor == 0 {
			return true
		}
	}
	return false
}

// catalogueRun is one client's run of the catalogue: the server (closed), what it published, the
// report, and the error the client returned for each scenario.
type catalogueRun struct {
	srv       *testserver.Server
	published []testserver.Published
	report    testserver.Report
	errs      map[string]error
}

// runCatalogue publishes the catalogue on a fresh server and downloads every item at once with get,
// each within 10 s, or within stallLimit for the scenarios that stall until the client gives up (a
// client without a stall timeout would wait forever). It closes the server, so that every answer is
// over and the bytes sent are final, and judges.
func runCatalogue(t *testing.T, stallLimit time.Duration, get func(ctx context.Context, srv *testserver.Server, p testserver.Published) error) catalogueRun {
	t.Helper()
	srv := testserver.New(t, testserver.Config{})
	run := catalogueRun{srv: srv, published: srv.Publish(testserver.Catalogue()), errs: map[string]error{}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, p := range run.published {
		wg.Go(func() {
			limit := 10 * time.Second
			if stalls(p.Scenario) {
				limit = stallLimit
			}
			ctx, cancel := context.WithTimeout(t.Context(), limit)
			defer cancel()
			err := get(ctx, srv, p)
			mu.Lock()
			run.errs[p.Scenario.Name] = err
			mu.Unlock()
		})
	}
	wg.Wait()
	srv.Close()
	run.report = srv.Judge(run.published)
	return run
}

// check compares the verdicts with want, which must name every scenario of the catalogue, checks
// the evidence for secrets, and logs the report when something is wrong (or always, with -v).
func (run catalogueRun) check(t *testing.T, want map[string]testserver.Verdict) {
	t.Helper()
	got := map[string]testserver.Verdict{}
	for _, res := range run.report.Results {
		got[res.Name] = res.Verdict
		if w, ok := want[res.Name]; !ok {
			t.Errorf("%s: the test does not know this scenario (verdict %s: %s)", res.Name, res.Verdict, res.Why)
		} else if res.Verdict != w {
			t.Errorf("%s: %s (%s); want %s", res.Name, res.Verdict, res.Why, w)
		}
		for _, e := range res.Evidence {
			if strings.Contains(e, testserver.DefaultAccessToken) || strings.Contains(e, "sig=") && !strings.Contains(e, "sig=REDACTED") {
				t.Errorf("%s: evidence leaks a secret: %s", res.Name, e)
			}
		}
		if res.Verdict != testserver.Pass && len(res.Evidence) == 0 {
			t.Errorf("%s: %s without evidence", res.Name, res.Verdict)
		}
	}
	for name := range want {
		if _, ok := got[name]; !ok {
			t.Errorf("%s: not in the catalogue", name)
		}
	}
	var b bytes.Buffer
	run.report.WriteText(&b)
	t.Log("\n" + b.String())
}

// copyBody reads a download to the end.
func copyBody(resp *http.Response, err error) error {
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, resp.Body)
	return err
}

// mediaclientErrors are the errors mediaclient returns where a safe client stops; every other
// scenario must end in the whole item. In those marked observed the log cannot judge the client,
// which stops at a point the server cannot see: the test checks the error instead.
var mediaclientErrors = map[string]struct {
	err      error
	observed bool
}{
	"redirect-chain-6":     {mediaclient.ErrTooManyRedirects, false},
	"redirect-loop":        {mediaclient.ErrTooManyRedirects, false},
	"location-userinfo":    {mediaclient.ErrRedirectRefused, false},
	"location-file":        {mediaclient.ErrRedirectRefused, true}, // on client v1 a refused redirect is final
	"location-data":        {mediaclient.ErrRedirectRefused, true},
	"location-javascript":  {mediaclient.ErrRedirectRefused, true},
	"https-to-http":        {mediaclient.ErrRedirectRefused, false},
	"range-unasked":        {mediaclient.ErrUnexpectedStatus, true}, // a 206 to a request without Range
	"encrypted-wrong-hash": {attachment.ErrHashMismatch, true},      // checked when the stream ends
}

// TestCatalogueWithMediaclient runs this module's client against the catalogue, with a short stall
// timeout and an upload wait: it passes every scenario the log can judge, and in the others it
// returns the error a safe client returns. The subtest loads the HTML report in headless Chromium.
func TestCatalogueWithMediaclient(t *testing.T) {
	t.Parallel()
	run := runCatalogue(t, 10*time.Second, getMediaclient)
	want := map[string]testserver.Verdict{}
	for _, sc := range testserver.Catalogue() {
		want[sc.Name] = testserver.Pass
		if mediaclientErrors[sc.Name].observed {
			want[sc.Name] = testserver.Observed
		}
	}
	run.check(t, want)
	for name, err := range run.errs {
		if want := mediaclientErrors[name].err; !errors.Is(err, want) { // errors.Is(err, nil) means err == nil
			t.Errorf("%s: the client returned %v; want %v", name, err, want)
		}
	}
	t.Run("chromium", func(t *testing.T) { checkReportInChromium(t, run) })
}

func getMediaclient(ctx context.Context, srv *testserver.Server, p testserver.Published) error {
	tr := mediaclient.NewTransport()
	tr.TLSClientConfig = &tls.Config{RootCAs: srv.CertPool()}
	defer tr.CloseIdleConnections()
	c, err := mediaclient.New(mediaclient.Options{HomeserverURL: srv.URL, AccessToken: srv.AccessToken, Transport: tr,
		StallTimeout: 200 * time.Millisecond, UploadWait: 5 * time.Second})
	if err != nil {
		return err
	}
	var m *mediaclient.Media
	if p.File != nil {
		m, err = c.DownloadEncrypted(ctx, p.File)
	} else {
		m, err = c.Download(ctx, p.URI)
	}
	if err != nil {
		return err
	}
	defer m.Close()
	_, err = io.Copy(io.Discard, m)
	return err
}

// mautrixVerdicts are the verdicts on mautrix-go's Client.Download (v0.32), which follows redirects
// with Go's http.Client: it forwards the token to any port and scheme of the same host, and checks
// neither bodies nor Locations itself.
var mautrixVerdicts = map[string]testserver.Verdict{
	"direct":                       testserver.Pass,
	"param-rejected-invalid-param": testserver.Pass, // it never sends allow_redirect
	"param-rejected-unknown":       testserver.Pass,
	"param-rejected-unrecognized":  testserver.Pass,
	"v1-unrecognized":              testserver.Fail, // client v1 only: no fallback to v3
	"redirect-other-port":          testserver.Fail, // the token goes to another port
	"redirect-other-host":          testserver.Pass, // another host name: Go drops the token
	"redirect-308":                 testserver.Fail,
	"location-relative":            testserver.Pass, // same origin: the token may go
	"location-protocol-relative":   testserver.Fail,
	"redirect-chain-5":             testserver.Fail,
	"redirect-chain-6":             testserver.Fail,
	"redirect-loop":                testserver.Fail,
	"location-userinfo":            testserver.Fail,
	"location-file":                testserver.Observed, // Go refuses the scheme; only the client sees it
	"location-data":                testserver.Observed,
	"location-javascript":          testserver.Observed,
	"https-to-http":                testserver.Fail, // the token goes to the https CDN on another port
	"cdn-refuses-authorization":    testserver.Fail,
	"truncated":                    testserver.Observed, // no resumption: it stops after the break
	"truncated-no-validators":      testserver.Observed,
	"stalled-body":                 testserver.Observed,
	"stalled-body-no-validators":   testserver.Observed,
	"range-chunks":                 testserver.Observed,
	"range-unasked":                testserver.Observed,
	"rate-limited":                 testserver.Observed, // no retries by default
	"not-yet-uploaded":             testserver.Observed,
	"encrypted-wrong-hash":         testserver.Observed, // the test decrypts; the hash check fails
}

// TestCatalogueWithMautrix runs mautrix-go's own Client.Download against the catalogue, as a bot
// without mxfetch would call it. The stalled bodies are given up after a second, as mautrix's client has
// no stall timeout of its own.
func TestCatalogueWithMautrix(t *testing.T) {
	t.Parallel()
	run := runCatalogue(t, time.Second, func(ctx context.Context, srv *testserver.Server, p testserver.Published) error {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: srv.CertPool()}}
		defer tr.CloseIdleConnections()
		cli, err := mautrix.NewClient(srv.URL, id.UserID("@bot:"+srv.ServerName), srv.AccessToken)
		if err != nil {
			return err
		}
		cli.Client = &http.Client{Transport: tr}
		if p.File == nil {
			return copyBody(cli.Download(ctx, p.URI))
		}
		data, err := cli.DownloadBytes(ctx, p.URI)
		if err != nil {
			return err
		}
		return p.File.DecryptInPlace(data)
	})
	run.check(t, mautrixVerdicts)
	if err := run.errs["encrypted-wrong-hash"]; !errors.Is(err, attachment.ErrHashMismatch) {
		t.Errorf("encrypted-wrong-hash: decrypting returned %v; want %v", err, attachment.ErrHashMismatch)
	}
	if *screenshot != "" {
		takeScreenshot(t, run, *screenshot)
	}
}

// TestCatalogueWithCurl runs curl -L with the token in a header and -o, as a shell script would,
// against the catalogue. Only verdicts that do not depend on curl's version are checked; the report is
// logged. A truncated body is where the log cannot see curl's fault: curl exits with an error but
// keeps the short file, which the test checks on disk.
func TestCatalogueWithCurl(t *testing.T) {
	t.Parallel()
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl is not installed (.ci/run installs it from Debian's packages)")
	}
	dir := t.TempDir()
	cert := filepath.Join(dir, "cert.pem")
	var once sync.Once
	run := runCatalogue(t, time.Second, func(ctx context.Context, srv *testserver.Server, p testserver.Published) error {
		once.Do(func() { os.WriteFile(cert, srv.CertPEM(), 0o644) })
		return exec.CommandContext(ctx, curl, "-sS", "-L", "--cacert", cert, "-o", filepath.Join(dir, p.Scenario.Name),
			"-H", "Authorization: Bearer "+srv.AccessToken, v1(srv, p.URI, "")).Run()
	})
	got := map[string]testserver.Verdict{}
	for _, res := range run.report.Results {
		got[res.Name] = res.Verdict
	}
	for name, want := range map[string]testserver.Verdict{
		"direct":                 testserver.Pass,
		"v1-unrecognized":        testserver.Fail,     // no fallback to v3
		"redirect-loop":          testserver.Fail,     // up to 50 redirects
		"location-userinfo":      testserver.Fail,     // follows it
		"https-to-http":          testserver.Fail,     // steps down to http
		"truncated":              testserver.Observed, // exits with an error, keeping what it got in the file
		"location-file":          testserver.Observed, // refuses the scheme; only curl's exit status says so
		"rate-limited":           testserver.Observed, // no retries without --retry
		"redirect-chain-6":       testserver.Pass,     // follows up to 50
		"param-rejected-unknown": testserver.Pass,     // the script sends no allow_redirect
	} {
		if got[name] != want {
			t.Errorf("%s: %s; want %s", name, got[name], want)
		}
	}
	var exit *exec.ExitError
	if err := run.errs["truncated"]; !errors.As(err, &exit) {
		t.Errorf("truncated: curl returned %v; want an exit status", err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "truncated")); err != nil || fi.Size() == 0 || fi.Size() >= 64<<10 {
		t.Errorf("truncated: curl's output file: %v, %v; want a short file left behind", fi, err)
	} else {
		t.Logf("truncated: curl exited with %v and kept a file of %d of %d bytes", run.errs["truncated"], fi.Size(), 64<<10)
	}
	var b bytes.Buffer
	run.report.WriteText(&b)
	t.Log("\n" + b.String())
}

// TestCatalogueAnswers checks what the server answers for some scenarios, one request at a time:
// the errcodes, the raw Locations, and a first answer that differs from the next.
func TestCatalogueAnswers(t *testing.T) {
	srv := testserver.New(t, testserver.Config{})
	uris := map[string]id.ContentURI{}
	for _, p := range srv.Publish(testserver.Catalogue()) {
		uris[p.Scenario.Name] = p.URI
	}
	for name, code := range map[string]string{
		"param-rejected-invalid-param": "M_INVALID_PARAM",
		"param-rejected-unknown":       "M_UNKNOWN",
		"param-rejected-unrecognized":  "M_UNRECOGNIZED",
	} {
		if a := get(t, srv, v3(srv, uris[name], "?allow_redirect=true")); a.status != 400 || a.errcode() != code {
			t.Errorf("%s: %d %s; want 400 %s", name, a.status, a.errcode(), code)
		}
		if a := get(t, srv, v3(srv, uris[name], "")); a.status != 200 {
			t.Errorf("%s without allow_redirect: %d", name, a.status)
		}
	}
	if a := get(t, srv, v1(srv, uris["not-yet-uploaded"], ""), bearer(srv)...); a.status != 504 || a.errcode() != "M_NOT_YET_UPLOADED" {
		t.Errorf("not-yet-uploaded, first: %d %s", a.status, a.errcode())
	}
	if a := get(t, srv, v1(srv, uris["not-yet-uploaded"], ""), bearer(srv)...); a.status != 200 || len(a.body) != 64<<10 {
		t.Errorf("not-yet-uploaded, then: %d, %d bytes", a.status, len(a.body))
	}
	for name, prefix := range map[string]string{
		"location-relative":          "/_cdn/download/mxfetch.test/conf-location-relative?",
		"location-protocol-relative": strings.TrimPrefix(srv.Origin(testserver.OriginCDN), "http:") + "/_cdn/",
		"location-file":              "file:///etc/passwd",
		"location-userinfo":          "http://user:pass@127.0.0.1:",
	} {
		a := get(t, srv, v1(srv, uris[name], ""), bearer(srv)...)
		if loc := a.header.Get("Location"); a.status != 307 || !strings.HasPrefix(loc, prefix) {
			t.Errorf("%s: %d to %q; want 307 to %s…", name, a.status, loc, prefix)
		}
	}
	// The relative Location is followed on the homeserver's own origin.
	a := get(t, srv, v1(srv, uris["location-relative"], ""), bearer(srv)...)
	if b := get(t, srv, srv.URL+a.header.Get("Location")); b.status != 200 || len(b.body) != 64<<10 {
		t.Errorf("location-relative's target: %d, %d bytes", b.status, len(b.body))
	}
}

// TestLeaksFollowTheChain checks the judge's leak rule on hand-made logs: credentials may go to the
// homeserver's own origin until a chain has left it, never after, never anywhere else.
func TestLeaksFollowTheChain(t *testing.T) {
	srv := testserver.New(t, testserver.Config{})
	home, cdn := srv.Origin(testserver.OriginHomeserver), srv.Origin(testserver.OriginCDN)
	auth := http.Header{"Authorization": {"Bearer x"}}
	req := func(origin string, role testserver.Role, h http.Header) testserver.Request {
		return testserver.Request{Origin: origin, Role: role, Header: h, Status: 307, Ended: true}
	}
	for _, tc := range []struct {
		name  string
		log   []testserver.Request
		leaks int
	}{
		{"relative hop before leaving", []testserver.Request{req(home, testserver.RoleHomeserver, auth), req(home, testserver.RoleCDN, auth)}, 0},
		{"another port", []testserver.Request{req(home, testserver.RoleHomeserver, auth), req(cdn, testserver.RoleCDN, auth)}, 1},
		{"back home after leaving", []testserver.Request{req(home, testserver.RoleHomeserver, auth), req(cdn, testserver.RoleCDN, nil), req(home, testserver.RoleCDN, auth)}, 1},
		{"a new chain starts clean", []testserver.Request{req(home, testserver.RoleHomeserver, auth), req(cdn, testserver.RoleCDN, nil), req(home, testserver.RoleHomeserver, auth), req(home, testserver.RoleCDN, auth)}, 0},
	} {
		tr := testserver.Trace{Server: srv, Requests: tc.log}
		if got := len(tr.Leaks()); got != tc.leaks {
			t.Errorf("%s: %d leaks; want %d", tc.name, got, tc.leaks)
		}
	}
}

// TestPublishEncrypted checks the file information published with an encrypted item: it decrypts
// the bytes served, and WrongHash makes only the hash wrong.
func TestPublishEncrypted(t *testing.T) {
	srv := testserver.New(t, testserver.Config{})
	published := srv.Publish([]testserver.Scenario{
		{Name: "good", Encrypt: true, Size: 1000},
		{Name: "bad", Encrypt: true, WrongHash: true, Size: 1000},
	})
	for i, want := range []error{nil, attachment.ErrHashMismatch} {
		p := published[i]
		if p.File == nil || p.File.URL != p.URI.CUString() {
			t.Fatalf("%s: file %+v", p.Scenario.Name, p.File)
		}
		resp, err := http.Get(v3(srv, p.URI, ""))
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || len(data) != 1000 {
			t.Fatalf("%s: %d bytes, %v", p.Scenario.Name, len(data), err)
		}
		if err := p.File.DecryptInPlace(data); !errors.Is(err, want) {
			t.Errorf("%s: decrypting: %v; want %v", p.Scenario.Name, err, want)
		}
		plain := make([]byte, 1000)
		testserver.GeneratedContent(byte(i+1)).ReadAt(plain, 0)
		if want == nil && !bytes.Equal(data, plain) {
			t.Errorf("%s: the plaintext is not the generated content", p.Scenario.Name)
		}
	}
}

func TestReportFormats(t *testing.T) {
	rep := testserver.Report{Time: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC), Clients: []string{"curl/8"}, Results: []testserver.Result{
		{Name: "a", Verdict: testserver.Pass, Why: "fine"},
		{Name: "b<script>", Verdict: testserver.Fail, Why: "leaked", Evidence: []string{"GET /x -> 200 <b>"}},
		{Name: "c", Verdict: testserver.NotTried, Why: "nothing"},
	}}
	if got := rep.Summary(); got != "1 pass, 1 fail, 0 observed, 1 not tried" {
		t.Errorf("Summary = %q", got)
	}
	var text, js, page bytes.Buffer
	if err := rep.WriteText(&text); err != nil || !strings.Contains(text.String(), "FAIL       b<script>") || !strings.Contains(text.String(), "GET /x -> 200 <b>") || !strings.HasPrefix(text.String(), "clients: curl/8\n") {
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

// readmeVerdicts reads one column of the README's conformance table (internal/conformancetable).
func readmeVerdicts(t *testing.T, column int) map[string]testserver.Verdict {
	t.Helper()
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	verdicts, problems := conformancetable.Verdicts(string(readme), column)
	for _, p := range problems {
		t.Errorf("README: %s", p)
	}
	return verdicts
}

// TestREADMEVerdicts checks the README's table against the catalogue and the verdicts the tests
// expect of mediaclient and mautrix-go.
func TestREADMEVerdicts(t *testing.T) {
	client, mautrixColumn := readmeVerdicts(t, 1), readmeVerdicts(t, 3)
	catalogue := testserver.Catalogue()
	if len(client) != len(catalogue) {
		t.Errorf("README's table has %d scenarios; the catalogue %d", len(client), len(catalogue))
	}
	for _, sc := range catalogue {
		want := testserver.Pass
		if mediaclientErrors[sc.Name].observed {
			want = testserver.Observed
		}
		if client[sc.Name] != want {
			t.Errorf("README: mediaclient %s: %q; the test expects %s", sc.Name, client[sc.Name], want)
		}
		if mautrixColumn[sc.Name] != mautrixVerdicts[sc.Name] {
			t.Errorf("README: mautrix-go %s: %q; the test expects %s", sc.Name, mautrixColumn[sc.Name], mautrixVerdicts[sc.Name])
		}
	}
}

// TestSentWhileRunning: the log counts a body's bytes as they are written, so a request still
// running shows what the client has been sent, and a client that has read the whole body never finds
// the log behind it.
func TestSentWhileRunning(t *testing.T) {
	srv := testserver.New(t, testserver.Config{})
	uri := srv.AddGenerated(5000, 1, testserver.MediaOptions{Behavior: &testserver.Behavior{
		Faults: []testserver.Fault{{Stall: testserver.StallBody, StallAfter: 1000}}}})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", v3(srv, uri, ""), nil)
	c := srv.Client()
	defer c.CloseIdleConnections()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if _, err := io.ReadFull(resp.Body, make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	if r := srv.Requests(); len(r) != 1 || r[0].Sent != 1000 || r[0].Ended || !strings.Contains(r[0].String(), "(still running)") {
		t.Errorf("during the stall: %+v", r)
	}
	uri = srv.AddGenerated(5000, 1, testserver.MediaOptions{})
	if a := get(t, srv, v3(srv, uri, "")); a.status != 200 || len(a.body) != 5000 {
		t.Fatalf("%d, %d bytes", a.status, len(a.body))
	}
	if r := srv.Requests(); len(r) != 2 || r[1].Sent != 5000 {
		t.Errorf("after the whole body: %+v", r[1])
	}
}
