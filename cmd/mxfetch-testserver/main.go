// Command mxfetch-testserver runs the mxfetch test server on its own: a fake Matrix homeserver with CDN
// origins that redirects media downloads the way the chosen profile's real servers do, and that can
// serve bytes, fail and stall as flags say, so that a behaviour can be reproduced without Go.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mxfetch/mxfetch/testserver"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	} else if err != nil {
		fmt.Fprintln(os.Stderr, "mxfetch-testserver:", err)
		os.Exit(2)
	}
}

// options holds the flags.
type options struct {
	addr       string
	profile    string
	tls        bool
	preload    string
	token      string
	serverName string
	certOut    string
	quiet      bool

	conformance bool
	reportAddr  string

	// Behaviour on top of the profile.
	redirectStatus int
	chain          string
	at             string
	rangeChunk     int64
	noValidators   bool
	ignoreRange    bool
	ignoreIfRange  bool

	// One fault.
	count      int
	status     int
	retryAfter string
	truncate   optionalInt
	reset      bool
	stall      string
	stallFor   time.Duration
	drip       int64
	dripEvery  time.Duration
	rangeFault string
}

const usageHeader = `Usage: mxfetch-testserver [flags]

Runs a fake Matrix homeserver with CDN origins on loopback, prints its URLs, its access token and the
mxc URI of every preloaded file, and logs one line per request with credentials redacted.
`

// groups orders the flags in the help.
var groups = []struct {
	title string
	flags []string
}{
	{"Server", []string{"addr", "profile", "tls", "cert-out", "token", "server-name", "preload", "q"}},
	{"Conformance kit", []string{"conformance", "report-addr"}},
	{"Behaviour, on top of -profile (the serving flags apply where -at says)", []string{
		"redirect-status", "chain", "at", "range-chunk", "no-validators", "ignore-range", "ignore-if-range"}},
	{"A fault, built from these flags, at -at; it hits every matching request unless -count says", []string{
		"count", "fault-status", "retry-after", "truncate", "reset", "stall", "stall-for", "drip", "drip-every", "range-fault"}},
}

// rangeFaults names the hostile 206 answers for -range-fault.
var rangeFaults = map[string]testserver.RangeFault{
	"unasked":     testserver.RangeUnasked,
	"wrong-start": testserver.RangeWrongStart,
	"too-long":    testserver.RangeTooLong,
	"wrong-total": testserver.RangeWrongTotal,
	"bad-total":   testserver.RangeBadTotal,
	"star-total":  testserver.RangeStarTotal,
}

// roles names the places -at selects.
var roles = map[string]testserver.Role{
	"homeserver": testserver.RoleHomeserver,
	"cdn":        testserver.RoleCDN,
	"any":        testserver.RoleAny,
}

// origins lists the origins a -chain may name.
var origins = []testserver.OriginName{testserver.OriginHomeserver, testserver.OriginCDNHost,
	testserver.OriginCDN, testserver.OriginCDNTLS, testserver.OriginCDNNamed}

// parse reads the flags. It returns flag.ErrHelp for -h.
func parse(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flagSet(o)
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return o, nil
}

// flagSet defines the flags, which fill o, and the help, which lists them in groups.
func flagSet(o *options) *flag.FlagSet {
	fs := flag.NewFlagSet("mxfetch-testserver", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usageHeader)
		for _, g := range groups {
			fmt.Fprintf(fs.Output(), "\n%s:\n", g.title)
			sub := flag.NewFlagSet("", flag.ContinueOnError)
			sub.SetOutput(fs.Output())
			for _, name := range g.flags {
				f := fs.Lookup(name)
				sub.Var(f.Value, f.Name, f.Usage)
				sub.Lookup(name).DefValue = f.DefValue
			}
			sub.PrintDefaults()
		}
	}
	fs.StringVar(&o.addr, "addr", "127.0.0.1:8008", "`host:port` the homeserver listens on (CDN origins take free ports on the same host)")
	fs.StringVar(&o.profile, "profile", string(testserver.ProfileMediaRepo), "server `behaviour`: "+join(testserver.Profiles))
	fs.BoolVar(&o.tls, "tls", false, "serve the homeserver over https with a self-signed certificate")
	fs.StringVar(&o.preload, "preload", "", "`directory` whose regular files are served as media, streamed from disk, with media IDs\nderived from each file's name, size and modification time (stable across restarts)")
	fs.StringVar(&o.token, "token", testserver.DefaultAccessToken, "the access `token` the server accepts")
	fs.StringVar(&o.serverName, "server-name", testserver.DefaultServerName, "server `name` of the content URIs")
	fs.StringVar(&o.certOut, "cert-out", "", "write the TLS certificate (PEM) to this `file`, for SSL_CERT_FILE")
	fs.BoolVar(&o.quiet, "q", false, "do not log requests")
	fs.BoolVar(&o.conformance, "conformance", false, "publish the conformance catalogue: one mxc URI per scenario, judged from the request log\nin a report served at -report-addr and printed on exit")
	fs.StringVar(&o.reportAddr, "report-addr", "127.0.0.1:0", "`host:port` the conformance report is served on")

	fs.IntVar(&o.redirectStatus, "redirect-status", 0, "`status` of the homeserver's redirects (301, 302, 303, 307, 308, …)")
	fs.StringVar(&o.chain, "chain", "", "comma-separated `origins` a redirect passes through, the last one serving the bytes:\n"+join(origins))
	fs.StringVar(&o.at, "at", "any", "`where` the serving flags and the fault apply: homeserver (its /_matrix endpoints), cdn (the CDN\nobjects) or any")
	fs.Int64Var(&o.rangeChunk, "range-chunk", 0, "answer a single Range with at most `n` bytes, as matrix-media-repo does with 10485760")
	fs.BoolVar(&o.noValidators, "no-validators", false, "send neither ETag nor Last-Modified")
	fs.BoolVar(&o.ignoreRange, "ignore-range", false, "answer every Range with 200 and the whole body")
	fs.BoolVar(&o.ignoreIfRange, "ignore-if-range", false, "honour a Range even when its If-Range does not match")

	fs.IntVar(&o.count, "count", 0, "the fault hits the first `n` matching requests only (0: every one)")
	fs.IntVar(&o.status, "fault-status", 0, "answer with this `status` (a Matrix error; an S3-style XML error at the CDN)")
	fs.StringVar(&o.retryAfter, "retry-after", "", "Retry-After `value` sent with -fault-status")
	fs.Var(&o.truncate, "truncate", "announce the full Content-Length, send `n` bytes (0: half the body), then drop the connection")
	fs.BoolVar(&o.reset, "reset", false, "drop the connection with a TCP reset: at once, or after the bytes of -truncate")
	fs.StringVar(&o.stall, "stall", "", "`where` to stall: \"headers\" reads the request and sends nothing; a number n sends the headers\nand n bytes of the body, then nothing")
	fs.DurationVar(&o.stallFor, "stall-for", 0, "how long a stall lasts before the answer goes on (0: until the client gives up)")
	fs.Int64Var(&o.drip, "drip", 0, "send bodies `n` bytes at a time, pausing -drip-every between pieces")
	fs.DurationVar(&o.dripEvery, "drip-every", 0, "the pause between the pieces of -drip (0: 10ms)")
	fs.StringVar(&o.rangeFault, "range-fault", "", "answer with a hostile 206 of this `kind`: "+joinKeys(rangeFaults))
	return fs
}

// config turns the options into the server's configuration.
func (o *options) config() (testserver.Config, error) {
	b, ok := testserver.ProfileBehavior(testserver.Profile(o.profile))
	if !ok {
		return testserver.Config{}, fmt.Errorf("unknown profile %q (want one of %s)", o.profile, join(testserver.Profiles))
	}
	role, ok := roles[o.at]
	if !ok {
		return testserver.Config{}, fmt.Errorf("-at %q: want homeserver, cdn or any", o.at)
	}
	if o.conformance && o.tls {
		// Every redirect to the http CDN would be a step down from https, which the judges do not
		// expect outside the https-to-http scenario.
		return testserver.Config{}, errors.New("-conformance and -tls: the catalogue's scenarios need a plain-http homeserver (https-to-http covers TLS)")
	}
	if o.redirectStatus != 0 {
		if o.redirectStatus < 300 || o.redirectStatus > 399 {
			return testserver.Config{}, fmt.Errorf("-redirect-status %d: want a 3xx status", o.redirectStatus)
		}
		b.Redirect = o.redirectStatus
	}
	if o.chain != "" {
		b.Chain = nil
		for _, name := range strings.Split(o.chain, ",") {
			n := testserver.OriginName(strings.TrimSpace(name))
			if !slices.Contains(origins, n) {
				return testserver.Config{}, fmt.Errorf("-chain: unknown origin %q (want %s)", name, join(origins))
			}
			b.Chain = append(b.Chain, n)
		}
	}
	if o.rangeChunk < 0 {
		return testserver.Config{}, fmt.Errorf("-range-chunk %d: want a positive size", o.rangeChunk)
	}
	for _, sv := range []*testserver.Serving{&b.Direct, &b.CDN} {
		if (sv == &b.Direct && role == testserver.RoleCDN) || (sv == &b.CDN && role == testserver.RoleHomeserver) {
			continue
		}
		if o.rangeChunk > 0 {
			sv.RangeChunk = o.rangeChunk
		}
		sv.NoValidators = sv.NoValidators || o.noValidators
		sv.IgnoreRange = sv.IgnoreRange || o.ignoreRange
		sv.IgnoreIfRange = sv.IgnoreIfRange || o.ignoreIfRange
	}

	if o.count < 0 || o.drip < 0 || o.dripEvery < 0 || o.stallFor < 0 {
		return testserver.Config{}, errors.New("-count, -drip, -drip-every and -stall-for cannot be negative")
	}
	if o.status != 0 && (o.status < 100 || o.status > 599) {
		return testserver.Config{}, fmt.Errorf("-fault-status %d: want an HTTP status", o.status)
	}
	f := testserver.Fault{At: role, Count: o.count, Status: o.status, RetryAfter: o.retryAfter, Reset: o.reset,
		Truncate: o.truncate.set, TruncateAt: o.truncate.n, StallFor: o.stallFor, Drip: o.drip, DripEvery: o.dripEvery}
	switch o.stall {
	case "":
	case "headers":
		f.Stall = testserver.StallHeaders
	default:
		n, err := strconv.ParseInt(o.stall, 10, 64)
		if err != nil || n < 0 {
			return testserver.Config{}, fmt.Errorf("-stall %q: want headers or a number of bytes", o.stall)
		}
		f.Stall, f.StallAfter = testserver.StallBody, n
	}
	if o.rangeFault != "" {
		if f.Range, ok = rangeFaults[o.rangeFault]; !ok {
			return testserver.Config{}, fmt.Errorf("-range-fault %q: want one of %s", o.rangeFault, joinKeys(rangeFaults))
		}
	}
	switch {
	case f.Status != 0 || f.Truncate || f.Reset || f.Stall != testserver.NoStall || f.Drip > 0 || f.Range != testserver.RangeNone:
		b.Faults = append(b.Faults, f)
	case o.count != 0 || o.retryAfter != "" || o.stallFor != 0 || o.dripEvery != 0:
		return testserver.Config{}, errors.New("-count, -retry-after, -stall-for and -drip-every need a fault: -fault-status, -truncate, -reset, -stall, -drip or -range-fault")
	}

	return testserver.Config{
		Behavior:    &b,
		TLS:         o.tls,
		Addr:        o.addr,
		AccessToken: o.token,
		ServerName:  o.serverName,
	}, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parse(args, stderr)
	if err != nil {
		return err
	}
	cfg, err := o.config()
	if err != nil {
		return err
	}
	if !o.quiet {
		cfg.Logf = func(format string, args ...any) {
			fmt.Fprintf(stderr, time.Now().Format("15:04:05.000 ")+format+"\n", args...)
		}
	}
	srv, err := testserver.Start(cfg)
	if err != nil {
		return err
	}
	var files []*os.File
	defer func() {
		srv.Close()
		for _, f := range files {
			f.Close()
		}
	}()

	fmt.Fprintf(stdout, "profile      %s\n", o.profile)
	fmt.Fprintf(stdout, "homeserver   %s\n", srv.URL)
	for _, n := range []testserver.OriginName{testserver.OriginCDNHost, testserver.OriginCDN, testserver.OriginCDNTLS} {
		fmt.Fprintf(stdout, "%-12s %s\n", n, srv.Origin(n))
	}
	fmt.Fprintf(stdout, "token        %s\n", srv.AccessToken)
	if o.certOut != "" {
		if err := os.WriteFile(o.certOut, srv.CertPEM(), 0o644); err != nil {
			return fmt.Errorf("writing certificate: %w", err)
		}
		fmt.Fprintf(stdout, "certificate  %s\n", o.certOut)
	}
	if o.preload != "" {
		files, err = preload(srv, o.preload, stdout)
		if err != nil {
			return err
		}
	}
	var published []testserver.Published
	if o.conformance {
		published = srv.Publish(testserver.Catalogue())
		stop, err := serveReport(srv, published, o.reportAddr, stdout)
		if err != nil {
			return err
		}
		defer stop()
	}
	fmt.Fprintln(stdout, "ready")
	<-ctx.Done()
	fmt.Fprintln(stdout, "stopping")
	if o.conformance {
		return srv.Judge(published).WriteText(stdout)
	}
	return nil
}

func join[T ~string](list []T) string {
	s := make([]string, len(list))
	for i, v := range list {
		s[i] = string(v)
	}
	return strings.Join(s, ", ")
}

func joinKeys[V any](m map[string]V) string {
	return strings.Join(slices.Sorted(maps.Keys(m)), ", ")
}

// optionalInt is a flag holding a number of bytes that may be left unset.
type optionalInt struct {
	set bool
	n   int64
}

func (v *optionalInt) String() string {
	if v == nil || !v.set {
		return ""
	}
	return strconv.FormatInt(v.n, 10)
}

func (v *optionalInt) Set(s string) error {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return errors.New("want a number of bytes")
	}
	v.set, v.n = true, n
	return nil
}
