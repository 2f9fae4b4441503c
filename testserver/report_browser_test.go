package testserver_test

import (
	"bytes"
	"context"
	"flag"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"
)

// screenshot, when set, makes TestCatalogueWithMautrix save a PNG of its HTML report there, taken by
// headless Chromium (the README's docs/conformance-report.png):
//
//	go test ./testserver -run TestCatalogueWithMautrix -screenshot $PWD/docs/conformance-report.png
var screenshot = flag.String("screenshot", "", "save a PNG of mautrix-go's HTML report at this `path`")

// chromium returns the path of a Chromium or Chrome executable, or skips t.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if path, err := exec.LookPath(name); err == nil {
			return path
		}
	}
	t.Skip("Chromium is not installed (.ci/run installs Debian's chromium package): the HTML report is not checked in a browser")
	return ""
}

// headless runs Chromium without a display on url with the extra arguments and returns its
// standard output. Its profile and home live in a temporary directory.
func headless(t *testing.T, url string, args ...string) []byte {
	t.Helper()
	bin := chromium(t)
	home := t.TempDir()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	args = append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
		"--no-first-run", "--user-data-dir=" + home + "/profile", "--hide-scrollbars"}, args...)
	cmd := exec.CommandContext(ctx, bin, append(args, url)...)
	cmd.Env = append(os.Environ(), "HOME="+home)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: %v\n%s", bin, err, stderr.Bytes())
	}
	t.Logf("%s %s took %v", bin, args[len(args)-1], time.Since(start).Round(time.Millisecond))
	return stdout.Bytes()
}

// checkReportInChromium serves a run's HTML report, loads it in headless Chromium and checks that
// the page Chromium built shows every scenario, once, with its verdict, and the summary.
func checkReportInChromium(t *testing.T, run catalogueRun) {
	chromium(t)
	hs := httptest.NewServer(run.srv.ReportHandler(run.published))
	defer hs.Close()
	dom, err := html.Parse(bytes.NewReader(headless(t, hs.URL+"/", "--dump-dom")))
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string][]string{} // name → verdicts shown
	var summary string
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode && n.Data == "tr" && hasClass(n, "result") {
			name := attr(n, "data-name")
			for c := n.FirstChild; c != nil; c = c.NextSibling {
				if c.Type == html.ElementNode && c.Data == "td" && hasClass(c, "verdict") {
					rows[name] = append(rows[name], strings.TrimSpace(text(c)))
				}
			}
		}
		if n.Type == html.ElementNode && attr(n, "id") == "summary" {
			summary = text(n)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(dom)
	for _, res := range run.report.Results {
		if got := rows[res.Name]; len(got) != 1 || got[0] != string(res.Verdict) {
			t.Errorf("%s: the page shows verdicts %q; want [%q]", res.Name, got, res.Verdict)
		}
	}
	if len(rows) != len(run.report.Results) {
		t.Errorf("the page shows %d scenarios; the report has %d", len(rows), len(run.report.Results))
	}
	if want := run.report.Summary(); summary != want {
		t.Errorf("summary %q; want %q", summary, want)
	}
}

// takeScreenshot saves a PNG of a run's HTML report, 1100 pixels wide and cut at 1500 pixels high,
// in at most 256 colours (the most frequent ones Chromium drew) to keep the file small.
func takeScreenshot(t *testing.T, run catalogueRun, path string) {
	hs := httptest.NewServer(run.srv.ReportHandler(run.published))
	defer hs.Close()
	shot := filepath.Join(t.TempDir(), "shot.png")
	headless(t, hs.URL+"/", "--screenshot="+shot, "--window-size=1100,1500")
	f, err := os.Open(shot)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	b := img.Bounds()
	count := map[color.Color]int{}
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			count[img.At(x, y)]++
		}
	}
	pal := make(color.Palette, 0, len(count))
	for c := range count {
		pal = append(pal, c)
	}
	sort.Slice(pal, func(i, j int) bool { return count[pal[i]] > count[pal[j]] })
	pal = pal[:min(len(pal), 256)]
	small := image.NewPaletted(b, pal)
	draw.Draw(small, b, img, b.Min, draw.Src)
	var out bytes.Buffer
	if err := (&png.Encoder{CompressionLevel: png.BestCompression}).Encode(&out, small); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: %d colours, %d bytes", path, len(pal), out.Len())
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

func hasClass(n *html.Node, class string) bool {
	for _, c := range strings.Fields(attr(n, "class")) {
		if c == class {
			return true
		}
	}
	return false
}

func text(n *html.Node) string {
	var b strings.Builder
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.TextNode {
			b.WriteString(n.Data)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return b.String()
}
