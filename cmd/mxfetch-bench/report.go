package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// write prints the report and, with -out, saves it with the samples and the chart.
func write(cfg *config, res *results, stdout io.Writer) error {
	md := report(res)
	io.WriteString(stdout, md)
	if cfg.out == "" {
		return nil
	}
	if err := os.MkdirAll(cfg.out, 0o755); err != nil {
		return err
	}
	data, _ := json.MarshalIndent(res, "", "  ")
	if err := os.WriteFile(filepath.Join(cfg.out, "results.json"), data, 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(cfg.out, "results.md"), []byte(md), 0o644); err != nil {
		return err
	}
	return chart(targets(res), filepath.Join(cfg.out, "ratios.png"))
}

// key selects the samples of one piece of work.
type key struct {
	tls            bool
	scenario, dest string
}

func (k key) String() string {
	return fmt.Sprintf("%s %s → %s", k.scenario, tlsName(k.tls), k.dest)
}

func pick(samples []sample, k key, client string) []sample {
	var out []sample
	for _, s := range samples {
		if s.TLS == k.tls && s.Scenario == k.scenario && s.Dest == k.dest && s.Client == client {
			out = append(out, s)
		}
	}
	return out
}

// ratios returns, for every run of client that ref also did in the same round (and repetition),
// how much faster client was: ref's time over client's.
func ratios(samples []sample, k key, client, ref string) []float64 {
	refs := pick(samples, k, ref)
	var out []float64
	for _, s := range pick(samples, k, client) {
		for _, r := range refs {
			if r.Round == s.Round && r.Rep == s.Rep && s.Seconds > 0 {
				out = append(out, r.Seconds/s.Seconds)
			}
		}
	}
	return out
}

// spread is the minimum, median and maximum of some values.
type spread struct{ min, med, max float64 }

func spreadOf(v []float64) spread {
	if len(v) == 0 {
		return spread{math.NaN(), math.NaN(), math.NaN()}
	}
	v = slices.Clone(v)
	slices.Sort(v)
	med := v[len(v)/2]
	if len(v)%2 == 0 {
		med = (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	return spread{v[0], med, v[len(v)-1]}
}

func (s spread) ok() bool { return !math.IsNaN(s.med) }

func (s spread) String() string {
	if !s.ok() {
		return "–"
	}
	return fmt.Sprintf("%.2f / **%.2f** / %.2f", s.min, s.med, s.max)
}

func values(samples []sample, f func(sample) float64) []float64 {
	out := make([]float64, len(samples))
	for i, s := range samples {
		out[i] = f(s)
	}
	return out
}

// speed renders the median speed of some runs of a scenario.
func speed(samples []sample, scenario string) string {
	switch scenario {
	case scLarge:
		return fmt.Sprintf("%.0f MB/s", spreadOf(values(samples, func(s sample) float64 { return float64(s.Bytes) / s.Seconds / 1e6 })).med)
	case scFirst:
		return fmt.Sprintf("%.1f ms", 1000*spreadOf(values(samples, func(s sample) float64 { return s.Seconds })).med)
	}
	return fmt.Sprintf("%.0f files/s", spreadOf(values(samples, func(s sample) float64 { return float64(s.Files) / s.Seconds })).med)
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

// keys lists the pieces of work measured, in the order they ran.
func keys(samples []sample) []key {
	var out []key
	for _, s := range samples {
		k := key{s.TLS, s.Scenario, s.Dest}
		if !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	slices.SortStableFunc(out, func(a, b key) int {
		order := []string{scLarge, scSmall, scMany, scFirst}
		if c := slices.Index(order, a.scenario) - slices.Index(order, b.scenario); c != 0 {
			return c
		}
		if c := slices.Index(allDests, a.dest) - slices.Index(allDests, b.dest); c != 0 {
			return c
		}
		if a.tls != b.tls {
			if a.tls {
				return 1
			}
			return -1
		}
		return 0
	})
	return out
}

// report renders the run as Markdown: the machine, every measurement, and the targets.
func report(res *results) string {
	m := res.Meta
	var b strings.Builder
	fmt.Fprintf(&b, "Run %s, %.0f minutes: `%s`.\n\n", m.Start, m.Minutes, m.Command)
	fmt.Fprintf(&b, "Machine: %s, %d CPUs, %.1f GiB, Linux %s, %s, %s. tmpfs destination: %s (%s); disk destination: %s (%s). Load average %s at the start, %s at the end.\n\n",
		m.CPU, m.CPUs, m.MemoryGiB, m.Kernel, m.Go, m.Curl, m.TmpfsDir, m.TmpfsFS, m.DiskDir, m.DiskFS, m.LoadStart, m.LoadEnd)
	fmt.Fprintf(&b, "Work: large = one file of %s behind a 307; small = %d files of %s at parallelism %d, a 307 each; many = %d such files; first = one such file, process start to exit (%d runs a round). %d rounds.\n\n",
		human(m.LargeSize), m.Files, human(int64(m.FileSize)), m.Parallel, m.Many, m.FirstReps, m.Rounds)
	other := spreadOf(values(res.Samples, func(s sample) float64 { return 100 * s.OtherCPU }))
	fmt.Fprintf(&b, "Other processes' CPU load during the runs, in %% of the machine: %.0f / **%.0f** / %.0f (min / median / max).\n\n", other.min, other.med, other.max)

	b.WriteString("| work | client | HTTP | median | ÷ curl per round: min / **median** / max | peak RSS | conns | allocated per file | other CPU |\n")
	b.WriteString("|---|---|---|---:|---|---:|---:|---:|---:|\n")
	for _, k := range keys(res.Samples) {
		for _, c := range allClients {
			ss := pick(res.Samples, k, c)
			if len(ss) == 0 {
				continue
			}
			ratio := "–"
			if c != "curl" {
				ratio = spreadOf(ratios(res.Samples, k, c, "curl")).String()
			}
			alloc := "–"
			if a := values(ss, func(s sample) float64 { return float64(s.AllocBytes) / float64(s.Files) }); slices.Max(a) > 0 {
				alloc = human(int64(spreadOf(a).med))
			}
			protos := map[string]bool{}
			var rss int64
			for _, s := range ss {
				protos[s.Proto] = true
				rss = max(rss, s.RSSKiB)
			}
			var ps []string
			for p := range protos {
				ps = append(ps, strings.TrimPrefix(p, "HTTP/"))
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %.0f | %s | %.0f%% |\n", k, c, strings.Join(sorted(ps), ", "), speed(ss, k.scenario), ratio,
				human(rss*1024), spreadOf(values(ss, func(s sample) float64 { return float64(s.Conns) })).med, alloc,
				100*spreadOf(values(ss, func(s sample) float64 { return s.OtherCPU })).med)
		}
	}
	b.WriteString("\n")

	b.WriteString("| target | measured: min / **median** / max | |\n|---|---|---|\n")
	for _, t := range targets(res) {
		verdict := "–"
		if t.value.ok() {
			verdict = "**met**"
			if !t.met(t.value.med) {
				verdict = "**missed**"
			}
		}
		fmt.Fprintf(&b, "| %s | %s%s | %s |\n", t.name, t.value, t.unit, verdict)
	}
	return b.String()
}

// target is one of the goals the benchmark checks, with what was measured.
type target struct {
	name  string
	label string // short, for the chart
	value spread
	unit  string
	met   func(median float64) bool
	ratio bool // a speed ratio (charted)
}

func atLeast(x float64) func(float64) bool { return func(v float64) bool { return v >= x } }
func atMost(x float64) func(float64) bool  { return func(v float64) bool { return v <= x } }

// targets computes the goals from the samples.
func targets(res *results) []target {
	ss := res.Samples
	var out []target
	for _, tls := range []bool{false, true} {
		t := tlsName(tls)
		for _, dest := range []string{destTmpfs, destDisk} {
			k := key{tls, scSmall, dest}
			out = append(out, target{name: fmt.Sprintf("small files %s → %s: command ÷ curl ≥ 1.0", t, dest), label: fmt.Sprintf("small %s %s: cli÷curl", t, dest),
				value: spreadOf(ratios(ss, k, "mxfetch-cli", "curl")), met: atLeast(1), ratio: true})
		}
	}
	for _, tls := range []bool{false, true} {
		t := tlsName(tls)
		out = append(out, target{name: fmt.Sprintf("large file %s → tmpfs: command ÷ curl ≥ 1.0", t), label: fmt.Sprintf("large %s tmpfs: cli÷curl", t),
			value: spreadOf(ratios(ss, key{tls, scLarge, destTmpfs}, "mxfetch-cli", "curl")), met: atLeast(1), ratio: true})
		for _, c := range []string{"mxfetch-lib", "mxfetch-cli"} {
			out = append(out, target{name: fmt.Sprintf("large file %s → null: %s ÷ ceiling ≥ 0.95", t, c), label: fmt.Sprintf("large %s null: %s÷ceiling", t, strings.TrimPrefix(c, "mxfetch-")),
				value: spreadOf(ratios(ss, key{tls, scLarge, destNull}, c, "ceiling")), met: atLeast(0.95), ratio: true})
		}
		// On disk: the command's extra time over curl, against a syncfs of curl's file alone.
		k := key{tls, scLarge, destDisk}
		var gap []float64
		for _, c := range pick(ss, k, "mxfetch-cli") {
			for _, r := range pick(ss, k, "curl") {
				if r.Round == c.Round && r.SyncAfter > 0 {
					gap = append(gap, (c.Seconds-r.Seconds)/r.SyncAfter)
				}
			}
		}
		out = append(out, target{name: fmt.Sprintf("large file %s → disk: (command − curl) ÷ syncfs of curl's file ≤ 1", t),
			value: spreadOf(gap), met: atMost(1)})
	}
	for _, tls := range []bool{false, true} {
		t := tlsName(tls)
		out = append(out, target{name: fmt.Sprintf("first request %s (process start to exit): command ÷ curl ≥ 1.0", t), label: fmt.Sprintf("first %s: cli÷curl", t),
			value: spreadOf(ratios(ss, key{tls, scFirst, destTmpfs}, "mxfetch-cli", "curl")), met: atLeast(1), ratio: true})
	}
	// Memory: the command's peak RSS for many files against as many as small has, round by round.
	var grow []float64
	for _, s := range pick(ss, key{false, scSmall, destTmpfs}, "mxfetch-cli") {
		for _, m := range pick(ss, key{false, scMany, destTmpfs}, "mxfetch-cli") {
			if m.Round == s.Round {
				grow = append(grow, float64(m.RSSKiB-s.RSSKiB)/1024)
			}
		}
	}
	files, many := res.Meta.Files, res.Meta.Many
	out = append(out, target{name: fmt.Sprintf("command's peak RSS, %d files − %d files ≤ 1 MiB", many, files), value: spreadOf(grow), unit: " MiB", met: atMost(1)})
	perFile := func(k key, c string) []float64 {
		return values(pick(ss, k, c), func(s sample) float64 { return float64(s.AllocBytes) / float64(s.Files) / 1000 })
	}
	for _, tls := range []bool{false, true} {
		out = append(out, target{name: fmt.Sprintf("command: allocated per small download (%s, whole run ÷ files) ≤ 16 KB", tlsName(tls)),
			value: spreadOf(perFile(key{tls, scSmall, destTmpfs}, "mxfetch-cli")), unit: " KB", met: atMost(16)})
	}
	var marginal []float64
	for _, s := range pick(ss, key{false, scSmall, destTmpfs}, "mxfetch-cli") {
		for _, m := range pick(ss, key{false, scMany, destTmpfs}, "mxfetch-cli") {
			if m.Round == s.Round && m.Files > s.Files && s.AllocBytes > 0 {
				marginal = append(marginal, float64(m.AllocBytes-s.AllocBytes)/float64(m.Files-s.Files)/1000)
			}
		}
	}
	out = append(out, target{name: fmt.Sprintf("command: allocated per further download (plain, (%d files − %d files) ÷ %d) ≤ 16 KB", many, files, many-files),
		value: spreadOf(marginal), unit: " KB", met: atMost(16)})
	for _, tls := range []bool{false, true} {
		out = append(out, target{name: fmt.Sprintf("library: allocated per download, server in another process (%s; reported)", tlsName(tls)),
			value: spreadOf(perFile(key{tls, scSmall, destNull}, "mxfetch-lib")), unit: " KB", met: func(float64) bool { return true }})
	}
	for _, tls := range []bool{false, true} {
		t := tlsName(tls)
		k := key{tls, scSmall, destNull}
		out = append(out, target{name: fmt.Sprintf("mautrix with the transport, small files %s → null: ÷ plain mautrix (reported)", t),
			label: fmt.Sprintf("small %s null: mautrix+transport÷mautrix", t),
			value: spreadOf(ratios(ss, k, "mautrix+transport", "mautrix")), met: func(float64) bool { return true }, ratio: true})
		out = append(out,
			target{name: fmt.Sprintf("library, small files %s → null: ÷ mautrix ≥ 1.3", t), label: fmt.Sprintf("small %s null: lib÷mautrix", t),
				value: spreadOf(ratios(ss, k, "mxfetch-lib", "mautrix")), met: atLeast(1.3), ratio: true},
			target{name: fmt.Sprintf("library, small files %s → null: ÷ curl ≥ 1.0", t), label: fmt.Sprintf("small %s null: lib÷curl", t),
				value: spreadOf(ratios(ss, k, "mxfetch-lib", "curl")), met: atLeast(1), ratio: true})
	}
	return out
}
