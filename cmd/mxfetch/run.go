package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"maunium.net/go/mautrix/event"

	"github.com/mxfetch/mxfetch/mediaclient"
)

//go:embed help.txt
var helpText string

// usageError is a mistake in the command line: exit status 2, detected before any request.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// errFailed reports that at least one download failed (each failure was already reported).
var errFailed = errors.New("some downloads failed")

// exitCode maps the result of run to the exit status: 0 all downloaded, 1 at least one failed,
// 2 usage error.
func exitCode(err error) int {
	var ue *usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		return 2
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
	rootCAs        *x509.CertPool // nil: the system pool (SSL_CERT_FILE works)
	hash           bool           // compute the SHA-256 even without --json (the demo checks it)
	uris           []string
	width, height  int
	maxSizeBytes   int64
	outputIsDir    bool
	outputIsStdout bool
}

func newFlagSet(o *options) *flag.FlagSet {
	fs := flag.NewFlagSet("mxfetch", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.homeserver, "homeserver", "", "")
	fs.StringVar(&o.token, "token", "", "")
	fs.StringVar(&o.tokenFile, "token-file", "", "")
	fs.StringVar(&o.output, "o", "", "")
	fs.StringVar(&o.thumbnail, "thumbnail", "", "")
	fs.StringVar(&o.method, "method", "", "")
	fs.BoolVar(&o.animated, "animated", false, "")
	fs.StringVar(&o.api, "api", "auto", "")
	fs.BoolVar(&o.noRedirect, "no-redirect", false, "")
	fs.IntVar(&o.maxRedirects, "max-redirects", mediaclient.DefaultMaxRedirects, "")
	fs.IntVar(&o.retries, "retries", mediaclient.DefaultMaxRetries, "")
	fs.StringVar(&o.maxSize, "max-size", "", "")
	fs.BoolVar(&o.json, "json", false, "")
	fs.IntVar(&o.jobs, "j", 4, "")
	fs.StringVar(&o.input, "i", "", "")
	fs.BoolVar(&o.clobber, "clobber", false, "")
	fs.BoolVar(&o.skipExisting, "skip-existing", false, "")
	fs.BoolVar(&o.cont, "continue", false, "")
	fs.BoolVar(&o.verbose, "v", false, "")
	fs.BoolVar(&o.quiet, "q", false, "")
	fs.BoolVar(&o.demo, "demo", false, "")
	fs.BoolVar(&o.version, "version", false, "")
	fs.StringVar(&o.encryptedFile, "encrypted-file", "", "")
	return fs
}

// parseArgs parses flags and URIs, which may come in any order ("--" ends the flags).
func parseArgs(args []string) (*options, error) {
	o := &options{}
	fs := newFlagSet(o)
	var rest []string
	if i := indexOf(args, "--"); i >= 0 {
		args, rest = args[:i], args[i+1:]
	}
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usagef("%v", err)
		}
		if fs.NArg() == 0 {
			break
		}
		o.uris = append(o.uris, fs.Arg(0))
		args = fs.Args()[1:]
	}
	o.uris = append(o.uris, rest...)
	return o, nil
}

func indexOf(args []string, s string) int {
	for i, a := range args {
		if a == s {
			return i
		}
	}
	return -1
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
	if o.maxSize != "" {
		n, err := parseSize(o.maxSize)
		if err != nil {
			return usagef("--max-size: %v", err)
		}
		o.maxSizeBytes = n
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
	if o.homeserver == "" {
		return usagef("no homeserver: pass --homeserver URL or set MATRIX_HOMESERVER")
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

// checkOutput decides what -o means and checks that it can be written.
func (o *options) checkOutput() error {
	switch {
	case o.output == "-":
		o.outputIsStdout = true
		if o.json {
			return usagef("--json and -o - both want standard output")
		}
		if o.cont {
			return usagef("--continue needs a file to continue, not -o -")
		}
		return nil
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
		if len(o.uris) > 1 {
			return usagef("-o %s names one file but %d URIs were given; pass a directory", o.output, len(o.uris))
		}
		dir = filepath.Dir(o.output)
	}
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return usagef("output directory %s does not exist", dir)
	}
	f, err := os.CreateTemp(dir, ".mxfetch-check-*")
	if err != nil {
		return usagef("output directory %s is not writable", dir)
	}
	f.Close()
	os.Remove(f.Name())
	return nil
}

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
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		uris = append(uris, line)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("-i: %w", err)
	}
	return uris, nil
}

// run is the whole command: parse, validate, download.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	err := runCommand(ctx, args, stdin, stdout, stderr)
	var ue *usageError
	switch {
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "mxfetch: %v\nRun 'mxfetch --help' for usage.\n", err)
	case errors.Is(err, flag.ErrHelp), errors.Is(err, errFailed), err == nil:
	default:
		fmt.Fprintf(stderr, "mxfetch: %v\n", err)
	}
	return err
}

func runCommand(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	o, err := parseArgs(args)
	if errors.Is(err, flag.ErrHelp) {
		io.WriteString(stdout, helpText)
		return err
	} else if err != nil {
		return err
	}
	if o.version {
		fmt.Fprintf(stdout, "mxfetch %s\n", mediaclient.Version)
		return nil
	}
	if err := o.validate(os.Getenv); err != nil {
		return err
	}
	if o.demo {
		return runDemo(ctx, o, stdout, stderr)
	}
	if o.input != "" {
		uris, err := readInput(o.input, stdin)
		if err != nil {
			return err
		}
		if !o.outputIsDir && !o.outputIsStdout && len(uris) != 1 {
			return usagef("-o %s names one file but -i gave %d URIs; pass a directory", o.output, len(uris))
		}
		o.uris = uris
	}
	client, err := o.client()
	if err != nil {
		return usagef("%v", strings.TrimPrefix(err.Error(), "mediaclient: new: "))
	}
	return download(ctx, o, client, stdout, stderr)
}

// client builds the mediaclient.Client the options describe.
func (o *options) client() (*mediaclient.Client, error) {
	maxRedirects := o.maxRedirects
	if maxRedirects == 0 {
		maxRedirects = -1 // none
	}
	retries := o.retries
	if retries == 0 {
		retries = -1
	}
	var transport http.RoundTripper
	if o.rootCAs != nil {
		t := mediaclient.NewTransport()
		t.TLSClientConfig = &tls.Config{RootCAs: o.rootCAs}
		transport = t
	}
	return mediaclient.New(mediaclient.Options{
		Transport:            transport,
		HomeserverURL:        o.homeserver,
		AccessToken:          o.token,
		UserAgent:            "mxfetch/" + mediaclient.Version,
		API:                  mediaclient.API(o.api),
		DisableRedirectParam: o.noRedirect,
		MaxRedirects:         maxRedirects,
		MaxRetries:           retries,
		MaxSize:              o.maxSizeBytes,
	})
}
