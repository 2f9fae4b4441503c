package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"maunium.net/go/mautrix/id"

	"github.com/mxfetch/mxfetch/testserver"
)

// The clients, in the order they run within a round (the order rotates every round).
var allClients = []string{"mxfetch-lib", "mxfetch-cli", "mautrix", "mautrix+transport", "net/http", "curl"}

func allClientNames() string { return strings.Join(allClients, ", ") }

// Scenarios.
const (
	scLarge  = "large"
	scSmall  = "small"
	scRepeat = "repeat"
)

// sample is one measurement.
type sample struct {
	Client   string  `json:"client"`
	TLS      bool    `json:"tls"`
	Scenario string  `json:"scenario"`
	Seconds  float64 `json:"seconds"`
	Bytes    int64   `json:"bytes"`
	Files    int     `json:"files"`
	RSSKiB   int64   `json:"rss_kib"`
	Conns    int64   `json:"conns"` // connections opened at the busiest origin
}

// env is one test server with its media, as the clients see it.
type env struct {
	srv       *testserver.Server
	tls       bool
	dir       string
	certFile  string
	largeList string // "uri size" lines, for the child
	smallList string
	largeURIs string // one URI a line, for the CLI and curl
	smallURIs string
	largeURI  id.ContentURI
	small     []id.ContentURI
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseConfig(args, stderr)
	if err != nil {
		return err
	}
	clients := allClients
	if cfg.clients != "" {
		clients = strings.Split(cfg.clients, ",")
		for _, c := range clients {
			if !slices.Contains(allClients, c) {
				return fmt.Errorf("unknown client %q (want %s)", c, allClientNames())
			}
		}
	}
	work, err := os.MkdirTemp("", "mxfetch-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	self, err := os.Executable()
	if err != nil {
		return err
	}
	if slices.Contains(clients, "mxfetch-cli") && cfg.mxfetch == "" {
		cfg.mxfetch = filepath.Join(work, "mxfetch")
		build := exec.CommandContext(ctx, "go", "build", "-o", cfg.mxfetch, "github.com/mxfetch/mxfetch/cmd/mxfetch")
		if out, err := build.CombinedOutput(); err != nil {
			return fmt.Errorf("building mxfetch: %v\n%s", err, out)
		}
	}
	if slices.Contains(clients, "curl") {
		if _, err := exec.LookPath("curl"); err != nil {
			fmt.Fprintln(stderr, "mxfetch-bench: curl is not installed (Debian package curl); skipping it")
			clients = slices.DeleteFunc(slices.Clone(clients), func(c string) bool { return c == "curl" })
		}
	}

	if cfg.from != "" {
		return replot(cfg, clients, stdout)
	}
	var modes []bool
	switch cfg.tls {
	case "off":
		modes = []bool{false}
	case "on":
		modes = []bool{true}
	default:
		modes = []bool{false, true}
	}
	var samples []sample
	for _, tls := range modes {
		e, err := newEnv(cfg, work, tls)
		if err != nil {
			return err
		}
		for round := range cfg.rounds {
			order := slices.Clone(clients)
			rotate(order, round)
			for _, client := range order {
				for _, sc := range []string{scLarge, scSmall, scRepeat} {
					s, err := measure(ctx, cfg, e, self, client, sc)
					if err != nil {
						e.srv.Close()
						return fmt.Errorf("%s, %s, tls=%v: %w", client, sc, tls, err)
					}
					fmt.Fprintf(stderr, "round %d %-5s %-12s %-7s %8.3fs  rss %6d KiB  conns %d\n", round+1, tlsName(tls), client, sc, s.Seconds, s.RSSKiB, s.Conns)
					samples = append(samples, s)
				}
			}
		}
		e.srv.Close()
	}
	return write(cfg, samples, clients, modes, stdout)
}

// replot reads the samples of an earlier run and writes its report and chart again.
func replot(cfg *config, clients []string, stdout io.Writer) error {
	data, err := os.ReadFile(cfg.from)
	if err != nil {
		return err
	}
	var samples []sample
	if err := json.Unmarshal(data, &samples); err != nil {
		return fmt.Errorf("%s: %w", cfg.from, err)
	}
	var modes []bool
	for _, tls := range []bool{false, true} {
		if slices.ContainsFunc(samples, func(s sample) bool { return s.TLS == tls }) {
			modes = append(modes, tls)
		}
	}
	clients = slices.DeleteFunc(slices.Clone(clients), func(c string) bool {
		return !slices.ContainsFunc(samples, func(s sample) bool { return s.Client == c })
	})
	// The sizes come from the samples.
	for _, s := range samples {
		switch s.Scenario {
		case scLarge:
			cfg.largeSize = s.Bytes
		case scSmall:
			cfg.files, cfg.fileSize = s.Files, int(s.Bytes/int64(max(s.Files, 1)))
		}
	}
	cfg.rounds = len(pick(samples, samples[0].Client, samples[0].TLS, samples[0].Scenario))
	return write(cfg, samples, clients, modes, stdout)
}

// write prints the report and, with -out, saves it with the samples and the chart.
func write(cfg *config, samples []sample, clients []string, modes []bool, stdout io.Writer) error {
	table := report(cfg, samples, clients, modes)
	io.WriteString(stdout, table)
	if cfg.out != "" {
		if err := os.MkdirAll(cfg.out, 0o755); err != nil {
			return err
		}
		data, _ := json.MarshalIndent(samples, "", "  ")
		if err := os.WriteFile(filepath.Join(cfg.out, "results.json"), data, 0o644); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(cfg.out, "results.md"), []byte(table), 0o644); err != nil {
			return err
		}
		if err := chart(samples, clients, modes, filepath.Join(cfg.out, "throughput.png")); err != nil {
			return err
		}
	}
	return nil
}

func rotate(s []string, n int) {
	if len(s) > 0 {
		n %= len(s)
		slices.Reverse(s[:n])
		slices.Reverse(s[n:])
		slices.Reverse(s)
	}
}

func tlsName(tls bool) string {
	if tls {
		return "tls"
	}
	return "plain"
}

// newEnv starts a test server: the large file behind one 307 hop, the small files behind one 308 hop
// (so that a permanent-redirect cache can apply to repeats), the CDN on another port, plain or TLS.
func newEnv(cfg *config, work string, tls bool) (*env, error) {
	cdn := testserver.OriginCDN
	if tls {
		cdn = testserver.OriginCDNTLS
	}
	srv, err := testserver.Start(testserver.Config{
		TLS:      tls,
		Behavior: &testserver.Behavior{Redirect: 307, V1Redirect: testserver.Always, V3Redirect: testserver.WhenAsked, Chain: []testserver.OriginName{cdn}, URLTTL: time.Hour},
	})
	if err != nil {
		return nil, err
	}
	e := &env{srv: srv, tls: tls, dir: filepath.Join(work, tlsName(tls))}
	if err := os.MkdirAll(e.dir, 0o755); err != nil {
		return nil, err
	}
	e.certFile = filepath.Join(e.dir, "cert.pem")
	if err := os.WriteFile(e.certFile, srv.CertPEM(), 0o644); err != nil {
		return nil, err
	}
	e.largeURI = srv.AddGenerated(cfg.largeSize, 7, testserver.MediaOptions{ContentType: "application/octet-stream"})
	permanent := &testserver.Behavior{Redirect: 308, V1Redirect: testserver.Always, V3Redirect: testserver.WhenAsked, Chain: []testserver.OriginName{cdn}, URLTTL: time.Hour}
	var small, smallURIs bytes.Buffer
	for i := range cfg.files {
		data := make([]byte, cfg.fileSize)
		testserver.GeneratedContent(byte(i)).ReadAt(data, int64(i))
		uri := srv.AddMedia(data, testserver.MediaOptions{Behavior: permanent})
		e.small = append(e.small, uri)
		fmt.Fprintf(&small, "%s %d\n", uri, cfg.fileSize)
		fmt.Fprintf(&smallURIs, "%s\n", uri)
	}
	write := func(name string, data []byte) string {
		p := filepath.Join(e.dir, name)
		os.WriteFile(p, data, 0o644)
		return p
	}
	e.largeList = write("large.list", fmt.Appendf(nil, "%s %d\n", e.largeURI, cfg.largeSize))
	e.smallList = write("small.list", small.Bytes())
	e.largeURIs = write("large.uris", fmt.Appendf(nil, "%s\n", e.largeURI))
	e.smallURIs = write("small.uris", smallURIs.Bytes())
	return e, nil
}

// measure runs one client on one scenario in a process of its own. For the repeat scenario an
// in-process client downloads the list twice and the second pass is timed; the CLI and curl, which
// keep nothing between runs, run twice and the second run is timed.
func measure(ctx context.Context, cfg *config, e *env, self, client, sc string) (sample, error) {
	s := sample{Client: client, TLS: e.tls, Scenario: sc, Files: cfg.files, Bytes: int64(cfg.files) * int64(cfg.fileSize)}
	list, uris, parallel := e.smallList, e.smallURIs, cfg.parallel
	if sc == scLarge {
		list, uris, parallel = e.largeList, e.largeURIs, 1
		s.Files, s.Bytes = 1, cfg.largeSize
	}
	passes := 1
	if sc == scRepeat {
		passes = 2
	}
	outDir := filepath.Join(e.dir, "out-"+strings.ReplaceAll(client, "/", "-"))
	inProcess := client == "mxfetch-lib" || client == "mautrix" || client == "mautrix+transport" || client == "net/http"
	runs := passes
	if inProcess {
		runs = 1
	}
	var res childResult
	for run := range runs {
		os.RemoveAll(outDir)
		os.MkdirAll(outDir, 0o755)
		var cmd *exec.Cmd
		var stdoutFile *os.File
		switch client {
		case "mxfetch-lib", "mautrix", "mautrix+transport", "net/http":
			kind := map[string]string{"mxfetch-lib": "lib", "mautrix": "mautrix", "mautrix+transport": "mautrix-transport", "net/http": "http"}[client]
			cmd = exec.CommandContext(ctx, self, "child", "-client", kind, "-hs", e.srv.URL, "-token", e.srv.AccessToken,
				"-list", list, "-parallel", strconv.Itoa(parallel), "-passes", strconv.Itoa(passes))
		case "mxfetch-cli":
			args := []string{"--homeserver", e.srv.URL, "--token", e.srv.AccessToken, "--api", "v1", "-q", "-j", strconv.Itoa(parallel)}
			if sc == scLarge {
				args = append(args, "-o", "-", e.largeURI.String())
				f, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
				if err != nil {
					return s, err
				}
				stdoutFile = f
			} else {
				args = append(args, "-i", uris, "-o", outDir+"/")
			}
			cmd = exec.CommandContext(ctx, cfg.mxfetch, args...)
		case "curl":
			conf := filepath.Join(e.dir, "curl-"+sc+".conf")
			var b strings.Builder
			for _, line := range strings.Split(strings.TrimSpace(readFile(uris)), "\n") {
				uri, _ := id.ParseContentURI(line)
				fmt.Fprintf(&b, "url = \"%s/_matrix/client/v1/media/download/%s/%s\"\noutput = \"/dev/null\"\n", e.srv.URL, uri.Homeserver, uri.FileID)
			}
			os.WriteFile(conf, []byte(b.String()), 0o644)
			cmd = exec.CommandContext(ctx, "curl", "-sS", "-L", "--fail", "--cacert", e.certFile,
				"-H", "Authorization: Bearer "+e.srv.AccessToken, "--parallel", "--parallel-max", strconv.Itoa(parallel), "-K", conf)
		default:
			return s, fmt.Errorf("unknown client %q", client)
		}
		cmd.Env = append(os.Environ(), "SSL_CERT_FILE="+e.certFile)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if stdoutFile != nil {
			cmd.Stdout = stdoutFile
		}
		e.srv.ResetConnections()
		start := time.Now()
		err := cmd.Start()
		var peak int64
		if err == nil {
			stop := watchPeakRSS(cmd.Process.Pid, &peak)
			err = cmd.Wait()
			stop()
		}
		s.Seconds = time.Since(start).Seconds()
		if stdoutFile != nil {
			stdoutFile.Close()
		}
		if err != nil {
			return s, fmt.Errorf("run %d: %v: %s", run+1, err, strings.TrimSpace(stderr.String()))
		}
		s.RSSKiB = max(s.RSSKiB, peak)
		s.Conns = max(e.srv.Connections(testserver.OriginHomeserver), e.srv.Connections(cdnOrigin(e.tls)))
		if inProcess {
			if err := json.Unmarshal(stdout.Bytes(), &res); err != nil || len(res.Passes) != passes {
				return s, fmt.Errorf("child output %q: %v", stdout.String(), err)
			}
			// In-process timing leaves out process start; the last pass is the one measured.
			s.Seconds = res.Passes[passes-1]
			s.RSSKiB = max(s.RSSKiB, res.PeakRSSKiB)
			if res.Bytes != s.Bytes {
				return s, fmt.Errorf("downloaded %d bytes, want %d", res.Bytes, s.Bytes)
			}
		}
		if client == "mxfetch-cli" && sc != scLarge {
			if n := countFiles(outDir); n != s.Files {
				return s, fmt.Errorf("wrote %d files, want %d", n, s.Files)
			}
		}
	}
	return s, nil
}

// watchPeakRSS samples the peak resident set (VmHWM) of a running process every few milliseconds
// until stop is called. VmHWM belongs to the address space the process got at exec, so unlike the
// rusage of a child started with vfork it does not include the parent's memory.
func watchPeakRSS(pid int, peak *int64) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	path := fmt.Sprintf("/proc/%d/status", pid)
	go func() {
		defer close(finished)
		t := time.NewTicker(2 * time.Millisecond)
		defer t.Stop()
		for {
			if kib := readHWM(path); kib > *peak {
				*peak = kib
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}

// readHWM returns VmHWM in KiB from a /proc status file, or 0.
func readHWM(path string) int64 {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return n
		}
	}
	return 0
}

func cdnOrigin(tls bool) testserver.OriginName {
	if tls {
		return testserver.OriginCDNTLS
	}
	return testserver.OriginCDN
}

func readFile(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}

func countFiles(dir string) int {
	entries, _ := os.ReadDir(dir)
	return len(entries)
}

// report renders the medians of the samples as a Markdown table.
func report(cfg *config, samples []sample, clients []string, modes []bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Machine: %s/%s, %d CPUs, %s. Large file %s; %d files of %s at parallelism %d; %d round(s), medians.\n\n",
		runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version(), human(cfg.largeSize), cfg.files, human(int64(cfg.fileSize)), cfg.parallel, cfg.rounds)
	b.WriteString("| transport | client | large MB/s | large peak RSS | small files/s | small conns | repeat files/s | repeat conns |\n")
	b.WriteString("|---|---|---:|---:|---:|---:|---:|---:|\n")
	for _, tls := range modes {
		for _, c := range clients {
			large := pick(samples, c, tls, scLarge)
			small := pick(samples, c, tls, scSmall)
			repeat := pick(samples, c, tls, scRepeat)
			if len(large) == 0 {
				continue
			}
			fmt.Fprintf(&b, "| %s | %s | %.0f | %s | %.0f | %d | %.0f | %d |\n", tlsName(tls), c,
				median(large, func(s sample) float64 { return float64(s.Bytes) / s.Seconds / 1e6 }),
				human(maxRSS(large)*1024),
				median(small, func(s sample) float64 { return float64(s.Files) / s.Seconds }),
				int64(median(small, func(s sample) float64 { return float64(s.Conns) })),
				median(repeat, func(s sample) float64 { return float64(s.Files) / s.Seconds }),
				int64(median(repeat, func(s sample) float64 { return float64(s.Conns) })))
		}
	}
	return b.String()
}

func pick(samples []sample, client string, tls bool, sc string) []sample {
	var out []sample
	for _, s := range samples {
		if s.Client == client && s.TLS == tls && s.Scenario == sc {
			out = append(out, s)
		}
	}
	return out
}

func median(samples []sample, f func(sample) float64) float64 {
	if len(samples) == 0 {
		return math.NaN()
	}
	v := make([]float64, len(samples))
	for i, s := range samples {
		v[i] = f(s)
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func maxRSS(samples []sample) int64 {
	var m int64
	for _, s := range samples {
		m = max(m, s.RSSKiB)
	}
	return m
}

func human(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.0f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// parseSize reads 1G, 16M, 512K or a byte count (powers of 1024).
func parseSize(s string) (int64, error) {
	t := strings.ToUpper(strings.TrimSpace(s))
	mult := int64(1)
	if n := len(t); n > 0 {
		if i := strings.IndexByte("KMG", t[n-1]); i >= 0 {
			mult = 1 << (10 * (i + 1))
			t = t[:n-1]
		}
	}
	v, err := strconv.ParseInt(t, 10, 64)
	if err != nil || v <= 0 {
		return 0, fmt.Errorf("%q is not a positive size", s)
	}
	return v * mult, nil
}

// runCmd runs a command and returns its combined output.
func runCmd(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	return string(out), err
}
