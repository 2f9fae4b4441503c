package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/mxfetch/mxfetch/testserver"
)

// demoScene is one server the demo downloads from.
type demoScene struct {
	title   string
	profile testserver.Profile
	tls     bool
	api     string
	// check inspects the request log and returns what went wrong, or "".
	check func(srv *testserver.Server, r *result) string
}

var demoScenes = []demoScene{
	{
		title:   "A homeserver that redirects to a CDN on another port (matrix-media-repo with S3)",
		profile: testserver.ProfileMediaRepo, api: "auto",
		check: func(srv *testserver.Server, r *result) string {
			home, cdn := srv.RequestsTo(testserver.OriginHomeserver), srv.RequestsTo(testserver.OriginCDN)
			switch {
			case len(cdn) == 0:
				return "the CDN was never asked"
			case credentialsOn(cdn):
				return "the CDN received a credential"
			case !lastMediaRequest(home).Query().Has("allow_redirect"):
				return "allow_redirect was not sent"
			case !lastMediaRequest(home).HasCredentials():
				return "the homeserver did not get the token"
			}
			return ""
		},
	},
	{
		title:   "A homeserver that rejects allow_redirect (400 M_INVALID_PARAM)",
		profile: testserver.ProfileStrict, api: "v3",
		check: func(srv *testserver.Server, r *result) string {
			if !r.Fallback {
				return "no fallback to a plain request"
			}
			return ""
		},
	},
	{
		title:   "An https homeserver whose redirect steps down to plain http",
		profile: testserver.ProfileMediaRepo, tls: true, api: "v3",
		check: func(srv *testserver.Server, r *result) string {
			if n := len(srv.RequestsTo(testserver.OriginCDN)); n != 0 {
				return "a plaintext request was made"
			}
			return ""
		},
	},
}

func credentialsOn(reqs []testserver.Request) bool {
	for _, r := range reqs {
		if r.HasCredentials() {
			return true
		}
	}
	return false
}

// lastMediaRequest skips /versions.
func lastMediaRequest(reqs []testserver.Request) testserver.Request {
	for i := len(reqs) - 1; i >= 0; i-- {
		if strings.Contains(reqs[i].Path, "/download/") {
			return reqs[i]
		}
	}
	return testserver.Request{Header: map[string][]string{}}
}

// runDemo tells the whole story against the embedded test server: the parameter sent, the 307, the
// CDN hop without the token, the bytes verified, and two servers that do not play along.
func runDemo(ctx context.Context, o *options, stdout, stderr io.Writer) error {
	out := o.output
	if out == "" || out == "." {
		dir, err := os.MkdirTemp("", "mxfetch-demo-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		out = dir
	} else if err := os.MkdirAll(out, 0o755); err != nil {
		return usagef("cannot create %s: %v", out, err)
	}
	fmt.Fprintln(stdout, "mxfetch demo: no homeserver needed; each scene starts the embedded test server on loopback.")
	sample := []byte(strings.Repeat("Matrix media, fetched through MSC3860 redirects without leaking the token.\n", 4000))
	want := sha256.Sum256(sample)
	failed := 0
	for i, sc := range demoScenes {
		srv, err := testserver.Start(testserver.Config{Profile: sc.profile, TLS: sc.tls, AccessToken: "demo-secret-token"})
		if err != nil {
			return err
		}
		uri := srv.AddMedia(sample, testserver.MediaOptions{ContentType: "text/plain", FileName: fmt.Sprintf("scene-%d.txt", i+1)})
		fmt.Fprintf(stdout, "\n%d. %s\n", i+1, sc.title)
		fmt.Fprintf(stdout, "   homeserver %s, CDN %s\n", srv.URL, srv.Origin(testserver.OriginCDN))
		fmt.Fprintf(stdout, "   $ mxfetch --homeserver %s --token *** --api %s -o %s %s\n", srv.URL, sc.api, out, uri)

		so := *o
		so.homeserver, so.token, so.api, so.output, so.outputIsDir = srv.URL, srv.AccessToken, sc.api, out, true
		so.uris, so.json, so.quiet, so.verbose, so.clobber, so.hash = []string{uri.String()}, false, true, false, true, true
		if sc.tls {
			so.rootCAs, _ = rootsWith(srv.CertPEM())
		}
		rt := so.transport()
		client, err := so.client(srv.URL, rt)
		if err != nil {
			srv.Close()
			return err
		}
		d, err := newDownloader(&so, &clients{o: &so, fixed: client}, stdout, stderr)
		if err != nil {
			srv.Close()
			return err
		}
		r := d.oneNow(ctx, uri.String())
		d.close()
		for _, req := range srv.Requests() {
			fmt.Fprintf(stdout, "   %-10s saw %s %s%s  credentials: %s\n", originName(srv, req.Origin), req.Method, req.Path, queryNote(req), yesNo(req.HasCredentials()))
		}
		var hops []string
		for _, h := range r.Hops {
			hops = append(hops, fmt.Sprintf("%d from %s (token %s)", h.Status, originName(srv, h.Origin), map[bool]string{true: "sent", false: "not sent"}[h.Credentials]))
		}
		fmt.Fprintf(stdout, "   hops: %s\n", strings.Join(hops, " → "))
		problem := ""
		switch {
		case !r.OK:
			problem = r.Error
		case r.SHA256 != hex.EncodeToString(want[:]):
			problem = "the bytes differ"
		default:
			problem = sc.check(srv, r)
		}
		srv.Close()
		if problem != "" {
			failed++
			fmt.Fprintf(stdout, "   FAILED: %s\n", problem)
			continue
		}
		note := ""
		if r.Fallback {
			note = " (fallback: " + r.FallbackReason + ")"
		}
		fmt.Fprintf(stdout, "   ok: %d bytes, sha256 %s… verified, written to %s%s\n", r.Bytes, r.SHA256[:16], filepath.Base(r.Path), note)
	}
	if failed > 0 {
		return fmt.Errorf("demo: %d scene(s) failed", failed)
	}
	fmt.Fprintln(stdout, "\nThe token went to the homeserver's origin only, and every file arrived intact.")
	return nil
}

func originName(srv *testserver.Server, origin string) string {
	for _, n := range []testserver.OriginName{testserver.OriginHomeserver, testserver.OriginCDNHost, testserver.OriginCDN, testserver.OriginCDNTLS} {
		if srv.Origin(n) == origin {
			return string(n)
		}
	}
	return origin
}

// queryNote shows the query of a logged request with signatures hidden.
func queryNote(r testserver.Request) string {
	if r.RawQuery == "" {
		return ""
	}
	q := r.Query()
	for _, k := range []string{"sig", "exp"} {
		if q.Has(k) {
			q.Set(k, "…")
		}
	}
	return "?" + strings.ReplaceAll(q.Encode(), "%E2%80%A6", "…")
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
