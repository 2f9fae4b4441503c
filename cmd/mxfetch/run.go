package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"maunium.net/go/mautrix/event"

	"github.com/mxfetch/mxfetch/mediaclient"
)

// usageError is a mistake in the command line: exit status 2, detected before any request.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// errFailed reports that at least one download failed (each failure was already reported).
var errFailed = errors.New("some downloads failed")

// exitCode maps the result of run to the exit status: 0 all downloaded, 1 at least one failed,
// 2 usage error, 128 + the signal's number when a signal stopped the run.
func exitCode(err error) int {
	var ue *usageError
	var se *signalError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		return 2
	case errors.As(err, &se):
		return se.status()
	}
	return 1
}

// options holds the command line once parsed.
type options struct {
	homeserver     string
	token          string
	tokenFile      string
	output         string
	thumbnail      string
	method         string
	animated       bool
	api            string
	noRedirect     bool
	maxRedirects   int
	retries        int
	maxSize        string
	timeoutFlags   // --connect-timeout, --stall-timeout, --max-time, --speed-limit, --speed-time
	cacert         string
	json           bool
	jobs           int
	input          string
	clobber        bool
	cont           bool
	skipExisting   bool
	verbose        bool
	quiet          bool
	demo           bool
	version        bool
	encryptedFile  string
	encrypted      *event.EncryptedFileInfo
	rootCAs        *x509.CertPool // nil: the system's (SSL_CERT_FILE works; see roots.go)
	hash           bool           // compute the SHA-256 even without --json (the demo checks it)
	uris           []string
	inputFile      string // an -i file the downloads read themselves (input.go), instead of uris
	width, height  int
	maxSizeBytes   int64
	outputIsDir    bool
	outputIsStdout bool
	target         *target // -o FILE
}

// validate checks the options and fills in what comes from the environment.
func (o *options) validate(env func(string) string) error {
	if o.homeserver == "" {
		o.homeserver = env("MATRIX_HOMESERVER")
	}
	if o.token != "" && o.tokenFile != "" {
		return usagef("--token and --token-file are mutually exclusive")
	}
	if o.tokenFile != "" {
		data, err := os.ReadFile(o.tokenFile)
		if err != nil {
			return usagef("reading --token-file: %v", err)
		}
		o.token = strings.TrimSpace(string(data))
		if o.token == "" {
			return usagef("--token-file %s is empty", o.tokenFile)
		}
	}
	if o.token == "" {
		o.token = env("MATRIX_ACCESS_TOKEN")
	}
	if o.clobber && o.skipExisting {
		return usagef("--clobber and --skip-existing are mutually exclusive")
	}
	if o.jobs < 1 {
		return usagef("-j must be at least 1")
	}
	if o.maxRedirects < 0 {
		return usagef("--max-redirects must not be negative")
	}
	if o.retries < 0 {
		return usagef("--retries must not be negative")
	}
	switch o.api {
	case "auto", "v1", "v3":
	default:
		return usagef("--api must be auto, v1 or v3, not %q", o.api)
	}
	if o.thumbnail != "" {
		w, h, ok := strings.Cut(strings.ToLower(o.thumbnail), "x")
		var err1, err2 error
		o.width, err1 = strconv.Atoi(w)
		o.height, err2 = strconv.Atoi(h)
		if !ok || err1 != nil || err2 != nil || o.width <= 0 || o.height <= 0 || o.width > 1<<16 || o.height > 1<<16 {
			return usagef("--thumbnail wants WxH with two positive numbers, not %q", o.thumbnail)
		}
	} else if o.method != "" || o.animated {
		return usagef("--method and --animated need --thumbnail")
	}
	if o.method != "" && o.method != "crop" && o.method != "scale" {
		return usagef("--method must be crop or scale, not %q", o.method)
	}
	if err := o.validateTimeouts(); err != nil {
		return err
	}
	if o.maxSize != "" {
		n, err := parseSize(o.maxSize)
		if err != nil {
			return usagef("--max-size: %v", err)
		}
		o.maxSizeBytes = n
	}
	if o.cacert != "" {
		if err := o.loadCACert(); err != nil {
			return err
		}
	}
	if o.cont && (o.thumbnail != "" || o.encryptedFile != "") {
		return usagef("--continue goes with full, unencrypted downloads only")
	}
	if o.encryptedFile != "" && o.thumbnail != "" {
		return usagef("--encrypted-file and --thumbnail are mutually exclusive (an encrypted thumbnail has its own file object)")
	}
	if o.demo {
		return nil
	}
	if o.homeserver == "" && o.token != "" {
		return usagef("no homeserver for the access token: pass --homeserver or set MATRIX_HOMESERVER (a token is never sent to a server named in a URI)")
	}
	if o.encryptedFile != "" {
		if err := o.loadEncryptedFile(); err != nil {
			return err
		}
	}
	if len(o.uris) == 0 && o.input == "" {
		return usagef("no mxc:// URI given (pass URIs or -i FILE)")
	}
	if len(o.uris) > 0 && o.input != "" {
		return usagef("pass URIs or -i FILE, not both")
	}
	for _, u := range o.uris {
		if _, err := mediaclient.ParseURI(u); err != nil {
			return usagef("%v", strings.TrimPrefix(err.Error(), "mediaclient: "))
		}
	}
	return o.checkOutput()
}

// loadCACert reads --cacert into a pool that adds its certificates to the system's.
func (o *options) loadCACert() error {
	data, err := os.ReadFile(o.cacert)
	if err != nil {
		return usagef("reading --cacert: %v", err)
	}
	pool, ok := rootsWith(data)
	if !ok {
		return usagef("--cacert %s holds no PEM certificate", o.cacert)
	}
	o.rootCAs = pool
	return nil
}

// checkOutput decides what -o means and checks that it can be written.
func (o *options) checkOutput() error {
	switch {
	case o.output == "-":
		return o.useStdout()
	case o.output == "":
		o.output, o.outputIsDir = ".", true
	case strings.HasSuffix(o.output, "/") || strings.HasSuffix(o.output, string(filepath.Separator)):
		if err := os.MkdirAll(o.output, 0o755); err != nil {
			return usagef("cannot create output directory: %v", err)
		}
		o.outputIsDir = true
	default:
		if st, err := os.Stat(o.output); err == nil && st.IsDir() {
			o.outputIsDir = true
		}
	}
	dir := o.output
	if !o.outputIsDir {
		if err := checkParent(o.output); err != nil {
			return err
		}
		t, err := resolveTarget(o.output)
		if err != nil {
			return usagef("-o %s: %v", o.output, err)
		}
		if t.inherited && t.fd == 1 {
			return o.useStdout() // -o /dev/stdout is -o -
		}
		o.target = t
		if t.special {
			return nil // any number of URIs, written one after the other
		}
		if len(o.uris) > 1 {
			return usagef("-o %s names one file but %d URIs were given; pass a directory (-o %s/ creates it)", o.output, len(o.uris), o.output)
		}
		dir = t.dir
	}
	f, err := os.CreateTemp(dir, ".mxfetch-check-*")
	if err != nil {
		return usagef("output directory %s is not writable", dir)
	}
	f.Close()
	os.Remove(f.Name())
	return nil
}

// useStdout makes standard output the output.
func (o *options) useStdout() error {
	o.outputIsStdout = true
	if o.json {
		return usagef("--json and -o %s both want standard output", o.output)
	}
	if o.cont {
		return usagef("--continue needs a file to continue, not -o %s", o.output)
	}
	return nil
}

// checkParent says what is wrong with the directory part of -o PATH, if anything.
func checkParent(path string) error {
	dir := filepath.Dir(path)
	for p := dir; ; p = filepath.Dir(p) {
		st, err := os.Stat(p)
		switch {
		case err == nil && st.IsDir() && p == dir:
			return nil
		case err == nil && !st.IsDir():
			return usagef("-o %s: %s is not a directory", path, p)
		case err == nil:
			return usagef("output directory %s does not exist", dir)
		case !errors.Is(err, fs.ErrNotExist) && !isNotDir(err):
			return usagef("-o %s: %v", path, err)
		}
		if filepath.Dir(p) == p {
			return usagef("output directory %s does not exist", dir)
		}
	}
}

func isNotDir(err error) bool { return errors.Is(err, syscall.ENOTDIR) }

// readInput reads URIs from -i, one a line; blank lines and lines starting with # are skipped.
func readInput(path string, stdin io.Reader) ([]string, error) {
	var r io.Reader = stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, usagef("-i: %v", err)
		}
		defer f.Close()
		r = f
	}
	var uris []string
	if err := scanInput(r, func(line string) error { uris = append(uris, line); return nil }); err != nil {
		return nil, err
	}
	return uris, nil
}

// run is the whole command: parse, validate, download. Every line it prints on stderr is escaped.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	var secret redactor // the token, once known
	err := runCommand(ctx, args, stdin, stdout, stderr, &secret)
	var ue *usageError
	var se *signalError
	if err != nil && !errors.As(err, &se) {
		if se = stoppedBy(ctx); se != nil { // stopped before any download began
			fmt.Fprintf(stderr, "mxfetch: %s; nothing was written\n", se)
			return se
		}
	}
	switch {
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "mxfetch: %s\nRun 'mxfetch --help' for usage.\n", escape(secret.clean(err.Error())))
	case errors.Is(err, flag.ErrHelp), errors.Is(err, errFailed), errors.As(err, &se), err == nil:
	default:
		fmt.Fprintf(stderr, "mxfetch: %s\n", escape(secret.clean(err.Error())))
	}
	return err
}

// runCommand runs the command; secret learns the token once the options are read.
func runCommand(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, secret *redactor) error {
	o, fs, err := parseArgs(args)
	if errors.Is(err, flag.ErrHelp) {
		fs.writeHelp(stdout)
		return err
	} else if err != nil {
		return err
	}
	if o.version {
		fmt.Fprintf(stdout, "mxfetch %s\n", mediaclient.Version)
		return nil
	}
	err = o.validate(os.Getenv)
	secret.token = o.token
	if err != nil {
		return err
	}
	if o.demo {
		return runDemo(ctx, o, stdout, stderr)
	}
	if path, ok := o.streamedInput(); ok {
		o.inputFile = path // read by the downloads, twice, never kept (input.go)
	} else if o.input != "" {
		uris, err := readInput(o.input, stdin)
		if err != nil {
			return err
		}
		if o.target != nil && !o.target.special && len(unique(uris)) != 1 {
			return usagef("-o %s names one file but -i gave %d URIs; pass a directory (-o %s/ creates it)", o.output, len(uris), o.output)
		}
		o.uris = uris
	}
	rt := o.transport()
	cs := &clients{o: o, transport: rt, byName: map[string]*clientEntry{}, discover: o.discoveryClient()}
	if o.homeserver != "" {
		base, err := resolveHomeserver(ctx, cs.discover, o.homeserver)
		if err != nil {
			return err
		}
		if o.verbose && base != o.homeserver {
			fmt.Fprintf(stderr, "mxfetch: homeserver %s is %s\n", escape(o.homeserver), escape(secret.clean(base)))
		}
		if cs.fixed, err = o.client(base, rt); err != nil {
			return usagef("%v", strings.TrimPrefix(err.Error(), "mediaclient: new: "))
		}
	}
	d, err := newDownloader(o, cs, stdout, stderr)
	if err != nil {
		return err
	}
	defer d.close()
	cs.note = d.pr.println
	return d.run(ctx)
}

// baseTransport is the HTTP transport of every request: the library's, with --cacert's pool.
func (o *options) baseTransport() *http.Transport {
	t := mediaclient.NewTransport()
	roots := o.rootCAs
	if roots == nil {
		roots = systemRoots() // one bundle file, not a directory of certificates (roots.go)
	}
	if roots != nil {
		t.TLSClientConfig = &tls.Config{RootCAs: roots}
	}
	return t
}

// transport returns the transport for the clients: the library's own, unwrapped (its dialer only
// checks more), so that the library sees through it to a proxy (HTTP_PROXY, HTTPS_PROXY) and
// checks redirect targets there.
// Each download reports its requests through the library's Trace (observe.go).
func (o *options) transport() http.RoundTripper {
	return guardDials(o.baseTransport()) // a looked-up homeserver's downloads keep to their addresses
}

// discoveryClient is the HTTP client of .well-known lookups.
func (o *options) discoveryClient() *http.Client {
	return &http.Client{Transport: guardDials(o.baseTransport()), Timeout: discoveryTimeout, CheckRedirect: checkRedirect}
}

// client builds the mediaclient.Client the options describe, for the homeserver at base.
func (o *options) client(base string, transport http.RoundTripper) (*mediaclient.Client, error) {
	maxRedirects := o.maxRedirects
	if maxRedirects == 0 {
		maxRedirects = -1 // none
	}
	retries := o.retries
	if retries == 0 {
		retries = -1
	}
	opts := mediaclient.Options{
		Transport:            transport,
		HomeserverURL:        base,
		AccessToken:          o.token,
		UserAgent:            "mxfetch/" + mediaclient.Version,
		API:                  mediaclient.API(o.api),
		DisableRedirectParam: o.noRedirect,
		MaxRedirects:         maxRedirects,
		MaxRetries:           retries,
		MaxSize:              o.maxSizeBytes,
	}
	o.applyTimeouts(&opts)
	return mediaclient.New(opts)
}
