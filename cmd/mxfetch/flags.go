package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/mxfetch/mxfetch/mediaclient"
)

// flagDef documents one flag of the command line: the help text is generated from these
// definitions, so it cannot omit a flag.
type flagDef struct {
	names []string // the first is the main spelling; one letter means a single dash
	arg   string   // the placeholder of the value, "" for a switch
	usage string   // lines of help; later lines are indented under the first
}

// flagSet is the command line's flag.FlagSet together with the definitions its help comes from.
type flagSet struct {
	*flag.FlagSet
	defs []flagDef
}

func (fs *flagSet) def(names []string, arg, usage string, define func(name string)) {
	for _, n := range names {
		define(n)
	}
	fs.defs = append(fs.defs, flagDef{names: names, arg: arg, usage: usage})
}

func (fs *flagSet) str(p *string, names []string, arg, usage string) {
	fs.def(names, arg, usage, func(n string) { fs.StringVar(p, n, *p, "") })
}

func (fs *flagSet) int(p *int, names []string, arg, usage string) {
	fs.def(names, arg, usage, func(n string) { fs.IntVar(p, n, *p, "") })
}

func (fs *flagSet) bool(p *bool, names []string, usage string) {
	fs.def(names, "", usage, func(n string) { fs.BoolVar(p, n, *p, "") })
}

func spell(n ...string) []string { return n }

// newFlagSet defines every flag, with its help, writing into o.
func newFlagSet(o *options) *flagSet {
	fs := &flagSet{FlagSet: flag.NewFlagSet("mxfetch", flag.ContinueOnError)}
	fs.SetOutput(io.Discard)
	o.api, o.jobs = "auto", 4
	o.maxRedirects, o.retries = mediaclient.DefaultMaxRedirects, mediaclient.DefaultMaxRetries

	fs.str(&o.homeserver, spell("homeserver"), "URL|NAME", `the homeserver (env MATRIX_HOMESERVER): a base URL, or a server name such
as example.org, looked up at https://NAME/.well-known/matrix/client (a URL
without a scheme is tried as https); without it, and without a token, the
server named in each URI is looked up the same way, and a public name may
not lead into loopback, private or link-local addresses`)
	fs.str(&o.token, spell("token"), "TOKEN", "access token (env MATRIX_ACCESS_TOKEN), sent to the homeserver only")
	fs.str(&o.tokenFile, spell("token-file"), "PATH", "read the access token from a file")
	fs.str(&o.output, spell("o", "output"), "PATH", `where to write: an existing directory, or a path ending in / (created
with its parents), receives the files; otherwise PATH is the file name
(one URI only); no -o: the current directory. "-" writes to stdout, as
do /dev/stdout, /dev/stderr and /dev/fd/N to theirs; to a terminal, text
only (a download stops before binary or control bytes: pipe it for
those). A device or FIFO (/dev/null) is written to, never replaced`)
	fs.str(&o.thumbnail, spell("thumbnail"), "WxH", "fetch a thumbnail of that size instead of the full media")
	fs.str(&o.method, spell("method"), "crop|scale", "thumbnail method (none sent unless given)")
	fs.bool(&o.animated, spell("animated"), "ask for an animated thumbnail")
	fs.str(&o.api, spell("api"), "auto|v1|v3", `endpoint family (default auto: v1 when a token is set and /versions
offers it, falling back to v3; an explicit v1 or v3 never falls back)`)
	fs.bool(&o.noRedirect, spell("no-redirect"), `do not send allow_redirect; the server must serve the bytes itself (a v1
server that redirects anyway is still followed)`)
	fs.int(&o.maxRedirects, spell("max-redirects"), "N", fmt.Sprintf("redirects followed at most (default %d): N succeed, N+1 fail", mediaclient.DefaultMaxRedirects))
	fs.int(&o.retries, spell("retries"), "N", fmt.Sprintf("retries of transient failures (5xx, 429, resets), default %d", mediaclient.DefaultMaxRetries))
	fs.seconds(&o.connectTimeout, spell("connect-timeout"), fmt.Sprintf(`give up connecting to a server (DNS, TCP, TLS) after SECONDS, default %v;
0: no limit but the system's. A connection that fails is retried`, mediaclient.DefaultConnectTimeout.Seconds()))
	fs.seconds(&o.stallTimeoutFlag, spell("stall-timeout"), fmt.Sprintf(`the longest silence: no answer headers, or no new byte of a body, for
SECONDS is a stall, default %v (the library's); 0: never. A stalled body
is resumed with Range, a stalled request retried. A slow download that
keeps moving is never cut off (--speed-limit sets a floor)`, mediaclient.DefaultStallTimeout.Seconds()))
	fs.seconds(&o.maxTime, spell("m", "max-time"), `give up on each URI after SECONDS in all, retries and resumes included;
default and 0: no limit, so that a large file on a slow link finishes`)
	fs.seconds(&o.uploadWait, spell("upload-wait"), `wait up to SECONDS for media that is not uploaded yet (the server's 504
M_NOT_YET_UPLOADED), asking again; default and 0: report it at once`)
	fs.str(&o.speedLimit, spell("Y", "speed-limit"), "BYTES", fmt.Sprintf(`a body slower than BYTES per second for --speed-time SECONDS counts as
stalled (curl's pair; either alone sets the other to %d byte/s or %v s)`, defaultSpeedLimit, defaultSpeedTime.Seconds()))
	fs.seconds(&o.speedTime, spell("y", "speed-time"), "see --speed-limit")
	fs.str(&o.maxSize, spell("max-size"), "SIZE", "refuse media larger than this (100M; K, M, G, T are powers of 1024)")
	fs.str(&o.cacert, spell("cacert"), "FILE", `also trust the CA certificates in FILE (PEM); SSL_CERT_FILE=FILE
replaces the system's certificates instead`)
	fs.bool(&o.json, spell("json"), "one JSON object per URI on stdout, with the keys listed below")
	fs.str(&o.encryptedFile, spell("encrypted-file"), "PATH", `decrypt while downloading: PATH holds the "file" object of an encrypted
event (JSON); nothing is written unless the SHA-256 matches (with -o -,
the plaintext waits in a private temporary file until it matched)`)
	fs.int(&o.jobs, spell("j", "jobs"), "N", "parallel downloads (default 4); -j4 works too")
	fs.str(&o.input, spell("i", "input"), "FILE", `read URIs from FILE, one per line ("-" for stdin); a URI given more than
once is downloaded once and reported for each time it was given`)
	fs.bool(&o.clobber, spell("clobber"), "replace existing regular files, atomically (never a device or a link)")
	fs.bool(&o.skipExisting, spell("skip-existing"), "leave existing files alone and count them as done")
	fs.bool(&o.cont, spell("continue"), `keep the partial copy of a failed or interrupted download (a hidden .part
file beside the output, locked while in use) and finish it in a later
--continue run: Range, with If-Range when the server gave an ETag or
Last-Modified; media bytes never change, so without them the total size
is checked instead. A copy that no longer fits the media is discarded
and the download starts over`)
	fs.bool(&o.verbose, spell("v", "verbose"), `print each request to stderr: method, origin and path (never the query),
status, whether credentials were sent, what caused a retry or a resume`)
	fs.bool(&o.quiet, spell("q", "quiet", "s", "silent"), "no progress bars and no retry notes; failures are still printed")
	fs.bool(&o.demo, spell("demo"), "run the whole story against the embedded test server")
	fs.bool(&o.version, spell("version"), "print the version")
	return fs
}

// jsonKeys documents every key of a --json result, in order; a test checks them against result.
var jsonKeys = []struct{ key, doc string }{
	{"uri", "the URI as given"},
	{"ok", "true when the file is complete (or was skipped)"},
	{"path", `where it was written ("-" for stdout); on failure null, or the
partial copy kept for --continue (or the stream that took some bytes)`},
	{"bytes", `the size of the file as written; on failure 0, or the size of the
kept partial copy (or the bytes the stream took)`},
	{"sha256", "the SHA-256 of the file as written, null on failure"},
	{"content_type", "the Content-Type of the answer"},
	{"hops", `every request sent: [{"step","attempt","method","origin","path",
"status","credentials","error"}]; step says why it was sent (request,
redirect, retry, resume, …), path never holds the query`},
	{"fallback", "true when the client stepped back from its first plan"},
	{"fallback_reason", `why: "parameter rejected", "v1 unrecognized", "redirect refused"`},
	{"skipped", "true when --skip-existing left an existing file alone"},
	{"error", "what went wrong, null on success"},
	{"errcode", "the Matrix errcode of the failure (M_NOT_FOUND, …), or null"},
}

// writeHelp writes the help, generated from the flag definitions.
func (fs *flagSet) writeHelp(w io.Writer) {
	var b strings.Builder
	b.WriteString(`mxfetch downloads Matrix media through MSC3860 redirects, sending the access token to the
homeserver only.

Usage:
  mxfetch [flags] MXC_URI...

Flags (curl spellings work too: --output, -j4, -vq, -o-):
`)
	const col = 24
	for _, d := range fs.defs {
		var spell []string
		for _, n := range d.names {
			if len(n) == 1 {
				spell = append(spell, "-"+n)
			} else {
				spell = append(spell, "--"+n)
			}
		}
		head := "  " + strings.Join(spell, ", ")
		if d.arg != "" {
			head += " " + d.arg
		}
		lines := strings.Split(d.usage, "\n")
		if len(head) >= col-1 {
			b.WriteString(head + "\n" + strings.Repeat(" ", col))
		} else {
			b.WriteString(head + strings.Repeat(" ", col-len(head)))
		}
		b.WriteString(lines[0] + "\n")
		for _, l := range lines[1:] {
			b.WriteString(strings.Repeat(" ", col) + l + "\n")
		}
	}
	b.WriteString("  -h, --help            print this help\n\nJSON keys (--json), every one present in each object:\n")
	for _, k := range jsonKeys {
		head := "  " + k.key
		lines := strings.Split(k.doc, "\n")
		b.WriteString(head + strings.Repeat(" ", max(col-len(head), 1)) + lines[0] + "\n")
		for _, l := range lines[1:] {
			b.WriteString(strings.Repeat(" ", col) + l + "\n")
		}
	}
	b.WriteString(`
Failures are printed on stderr as they happen (above the progress bars), with the origin that
answered; -v adds every request. Server text is shown with control and format characters escaped.

SECONDS is a number of seconds (2.5) or a duration (1m30s, 300ms).

Exit status: 0 all downloaded; 1 at least one failed; 2 usage error; 130 interrupted (SIGINT,
Ctrl-C), 143 terminated (SIGTERM) and 129 hung up (SIGHUP), as a shell reports curl killed by
them: a --continue partial copy is kept, anything else unfinished removed, and one line says
which. SIGPIPE is ignored: a closed stderr does not stop the downloads.
`)
	io.WriteString(w, b.String())
}

// curlSpellings rewrites the curl and getopt habits the flag package does not know into its own
// form: "-j4" and "-ofile" (a one-letter flag with its value attached) become "-j" "4", and "-vq"
// (one-letter switches run together) becomes "-v" "-q". Arguments after "--", values of flags and
// the flag package's own spellings are left alone.
func (fs *flagSet) curlSpellings(args []string) []string {
	isBool := isBoolFlag
	var out []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return append(out, args[i:]...)
		}
		if len(a) < 2 || a[0] != '-' {
			out = append(out, a)
			continue
		}
		name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if f := fs.Lookup(name); f != nil {
			out = append(out, a)
			if !hasValue && !isBool(f) && i+1 < len(args) {
				i++
				out = append(out, args[i]) // the value, whatever it looks like
			}
			continue
		}
		if a[1] == '-' || hasValue {
			out = append(out, a) // an unknown flag: the flag package says so
			continue
		}
		if f := fs.Lookup(a[1:2]); f != nil && !isBool(f) {
			out = append(out, a[:2], a[2:])
			continue
		}
		all := true
		for _, c := range a[1:] {
			f := fs.Lookup(string(c))
			all = all && f != nil && isBool(f)
		}
		if !all {
			out = append(out, a)
			continue
		}
		for _, c := range a[1:] {
			out = append(out, "-"+string(c))
		}
	}
	return out
}

// parseArgs parses flags and URIs, which may come in any order ("--" ends the flags).
func parseArgs(args []string) (*options, *flagSet, error) {
	o := &options{}
	fs := newFlagSet(o)
	args = fs.curlSpellings(args)
	if bad := fs.unknown(args); bad != "" {
		return nil, fs, usagef("unknown flag %s", bad)
	}
	var rest []string
	if i := indexOf(args, "--"); i >= 0 {
		args, rest = args[:i], args[i+1:]
	}
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, fs, err
			}
			return nil, fs, usagef("%v", err)
		}
		if fs.NArg() == 0 {
			break
		}
		o.uris = append(o.uris, fs.Arg(0))
		args = fs.Args()[1:]
	}
	o.uris = append(o.uris, rest...)
	return o, fs, nil
}

// unknown returns the first flag in args that is not defined, spelled as it was given ("--bogus",
// where the flag package would say "-bogus"), or "". It reads args as the flag package will:
// values of flags are skipped, "--" ends the flags, and -h and --help are known.
func (fs *flagSet) unknown(args []string) string {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return ""
		}
		if len(a) < 2 || a[0] != '-' {
			continue // a URI
		}
		name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		f := fs.Lookup(name)
		switch {
		case name == "h" || name == "help":
		case f == nil:
			spelled, _, _ := strings.Cut(a, "=")
			return spelled
		case !hasValue && !isBoolFlag(f):
			i++ // its value
		}
	}
	return ""
}

func isBoolFlag(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

func indexOf(args []string, s string) int {
	for i, a := range args {
		if a == s {
			return i
		}
	}
	return -1
}
