// Command mxfetch-bench measures, side by side in one run, how fast Matrix media downloads go through
// mxfetch's library, mxfetch's command, mautrix's Client.Download (alone, and with mxfetch's
// MediaTransport installed), Go's http.Client, curl, and a
// minimal Go client against a minimal Go server (the ceiling of the machine's loopback), against the
// embedded test server (a homeserver and a CDN behind one redirect hop, plain HTTP and TLS). Every
// client speaks HTTP/1.1 and runs in a process of its own; those that write files write to the same
// place.
//
//	go run ./cmd/mxfetch-bench -out bench-out
//
// See BENCHMARKS.md for the method.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	if len(os.Args) > 1 && os.Args[1] == "child" {
		err = runChild(ctx, os.Args[2:], os.Stdout)
	} else {
		err = run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	}
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "mxfetch-bench:", err)
		os.Exit(1)
	}
}

// Destinations: where the bytes go.
const (
	destNull  = "null"  // io.Discard in Go children, /dev/null for curl and the command
	destTmpfs = "tmpfs" // files in a memory file system
	destDisk  = "disk"  // files on a disk
)

var allDests = []string{destNull, destTmpfs, destDisk}

// config is the benchmark's command line.
type config struct {
	largeSize int64
	files     int
	fileSize  int
	parallel  int
	rounds    int
	many      int // files of the memory scenario (0: none)
	firstReps int // first-request runs a round
	out       string
	mxfetch   string // path of an mxfetch binary built with -tags mxfetch_memstats; "" builds one
	tls       string // "both", "on" or "off"
	clients   []string
	dests     []string
	tmpfsDir  string
	diskDir   string
	from      string        // results.json of an earlier run: only report and chart it
	quiet     float64       // wait before each group until other processes use at most this share of the CPU (0: no wait)
	quietWait time.Duration // for at most this long
	args      []string
}

func parseConfig(args []string, stderr io.Writer) (*config, error) {
	c := &config{args: args}
	fs := flag.NewFlagSet("mxfetch-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	large := fs.String("large", "1G", "size of the large file (generated on the fly, never held in memory)")
	fs.IntVar(&c.files, "files", 2000, "number of small files")
	fs.IntVar(&c.fileSize, "file-size", 16<<10, "size of each small file in bytes")
	fs.IntVar(&c.parallel, "parallel", 16, "parallel downloads of small files")
	fs.IntVar(&c.rounds, "rounds", 9, "rounds; the clients alternate within each round, in an order that rotates")
	fs.IntVar(&c.many, "many", 8000, "files of the memory scenario (the command and curl into tmpfs, plain HTTP); 0 for none")
	fs.IntVar(&c.firstReps, "first-reps", 5, "runs a round of the first-request scenario (one small file, process start to exit)")
	fs.StringVar(&c.out, "out", "", "directory for results.md, results.json and ratios.png (none: stdout only)")
	fs.StringVar(&c.mxfetch, "mxfetch", "", "path of an mxfetch binary built with -tags mxfetch_memstats (default: build ./cmd/mxfetch)")
	fs.StringVar(&c.tls, "tls", "both", "plain, TLS or both: off, on, both")
	clients := fs.String("clients", "", "comma-separated clients to run (default all): "+strings.Join(allClients, ", "))
	dests := fs.String("dests", strings.Join(allDests, ","), "comma-separated destinations: "+strings.Join(allDests, ", "))
	fs.StringVar(&c.tmpfsDir, "tmpfs", "/dev/shm", "directory on a memory file system for the tmpfs destination")
	fs.StringVar(&c.diskDir, "disk", "", "directory on a disk for the disk destination (default: in the system's temporary directory, when that is on a disk)")
	fs.Float64Var(&c.quiet, "quiet", 0, "before each group of runs, wait until other processes used at most this share of the CPU (0.2: 20%) over a second; 0: no wait")
	fs.DurationVar(&c.quietWait, "quiet-wait", 2*time.Minute, "how long -quiet waits at most before measuring anyway")
	fs.StringVar(&c.from, "from", "", "results.json of an earlier run: write its report and chart again, measuring nothing")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	n, err := parseSize(*large)
	if err != nil {
		return nil, fmt.Errorf("-large: %w", err)
	}
	c.largeSize = n
	switch {
	case c.files < 1, c.fileSize < 1, c.parallel < 1, c.rounds < 1, c.firstReps < 0, c.many < 0:
		return nil, fmt.Errorf("-files, -file-size, -parallel and -rounds must be positive, -many and -first-reps not negative")
	case c.many != 0 && c.many < c.files:
		return nil, fmt.Errorf("-many must be 0 or at least -files")
	case c.tls != "both" && c.tls != "on" && c.tls != "off":
		return nil, fmt.Errorf("-tls must be on, off or both")
	}
	c.clients = allClients
	if *clients != "" {
		c.clients = strings.Split(*clients, ",")
		for _, x := range c.clients {
			if !slices.Contains(allClients, x) {
				return nil, fmt.Errorf("unknown client %q (want %s)", x, strings.Join(allClients, ", "))
			}
		}
	}
	c.dests = strings.Split(*dests, ",")
	for _, d := range c.dests {
		if !slices.Contains(allDests, d) {
			return nil, fmt.Errorf("unknown destination %q (want %s)", d, strings.Join(allDests, ", "))
		}
	}
	return c, nil
}
