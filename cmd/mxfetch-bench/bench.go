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
	"syscall"
	"time"

	"maunium.net/go/mautrix/id"

	"github.com/mxfetch/mxfetch/testserver"
)

// The clients. Within each group of a round they run in this order, rotated by the round.
var allClients = []string{"ceiling", "mxfetch-lib", "mxfetch-cli", "mautrix", "mautrix+transport", "net/http", "curl"}

// Scenarios.
const (
	scLarge = "large" // one large file behind a 307
	scSmall = "small" // many small files behind a 307 each, in parallel
	scMany  = "many"  // more small files: the command's memory must not grow with their number
	scFirst = "first" // one small file: process start to exit
)

// sample is one measurement.
type sample struct {
	Round    int     `json:"round"`
	Rep      int     `json:"rep,omitempty"` // the run within the round (first-request scenario)
	Client   string  `json:"client"`
	TLS      bool    `json:"tls"`
	Scenario string  `json:"scenario"`
	Dest     string  `json:"dest"`
	Seconds  float64 `json:"seconds"` // process start to exit
	Inner    float64 `json:"inner_seconds,omitempty"`
	Bytes    int64   `json:"bytes"`
	Files    int     `json:"files"`
	RSSKiB   int64   `json:"rss_kib"`
	Conns    int64   `json:"conns"` // connections opened at the origin that served the bytes
	Proto    string  `json:"proto"` // the protocols the server saw
	ChildCPU float64 `json:"child_cpu"`
	// OtherCPU is the share of the machine's CPU time that other processes used during the run
	// (0 to 1): /proc/stat's busy time less the child's and the benchmark's own.
	OtherCPU   float64 `json:"other_cpu"`
	AllocBytes int64   `json:"alloc_bytes,omitempty"` // Go children and the command: allocated in the run
	Mallocs    int64   `json:"mallocs,omitempty"`
	// SyncAfter is how long a syncfs took right after curl wrote the large file to disk: what
	// making curl's output durable would have cost.
	SyncAfter float64 `json:"sync_after,omitempty"`
}

// meta describes the machine and the run.
type meta struct {
	Command   string  `json:"command"`
	Start     string  `json:"start"`
	CPU       string  `json:"cpu"`
	CPUs      int     `json:"cpus"`
	MemoryGiB float64 `json:"memory_gib"`
	Kernel    string  `json:"kernel"`
	Go        string  `json:"go"`
	Curl      string  `json:"curl"`
	TmpfsDir  string  `json:"tmpfs_dir"`
	TmpfsFS   string  `json:"tmpfs_fs"`
	DiskDir   string  `json:"disk_dir"`
	DiskFS    string  `json:"disk_fs"`
	LoadStart string  `json:"load_start"`
	LoadEnd   string  `json:"load_end"`
	Minutes   float64 `json:"minutes"`
	LargeSize int64   `json:"large_size"`
	Files     int     `json:"files"`
	FileSize  int     `json:"file_size"`
	Many      int     `json:"many"`
	Parallel  int     `json:"parallel"`
	Rounds    int     `json:"rounds"`
	FirstReps int     `json:"first_reps"`
}

// results is what results.json holds.
type results struct {
	Meta    meta     `json:"meta"`
	Samples []sample `json:"samples"`
}

// group is the clients that do one piece of work into one destination, one after the other.
type group struct {
	scenario, dest string
	clients        []string
	reps           int
}

func groups(cfg *config, tls bool) []group {
	var gs []group
	add := func(sc, dest string, reps int, clients ...string) {
		if !slices.Contains(cfg.dests, dest) {
			return
		}
		clients = slices.DeleteFunc(clients, func(c string) bool { return !slices.Contains(cfg.clients, c) })
		if len(clients) > 0 {
			gs = append(gs, group{sc, dest, clients, reps})
		}
	}
	add(scLarge, destNull, 1, "ceiling", "mxfetch-lib", "mxfetch-cli", "mautrix", "mautrix+transport", "net/http", "curl")
	add(scSmall, destNull, 1, "ceiling", "mxfetch-lib", "mautrix", "mautrix+transport", "net/http", "curl")
	add(scLarge, destTmpfs, 1, "mxfetch-cli", "curl")
	add(scSmall, destTmpfs, 1, "mxfetch-cli", "curl")
	if !tls && cfg.many > 0 {
		add(scMany, destTmpfs, 1, "mxfetch-cli", "curl")
	}
	add(scLarge, destDisk, 1, "mxfetch-cli", "curl")
	add(scSmall, destDisk, 1, "mxfetch-cli", "curl")
	if cfg.firstReps > 0 {
		add(scFirst, destTmpfs, cfg.firstReps, "mxfetch-cli", "curl")
	}
	return gs
}

// env is one test server with its media and one ceiling server, as the clients see them.
type env struct {
	srv  *testserver.Server
	ceil *ceiling
	tls  bool
	dir  string // lists and certificates

	certFile, ceilCertFile string
	largeURI               id.ContentURI
	uris                   []id.ContentURI // the small files (the many scenario's too)
	// The children's lists ("item size" lines) and the command's (one URI a line), by scenario.
	childList, ceilList, uriList map[string]string
}

// bench holds one run of the benchmark.
type bench struct {
	cfg     *config
	self    string
	work    string
	curl    bool
	seq     int
	stderr  io.Writer
	samples []sample
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseConfig(args, stderr)
	if err != nil {
		return err
	}
	if cfg.from != "" {
		data, err := os.ReadFile(cfg.from)
		if err != nil {
			return err
		}
		var res results
		if err := json.Unmarshal(data, &res); err != nil {
			return fmt.Errorf("%s: %w", cfg.from, err)
		}
		return write(cfg, &res, stdout)
	}
	work, err := os.MkdirTemp("", "mxfetch-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	b := &bench{cfg: cfg, work: work, stderr: stderr}
	if b.self, err = os.Executable(); err != nil {
		return err
	}
	if slices.Contains(cfg.clients, "mxfetch-cli") && cfg.mxfetch == "" {
		cfg.mxfetch = filepath.Join(work, "mxfetch")
		build := exec.CommandContext(ctx, "go", "build", "-tags", "mxfetch_memstats", "-o", cfg.mxfetch, "github.com/mxfetch/mxfetch/cmd/mxfetch")
		if out, err := build.CombinedOutput(); err != nil {
			return fmt.Errorf("building mxfetch: %v\n%s", err, out)
		}
	}
	if slices.Contains(cfg.clients, "curl") {
		if _, err := exec.LookPath("curl"); err != nil {
			fmt.Fprintln(stderr, "mxfetch-bench: curl is not installed (Debian package curl); skipping it")
			cfg.clients = slices.DeleteFunc(slices.Clone(cfg.clients), func(c string) bool { return c == "curl" })
		} else {
			b.curl = true
		}
	}
	if err := b.checkDests(); err != nil {
		return err
	}
	defer b.cleanup()
	res := &results{Meta: b.meta()}
	start := time.Now()
	var modes []bool
	switch cfg.tls {
	case "off":
		modes = []bool{false}
	case "on":
		modes = []bool{true}
	default:
		modes = []bool{false, true}
	}
	var envs []*env
	defer func() {
		for _, e := range envs {
			e.srv.Close()
			e.ceil.close()
		}
	}()
	for _, tls := range modes {
		e, err := b.newEnv(tls)
		if err != nil {
			return err
		}
		envs = append(envs, e)
	}
	if err := b.rounds(ctx, envs); err != nil {
		return err
	}
	res.Samples = b.samples
	res.Meta.LoadEnd = loadavg()
	res.Meta.Minutes = time.Since(start).Minutes()
	return write(cfg, res, stdout)
}

// checkDests prepares the directories of the file destinations: the tmpfs one must be a memory
// file system and the disk one must not be.
func (b *bench) checkDests() error {
	cfg := b.cfg
	if slices.Contains(cfg.dests, destTmpfs) {
		if t := fsType(cfg.tmpfsDir); t != "tmpfs" {
			return fmt.Errorf("-tmpfs %s is on %s, not a memory file system", cfg.tmpfsDir, t)
		}
		d, err := os.MkdirTemp(cfg.tmpfsDir, "mxfetch-bench-")
		if err != nil {
			return err
		}
		cfg.tmpfsDir = d
	}
	if slices.Contains(cfg.dests, destDisk) {
		explicit := cfg.diskDir != ""
		if !explicit {
			cfg.diskDir = os.TempDir()
		}
		if t := fsType(cfg.diskDir); t == "tmpfs" {
			if explicit {
				fmt.Fprintf(b.stderr, "mxfetch-bench: -disk %s is a memory file system; its figures are not a disk's\n", cfg.diskDir)
			} else {
				fmt.Fprintf(b.stderr, "mxfetch-bench: %s is a memory file system; pass -disk DIR for the disk destination; skipping it\n", cfg.diskDir)
				cfg.dests = slices.DeleteFunc(cfg.dests, func(d string) bool { return d == destDisk })
				return nil
			}
		}
		d, err := os.MkdirTemp(cfg.diskDir, "mxfetch-bench-")
		if err != nil {
			return err
		}
		cfg.diskDir = d
	}
	return nil
}

func (b *bench) cleanup() {
	for _, d := range []string{b.cfg.tmpfsDir, b.cfg.diskDir} {
		if strings.Contains(filepath.Base(d), "mxfetch-bench-") {
			os.RemoveAll(d)
		}
	}
}

func (b *bench) meta() meta {
	cfg := b.cfg
	m := meta{
		Command: strings.Join(append([]string{"go run ./cmd/mxfetch-bench"}, cfg.args...), " "),
		Start:   time.Now().UTC().Format(time.RFC3339), CPUs: runtime.NumCPU(), Kernel: kernel(), Go: runtime.Version(),
		TmpfsDir: cfg.tmpfsDir, DiskDir: cfg.diskDir, LoadStart: loadavg(),
		LargeSize: cfg.largeSize, Files: cfg.files, FileSize: cfg.fileSize, Many: cfg.many, Parallel: cfg.parallel, Rounds: cfg.rounds, FirstReps: cfg.firstReps,
	}
	if slices.Contains(cfg.dests, destTmpfs) {
		m.TmpfsFS = fsType(cfg.tmpfsDir)
	}
	if slices.Contains(cfg.dests, destDisk) {
		m.DiskFS = fsType(cfg.diskDir)
	}
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kib float64
		fmt.Sscanf(string(data), "MemTotal: %f kB", &kib)
		m.MemoryGiB = math.Round(kib/(1<<20)*10) / 10
	}
	if b.curl {
		if out, err := exec.Command("curl", "--version").Output(); err == nil {
			m.Curl, _, _ = strings.Cut(string(out), "\n")
		}
	}
	return m
}

func loadavg() string {
	data, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func tlsName(tls bool) string {
	if tls {
		return "tls"
	}
	return "plain"
}

// newEnv starts a test server (a homeserver and a CDN origin on another port, plain or TLS; every
// download is one 307 to a signed CDN URL) with the media, and a ceiling server with the same bytes.
func (b *bench) newEnv(tls bool) (*env, error) {
	cfg := b.cfg
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
	e := &env{srv: srv, tls: tls, dir: filepath.Join(b.work, tlsName(tls)),
		childList: map[string]string{}, ceilList: map[string]string{}, uriList: map[string]string{}}
	if err := os.MkdirAll(e.dir, 0o755); err != nil {
		return nil, err
	}
	write := func(name string, data []byte) string {
		p := filepath.Join(e.dir, name)
		os.WriteFile(p, data, 0o644)
		return p
	}
	e.certFile = write("cert.pem", srv.CertPEM())
	e.largeURI = srv.AddGenerated(cfg.largeSize, 7, testserver.MediaOptions{ContentType: "application/octet-stream"})
	n := cfg.files
	if !tls {
		n = max(n, cfg.many)
	}
	small := make([][]byte, n)
	for i := range n {
		small[i] = make([]byte, cfg.fileSize)
		testserver.GeneratedContent(byte(i)).ReadAt(small[i], int64(i))
		e.uris = append(e.uris, srv.AddMedia(small[i], testserver.MediaOptions{ContentType: "application/octet-stream"}))
	}
	e.ceil = startCeiling(tls, cfg.largeSize, small[:cfg.files])
	e.ceilCertFile = write("ceiling.pem", e.ceil.certPEM())
	lists := func(sc string, count int) {
		var child, uris bytes.Buffer
		for _, u := range e.uris[:count] {
			fmt.Fprintf(&child, "%s %d\n", u, cfg.fileSize)
			fmt.Fprintf(&uris, "%s\n", u)
		}
		e.childList[sc] = write(sc+".list", child.Bytes())
		e.uriList[sc] = write(sc+".uris", uris.Bytes())
	}
	lists(scSmall, cfg.files)
	lists(scFirst, 1)
	if !tls && cfg.many > 0 {
		lists(scMany, cfg.many)
	}
	e.childList[scLarge] = write("large.list", fmt.Appendf(nil, "%s %d\n", e.largeURI, cfg.largeSize))
	e.uriList[scLarge] = write("large.uris", fmt.Appendf(nil, "%s\n", e.largeURI))
	e.ceilList[scLarge] = write("ceiling-large.list", e.ceil.largeList(cfg.largeSize))
	e.ceilList[scSmall] = write("ceiling-small.list", e.ceil.smallList(cfg.files, cfg.fileSize))
	return e, nil
}

// rounds runs every round: in each, every group of each environment (plain, then TLS) in turn, its
// clients in an order that rotates with the round. With -quiet, each group waits first until the
// other processes leave the machine quiet enough.
func (b *bench) rounds(ctx context.Context, envs []*env) error {
	for round := range b.cfg.rounds {
		for _, e := range envs {
			for _, g := range groups(b.cfg, e.tls) {
				if b.cfg.quiet > 0 {
					b.waitQuiet(ctx)
				}
				order := slices.Clone(g.clients)
				rotate(order, round)
				for rep := range g.reps {
					for _, client := range order {
						s, err := b.measure(ctx, e, round, rep, g, client)
						if err != nil {
							return fmt.Errorf("round %d, %s, %s %s into %s: %w", round+1, client, tlsName(e.tls), g.scenario, g.dest, err)
						}
						fmt.Fprintf(b.stderr, "round %d %-5s %-5s %-5s %-17s %8.3fs  rss %7d KiB  conns %4d  %s  other cpu %3.0f%%\n",
							round+1, tlsName(e.tls), g.scenario, g.dest, client, s.Seconds, s.RSSKiB, s.Conns, s.Proto, 100*s.OtherCPU)
						b.samples = append(b.samples, s)
					}
				}
			}
		}
	}
	return nil
}

// waitQuiet waits, up to -quiet-wait, until the other processes used at most -quiet of the
// machine's CPU over the last second.
func (b *bench) waitQuiet(ctx context.Context) {
	deadline := time.Now().Add(b.cfg.quietWait)
	for {
		busy0, total0 := cpuTicks()
		self0 := selfCPU()
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
		busy1, total1 := cpuTicks()
		other := 1.0
		if total1 > total0 {
			other = max(0, (busy1-busy0)-(selfCPU()-self0).Seconds()) / (total1 - total0)
		}
		if other <= b.cfg.quiet {
			return
		}
		if time.Now().After(deadline) {
			fmt.Fprintf(b.stderr, "mxfetch-bench: the machine stayed busy (%.0f%% of its CPU used by other processes); measuring anyway\n", 100*other)
			return
		}
	}
}

func rotate(s []string, n int) {
	if len(s) > 0 {
		n %= len(s)
		slices.Reverse(s[:n])
		slices.Reverse(s[n:])
		slices.Reverse(s)
	}
}

// measure runs one client on one piece of work in a process of its own, timed from its start to
// its exit.
func (b *bench) measure(ctx context.Context, e *env, round, rep int, g group, client string) (sample, error) {
	cfg := b.cfg
	s := sample{Round: round + 1, Rep: rep, Client: client, TLS: e.tls, Scenario: g.scenario, Dest: g.dest}
	files, size := cfg.files, int64(cfg.fileSize)
	switch g.scenario {
	case scLarge:
		files, size = 1, cfg.largeSize
	case scMany:
		files = cfg.many
	case scFirst:
		files = 1
	}
	s.Files, s.Bytes = files, int64(files)*size

	// A fresh directory for every run that writes files: nothing deleted in it just before.
	out := ""
	switch g.dest {
	case destTmpfs, destDisk:
		base := cfg.tmpfsDir
		if g.dest == destDisk {
			base = cfg.diskDir
		}
		b.seq++
		out = filepath.Join(base, fmt.Sprintf("run-%05d", b.seq))
		if err := os.Mkdir(out, 0o755); err != nil {
			return s, err
		}
		defer b.clean(out, g.dest == destDisk)
	}
	stats := filepath.Join(b.work, "memstats.json")
	os.Remove(stats)
	uriFor := func(u id.ContentURI) string {
		return e.srv.URL + "/_matrix/client/v1/media/download/" + u.Homeserver + "/" + u.FileID
	}
	var cmd *exec.Cmd
	cert := e.certFile
	env := os.Environ()
	switch client {
	case "ceiling", "mxfetch-lib", "mautrix", "mautrix+transport", "net/http":
		kind := map[string]string{"ceiling": "ceiling", "mxfetch-lib": "lib", "mautrix": "mautrix", "mautrix+transport": "mautrix-transport", "net/http": "http"}[client]
		list := e.childList[g.scenario]
		if client == "ceiling" {
			list, cert = e.ceilList[g.scenario], e.ceilCertFile
		}
		parallel := cfg.parallel
		if g.scenario == scLarge {
			parallel = 1
		}
		cmd = exec.CommandContext(ctx, b.self, "child", "-client", kind, "-hs", e.srv.URL, "-token", e.srv.AccessToken,
			"-list", list, "-parallel", strconv.Itoa(parallel))
	case "mxfetch-cli":
		args := []string{"--homeserver", e.srv.URL, "--token", e.srv.AccessToken, "--api", "v1", "-q"}
		switch {
		case g.scenario == scLarge && g.dest == destNull:
			args = append(args, "-o", os.DevNull, e.largeURI.String())
		case g.scenario == scLarge, g.scenario == scFirst:
			args = append(args, "-o", out+"/", e.uris[0].String())
			if g.scenario == scLarge {
				args[len(args)-1] = e.largeURI.String()
			}
		default:
			args = append(args, "-j", strconv.Itoa(cfg.parallel), "-i", e.uriList[g.scenario], "-o", out+"/")
		}
		cmd = exec.CommandContext(ctx, cfg.mxfetch, args...)
		env = append(env, "MXFETCH_MEMSTATS="+stats)
	case "curl":
		args := []string{"-sS", "-L", "--fail", "--http1.1", "--cacert", e.certFile, "-H", "Authorization: Bearer " + e.srv.AccessToken}
		target := func(name string) string {
			if out == "" {
				return os.DevNull
			}
			return filepath.Join(out, name)
		}
		switch g.scenario {
		case scLarge:
			args = append(args, "-o", target("large.bin"), uriFor(e.largeURI))
		case scFirst:
			args = append(args, "-o", target(e.uris[0].FileID), uriFor(e.uris[0]))
		default:
			var conf strings.Builder
			for _, u := range e.uris[:files] {
				fmt.Fprintf(&conf, "url = \"%s\"\noutput = \"%s\"\n", uriFor(u), target(u.FileID))
			}
			confFile := filepath.Join(b.work, "curl.conf")
			if err := os.WriteFile(confFile, []byte(conf.String()), 0o644); err != nil {
				return s, err
			}
			args = append(args, "--parallel", "--parallel-max", strconv.Itoa(cfg.parallel), "-K", confFile)
		}
		cmd = exec.CommandContext(ctx, "curl", args...)
	default:
		return s, fmt.Errorf("unknown client %q", client)
	}
	// Every child trusts the test certificate through SSL_CERT_FILE (curl through --cacert), and
	// nothing else of the environment's certificate settings reaches it: each loads its trust the
	// way it does on a machine where they are unset.
	cmd.Env = append(slices.DeleteFunc(env, func(kv string) bool {
		k, _, _ := strings.Cut(kv, "=")
		return slices.Contains([]string{"SSL_CERT_FILE", "SSL_CERT_DIR", "CURL_CA_BUNDLE"}, k)
	}), "SSL_CERT_FILE="+cert)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr

	e.srv.ResetConnections()
	e.srv.ResetLog()
	e.ceil.reset()
	busy0, total0 := cpuTicks()
	self0 := selfCPU()
	start := time.Now()
	err := cmd.Start()
	var peak int64
	if err == nil {
		stop := watchPeakRSS(cmd.Process.Pid, &peak)
		err = cmd.Wait()
		stop()
	}
	wall := time.Since(start)
	busy1, total1 := cpuTicks()
	self := selfCPU() - self0
	s.Seconds = wall.Seconds()
	if err != nil {
		return s, fmt.Errorf("%v: %s", err, strings.TrimSpace(stderr.String()))
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		s.ChildCPU = time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
	}
	if total1 > total0 {
		// The share of all CPUs' time over the run that neither the child nor this process used.
		other := (busy1 - busy0) - s.ChildCPU - self.Seconds()
		s.OtherCPU = max(0, other/(total1-total0))
	}
	s.RSSKiB = peak

	// What the server saw: the protocol, the connections, the bytes.
	if client == "ceiling" {
		s.Proto, s.Conns = e.ceil.reset()
	} else {
		cdn := testserver.OriginCDN
		if e.tls {
			cdn = testserver.OriginCDNTLS
		}
		s.Conns = e.srv.Connections(cdn)
		protos := map[string]bool{}
		var sent int64
		for _, r := range endedRequests(e.srv) {
			protos[r.Proto] = true
			if r.Role == testserver.RoleCDN {
				sent += r.Sent
			}
		}
		var ps []string
		for p := range protos {
			ps = append(ps, p)
		}
		s.Proto = strings.Join(sorted(ps), "+")
		if sent != s.Bytes {
			return s, fmt.Errorf("the CDN sent %d bytes, want %d", sent, s.Bytes)
		}
		e.srv.ResetLog()
	}
	switch client {
	case "ceiling", "mxfetch-lib", "mautrix", "mautrix+transport", "net/http":
		var res childResult
		if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
			return s, fmt.Errorf("child output %q: %v", stdout.String(), err)
		}
		if res.Bytes != s.Bytes {
			return s, fmt.Errorf("downloaded %d bytes, want %d", res.Bytes, s.Bytes)
		}
		s.Inner, s.AllocBytes, s.Mallocs = res.Seconds, res.AllocBytes, res.Mallocs
		s.RSSKiB = max(s.RSSKiB, res.PeakRSSKiB)
	case "mxfetch-cli":
		var st struct {
			Files      int   `json:"files"`
			TotalAlloc int64 `json:"total_alloc"`
			Mallocs    int64 `json:"mallocs"`
		}
		if data, err := os.ReadFile(stats); err == nil && json.Unmarshal(data, &st) == nil {
			s.AllocBytes, s.Mallocs = st.TotalAlloc, st.Mallocs
		}
	}
	if out != "" {
		n, total, err := countFiles(out)
		if err != nil || n != files || total != s.Bytes {
			return s, fmt.Errorf("wrote %d files, %d bytes (%v); want %d, %d", n, total, err, files, s.Bytes)
		}
		if client == "curl" && g.scenario == scLarge && g.dest == destDisk {
			d, err := syncFS(out)
			if err != nil {
				return s, err
			}
			s.SyncAfter = d.Seconds()
		}
	}
	return s, nil
}

// endedRequests returns the request log once every answer in it is over: a client may exit before
// the server's handler has noted the end of what it sent.
func endedRequests(srv *testserver.Server) []testserver.Request {
	for range 200 {
		reqs := srv.Requests()
		if !slices.ContainsFunc(reqs, func(r testserver.Request) bool { return !r.Ended }) {
			return reqs
		}
		time.Sleep(5 * time.Millisecond)
	}
	return srv.Requests()
}

// clean removes a run's directory and, on a disk, syncs the file system: neither the deletions nor
// what the run left unsynced fall into the next run.
func (b *bench) clean(dir string, disk bool) {
	os.RemoveAll(dir)
	if disk {
		syncFS(filepath.Dir(dir))
	}
}

// countFiles counts the files of a directory (hidden temporary files included) and their bytes.
func countFiles(dir string) (int, int64, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, 0, err
	}
	var total int64
	for _, e := range entries {
		info, err := e.Info()
		if err != nil {
			return 0, 0, err
		}
		total += info.Size()
	}
	return len(entries), total, nil
}

// watchPeakRSS samples the peak resident set (VmHWM) of a running process until stop is called:
// every millisecond for its first 100 ms, then every 5 ms (VmHWM only grows; sampling it costs the
// machine's CPU). VmHWM belongs to the address space the process got at exec, so unlike the rusage
// of a child started with vfork it does not include the parent's memory.
func watchPeakRSS(pid int, peak *int64) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	path := fmt.Sprintf("/proc/%d/status", pid)
	go func() {
		defer close(finished)
		start := time.Now()
		t := time.NewTimer(time.Millisecond)
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
			if time.Since(start) < 100*time.Millisecond {
				t.Reset(time.Millisecond)
			} else {
				t.Reset(5 * time.Millisecond)
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

func sorted(s []string) []string {
	slices.Sort(s)
	return s
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
