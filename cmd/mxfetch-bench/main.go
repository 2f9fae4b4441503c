// Command mxfetch-bench measures, side by side in one run, how fast Matrix media downloads go through
// mxfetch's library, mxfetch's CLI, mautrix's Client.Download (alone, and with mxfetch's
// MediaTransport installed), Go's default http.Client and curl, against the embedded test server on
// loopback (a homeserver and a CDN behind one redirect hop, plain and TLS). Each client runs in a
// process of its own so that its peak RSS can be read.
//
//	go run ./cmd/mxfetch-bench -out bench-out
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
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

// config is the benchmark's command line.
type config struct {
	largeSize int64
	files     int
	fileSize  int
	parallel  int
	rounds    int
	out       string
	mxfetch   string // path of a built mxfetch binary; "" builds one
	tls       string // "both", "on" or "off"
	clients   string // comma-separated subset, "" for all
	from      string // results.json of an earlier run: only report and chart it
}

func parseConfig(args []string, stderr io.Writer) (*config, error) {
	c := &config{}
	fs := flag.NewFlagSet("mxfetch-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	large := fs.String("large", "1G", "size of the large file (generated on the fly, never held in memory)")
	fs.IntVar(&c.files, "files", 2000, "number of small files")
	fs.IntVar(&c.fileSize, "file-size", 16<<10, "size of each small file in bytes")
	fs.IntVar(&c.parallel, "parallel", 16, "parallel downloads of small files")
	fs.IntVar(&c.rounds, "rounds", 3, "rounds; clients alternate within each round and the median is reported")
	fs.StringVar(&c.out, "out", "", "directory for results.md, results.json and throughput.png (none: stdout only)")
	fs.StringVar(&c.mxfetch, "mxfetch", "", "path of an mxfetch binary (default: build ./cmd/mxfetch)")
	fs.StringVar(&c.tls, "tls", "both", "plain, TLS or both: off, on, both")
	fs.StringVar(&c.clients, "clients", "", "comma-separated clients to run (default all): "+allClientNames())
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
	case c.files < 1, c.fileSize < 1, c.parallel < 1, c.rounds < 1:
		return nil, fmt.Errorf("-files, -file-size, -parallel and -rounds must be positive")
	case c.tls != "both" && c.tls != "on" && c.tls != "off":
		return nil, fmt.Errorf("-tls must be on, off or both")
	}
	return c, nil
}
