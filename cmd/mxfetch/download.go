package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"hash/maphash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"golang.org/x/term"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/mxfetch/mxfetch/internal/filename"
	"github.com/mxfetch/mxfetch/mediaclient"
)

// result is what --json prints for one URI.
type result struct {
	URI            string `json:"uri"`
	OK             bool   `json:"ok"`
	Path           string `json:"path"`
	Bytes          int64  `json:"bytes"`
	SHA256         string `json:"sha256"`
	ContentType    string `json:"content_type"`
	Hops           []hop  `json:"hops"`
	Fallback       bool   `json:"fallback"`
	FallbackReason string `json:"fallback_reason,omitempty"`
	Skipped        bool   `json:"skipped,omitempty"`
	Error          string `json:"error,omitempty"`
	ErrCode        string `json:"errcode,omitempty"`

	origin string // the origin that answered last, for the failure line
	status int    // the status of a failed answer, or 0
	ending        // whether the run's own limits ended it, and what was kept
}

// MarshalJSON writes every documented key, with null for what is unknown (no path for a failed
// download, no error for a good one) and an empty list for no hops.
func (r result) MarshalJSON() ([]byte, error) {
	str := func(s string) *string {
		if s == "" {
			return nil
		}
		return &s
	}
	hops := r.Hops
	if hops == nil {
		hops = []hop{}
	}
	data, err := json.Marshal(struct {
		URI            string  `json:"uri"`
		OK             bool    `json:"ok"`
		Path           *string `json:"path"`
		Bytes          int64   `json:"bytes"`
		SHA256         *string `json:"sha256"`
		ContentType    *string `json:"content_type"`
		Hops           []hop   `json:"hops"`
		Fallback       bool    `json:"fallback"`
		FallbackReason *string `json:"fallback_reason"`
		Skipped        bool    `json:"skipped"`
		Error          *string `json:"error"`
		ErrCode        *string `json:"errcode"`
	}{r.URI, r.OK, str(r.Path), r.Bytes, str(r.SHA256), str(r.ContentType), hops, r.Fallback, str(r.FallbackReason), r.Skipped, str(r.Error), str(r.ErrCode)})
	return jsonEscapeInvisible(data), err
}

// jsonEscapeInvisible rewrites the characters escape would show escaped (DEL, C1 controls, format
// characters) as \u escapes, which encoding/json leaves raw: the same JSON value, safe to print on
// a terminal. Outside strings JSON holds only ASCII, so every such character is inside a string.
func jsonEscapeInvisible(data []byte) []byte {
	if !needsEscape(string(data)) {
		return data
	}
	var b bytes.Buffer
	for len(data) > 0 {
		r, size := utf8.DecodeRune(data)
		switch {
		case !escapedRune(r):
			b.Write(data[:size])
		case r > 0xffff:
			r1, r2 := utf16.EncodeRune(r)
			fmt.Fprintf(&b, `\u%04x\u%04x`, r1, r2)
		default:
			fmt.Fprintf(&b, `\u%04x`, r)
		}
		data = data[size:]
	}
	return b.Bytes()
}

func (r *result) fail(err error) *result {
	r.OK = false
	r.deadline = errors.Is(err, context.DeadlineExceeded)
	r.stopped = errors.Is(err, context.Canceled)
	// The URI is already in the result (and in the error line): say only what went wrong.
	var he mautrix.HTTPError
	if errors.As(err, &he) {
		if he.RespError != nil {
			r.ErrCode = he.RespError.ErrCode
		}
		if he.Response != nil {
			r.status = he.Response.StatusCode
		}
	}
	var me *mediaclient.Error
	if errors.As(err, &me) {
		if len(me.Hops) > 0 && len(r.Hops) == 0 {
			r.Hops = hopsJSON(me.Hops)
		}
		if me.URI == r.URI {
			err = me.Err
		}
		if len(r.Hops) > 0 && r.origin == "" {
			r.origin = r.Hops[len(r.Hops)-1].Origin
		}
	} else {
		r.origin = "" // a local failure: no server to name
	}
	r.Error = strings.TrimPrefix(err.Error(), "mediaclient: ")
	return r
}

// settle makes a failed result say what is on disk: the partial copy kept for --continue (its path
// and size), the bytes a stream (stdout, a special file) already took, or else nothing (path null,
// 0 bytes): the unfinished file was removed.
func (r *result) settle(stream bool) {
	switch {
	case r.OK:
	case r.kept != "":
		r.Path = r.kept
	case stream:
	default:
		r.removed, r.Path, r.Bytes = r.Bytes, "", 0
	}
}

// names hands out file names within one run, so that two downloads never write the same file.
// It keeps the names as hashes: a name whose hash another name had gets the longer form, which is
// harmless, and memory does not grow with the names' length.
type names struct {
	mu      sync.Mutex
	seed    maphash.Seed
	claimed map[uint64]struct{}
}

// claim returns a name for base that no other download of this run uses. A name already taken
// gets the media ID before its extension: photo.jpg, then photo-<mediaID>.jpg. Every name fits
// filename.MaxLen.
func (n *names) claim(base, mediaID string) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	ext := filepath.Ext(base)
	stem := strings.TrimSuffix(base, ext)
	for i := 1; ; i++ {
		var name string
		switch i {
		case 1:
			name = base
		case 2:
			name = filename.Fit(stem+"-"+mediaID, ext)
		default:
			name = filename.Fit(fmt.Sprintf("%s-%s-%d", stem, mediaID, i-1), ext)
		}
		h := maphash.String(n.seed, name)
		if _, taken := n.claimed[h]; !taken {
			n.claimed[h] = struct{}{}
			return name
		}
	}
}

// downloader runs the downloads of one command line.
type downloader struct {
	o       *options
	clients *clients
	stdout  io.Writer
	stderr  io.Writer
	fd      *os.File // -o /dev/fd/N: the descriptor, one *os.File for the run (its finalizer closes it)
	tty     bool     // the bytes go to a terminal: text only (terminal.go)
	pr      *progress
	names   *names
	dir     *outDir // the output directory, or the directory of -o FILE; nil for stdout
}

func newDownloader(o *options, cs *clients, stdout, stderr io.Writer) (*downloader, error) {
	toStderr := o.target != nil && o.target.inherited && o.target.fd == 2
	tty := o.outputIsTerminal(stdout)
	live := !o.quiet && !o.json && isTerminal(stderr) && !tty && !toStderr
	d := &downloader{o: o, clients: cs, stdout: stdout, stderr: stderr, tty: tty, names: &names{seed: maphash.MakeSeed(), claimed: map[uint64]struct{}{}}}
	switch {
	case o.outputIsStdout, o.target != nil && o.target.special:
	case o.outputIsDir:
		dir, err := openOutDir(o.output)
		if err != nil {
			return nil, err
		}
		d.dir = dir
	default:
		dir, err := openOutDir(o.target.dir)
		if err != nil {
			return nil, err
		}
		d.dir = dir
	}
	d.pr = newProgress(live, stderr)
	d.pr.secret = redactor{token: o.token}
	return d, nil
}

func (d *downloader) close() {
	if d.dir != nil {
		d.dir.close()
	}
}

// outputIsTerminal reports whether the media bytes go to a terminal: progress bars would mix with
// them.
func (o *options) outputIsTerminal(stdout io.Writer) bool {
	if o.outputIsStdout {
		return isTerminal(stdout)
	}
	if o.target == nil || !o.target.special {
		return false
	}
	if o.target.inherited {
		return term.IsTerminal(o.target.fd)
	}
	st, err := os.Stat(o.output)
	if err != nil || st.Mode()&fs.ModeCharDevice == 0 {
		return false
	}
	f, err := os.OpenFile(o.output, os.O_WRONLY, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	return isTerminal(f)
}

// unique returns the URIs without repeats (by their canonical form), in order.
func unique(uris []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, u := range uris {
		if k := canonical(u); !seen[k] {
			seen[k] = true
			out = append(out, u)
		}
	}
	return out
}

// run fetches every URI with o.jobs workers, each distinct URI once, reports one result per URI
// given, and returns errFailed if any failed. Files finished in an output directory are committed
// in batches (see committer): a result is reported once its file is synced and under its name.
// Without --json no result is kept once reported, and the URIs of an -i file are read twice rather
// than kept: memory does not grow with the number of files beyond a few bytes each.
func (d *downloader) run(ctx context.Context) error {
	o := d.o
	in := inputs{uris: o.uris, path: o.inputFile}
	pl, err := planInputs(in, o.json)
	if err != nil {
		return err
	}
	workers := o.jobs
	if o.outputIsStdout || o.target != nil && o.target.special {
		workers = 1 // bytes in one stream keep the order of the URIs
	}
	rep := &reporter{d: d, ctx: ctx, repeats: pl.repeats, jobOf: pl.jobOf}
	if o.json {
		rep.results = make([]*result, pl.jobs)
	}
	var cm *committer
	if d.dir != nil {
		if o.outputIsDir {
			d.dir.scan()
		}
		cm = newCommitter(d.dir, rep.committed)
	}
	type job struct {
		ji  int
		raw string
	}
	next := make(chan job)
	var wg sync.WaitGroup
	for range min(workers, pl.jobs) {
		wg.Go(func() {
			for j := range next {
				r, p := d.one(ctx, j.raw)
				if p != nil {
					p.job, p.r = j.ji, r
					cm.add(p)
					continue
				}
				rep.done(j.ji, r)
			}
		})
	}
	ji := 0
	err = in.each(func(i int, raw string) error {
		if !pl.agrees(i, raw) {
			return errInputChanged
		}
		if pl.isFirst(i) {
			next <- job{ji, raw}
			ji++
		}
		return nil
	})
	close(next)
	wg.Wait()
	if cm != nil {
		cm.close() // finished files are committed even when the run was stopped
	}
	memStats(pl.jobs)
	if err == nil && ji != pl.jobs {
		err = errInputChanged
	}

	line := fmt.Sprintf("%d downloaded, %d failed", rep.ok, rep.failed)
	if rep.skipped > 0 {
		line += fmt.Sprintf(", %d skipped", rep.skipped)
	}
	if rep.stopped > 0 {
		line += fmt.Sprintf(", %d interrupted", rep.stopped)
	}
	if n := pl.given - pl.jobs; n > 0 {
		line += fmt.Sprintf(", %d repeated URI(s) fetched once", n)
	}
	if se := stoppedBy(ctx); se != nil && rep.queued > 0 {
		d.pr.printf("mxfetch: %s before %d download(s) began", se, rep.queued)
	}
	d.pr.finish(fmt.Sprintf("%s: %s in %v", line, humanBytes(rep.total), since(d.pr.start)))
	if err != nil {
		return err
	}
	if se := stoppedBy(ctx); se != nil && rep.stopped > 0 {
		return se
	}
	if rep.outErr != nil {
		return fmt.Errorf("the --json results could not be written to standard output: %w", rep.outErr)
	}
	if rep.failed+rep.stopped > 0 {
		return errFailed
	}
	return nil
}

// memStats reports the memory statistics of the run, in builds that ask for it (memstats.go).
var memStats = func(files int) {}

// reporter reports each job's result once it is final: its line when it failed or was stopped, the
// counts of the summary, and with --json one line per URI given, in the order given.
type reporter struct {
	d       *downloader
	ctx     context.Context
	repeats map[int32]int32 // read only

	mu                                   sync.Mutex
	ok, failed, skipped, stopped, queued int
	total                                int64
	results                              []*result // --json only: each job's result
	jobOf                                []int32   // --json only: the job of each URI given
	emitted                              int       // --json only: URIs given whose line is printed
	outErr                               error     // --json only: the first failure to write a line
}

// done reports the final result of job ji.
func (rp *reporter) done(ji int, r *result) {
	d := rp.d
	if !r.OK {
		if line := d.explain(rp.ctx, r, 1+int(rp.repeats[int32(ji)])); line != "" {
			d.pr.println(line)
		}
	}
	rp.mu.Lock()
	defer rp.mu.Unlock()
	switch {
	case r.Skipped:
		rp.skipped++
	case r.OK:
		rp.ok++
		rp.total += r.Bytes
	case r.stopped:
		rp.stopped++
		if r.queued {
			rp.queued++
		}
	default:
		rp.failed++
	}
	if rp.results == nil {
		return
	}
	rp.results[ji] = r
	for rp.emitted < len(rp.jobOf) {
		r := rp.results[rp.jobOf[rp.emitted]]
		if r == nil {
			break
		}
		c := *r
		c.URI = d.o.uris[rp.emitted]
		data, _ := json.Marshal(c)
		data = []byte(d.pr.secret.clean(string(data))) // never a quote: still JSON
		if _, err := d.stdout.Write(append(data, '\n')); err != nil && rp.outErr == nil {
			rp.outErr = err
		}
		rp.emitted++
	}
}

// committed reports a file its batch's commit kept, or did not.
func (rp *reporter) committed(p *pending) {
	r := p.r
	if p.err != nil {
		r.fail(p.err)
		r.stopped = false // a commit fails on its own, never by the run's end
		r.settle(false)   // the file was removed
	} else {
		r.OK = true
		if rp.d.dir.partials && rp.d.o.thumbnail == "" {
			rp.d.dir.removeStalePartial(p.uri)
		}
	}
	rp.done(p.job, r)
}

// explain names the run's own limits in the error of a failed download (a signal, --max-time)
// and returns the line that reports it: the failure line, the line that says what an interruption
// kept or removed, or "" for a download the interruption kept from starting.
func (d *downloader) explain(ctx context.Context, r *result, times int) string {
	switch {
	case r.stopped && ctx.Err() != nil:
		if se := stoppedBy(ctx); se != nil {
			r.Error = se.Error()
		}
		if r.queued {
			return ""
		}
		return d.interruptLine(ctx, r)
	case r.stopped:
		r.stopped = false // a cancellation that is not the run's: a plain failure
	case r.deadline && d.o.maxTime.d > 0:
		r.Error = fmt.Sprintf("gave up: --max-time %v passed, after %d bytes (%s)", d.o.maxTime.d, r.Bytes+r.removed, r.Error)
	}
	return d.failureLine(r, times)
}

// failureLine says what went wrong with one URI, where, and what might help.
func (d *downloader) failureLine(r *result, times int) string {
	msg := "mxfetch: " + r.URI + ": " + truncate(r.Error, 500)
	if r.origin != "" && !strings.Contains(r.Error, r.origin) {
		msg += " (from " + r.origin + ")"
	}
	if times > 1 {
		msg += fmt.Sprintf(" [given %d times]", times)
	}
	if d.o.token == "" && needsToken(r) {
		msg += "; no access token was given, and a server that serves only authenticated media needs one (--token, --token-file or MATRIX_ACCESS_TOKEN)"
	}
	return msg
}

// needsToken reports a failure that a missing access token may explain.
func needsToken(r *result) bool {
	switch r.ErrCode {
	case "M_MISSING_TOKEN", "M_UNKNOWN_TOKEN", "M_FORBIDDEN", "M_UNAUTHORIZED", "M_NOT_FOUND", "M_UNRECOGNIZED":
		return true
	}
	return r.status == 401 || r.status == 403 || r.status == 404
}

// one downloads one URI and says how it went. A download into a file of an output directory comes
// back pending: its result is final once the file is committed (see committer).
func (d *downloader) one(ctx context.Context, raw string) (*result, *pending) {
	o := d.o
	r := &result{URI: raw}
	start := time.Now()
	defer r.settle(o.outputIsStdout || o.target != nil && o.target.special)
	if err := ctx.Err(); err != nil {
		r.queued = true
		return r.fail(err), nil
	}
	uri, err := mediaclient.ParseURI(raw)
	if err != nil {
		return r.fail(err), nil
	}
	if t := o.target; t != nil && t.exists && !o.clobber {
		if o.skipExisting {
			r.OK, r.Skipped, r.Path = true, true, o.output
			return r, nil
		}
		return r.fail(&errExists{path: o.output}), nil
	}
	c, err := d.clients.forServer(ctx, uri.Homeserver)
	if err != nil {
		return r.fail(err), nil
	}
	ctx = d.clients.guard(ctx, uri.Homeserver)
	ctx = mediaclient.WithTrace(ctx, d.newWatch(raw).trace())
	var part *partial
	if o.cont && d.dir != nil {
		if part, err = d.dir.openPartial(uri); err != nil {
			return r.fail(err), nil
		}
		defer func() {
			if k := part.kept(); !r.OK && k > 0 {
				r.kept, r.Bytes = d.dir.display(part.name), k
			}
			part.close()
		}()
	}
	m, err := d.request(ctx, c, uri, part)
	if err != nil {
		return r.fail(err), nil
	}
	defer m.Close()
	r.ContentType = m.ContentType
	if d.details() {
		r.Hops = hopsJSON(m.Hops())
	}
	if fb := m.Fallbacks(); len(fb) > 0 {
		r.Fallback, r.FallbackReason = true, string(fb[0])
		for _, f := range fb[1:] {
			r.FallbackReason += "; " + string(f)
		}
	}
	src, err := d.source(m)
	if err != nil {
		return r.fail(err), nil
	}
	// The SHA-256 is only reported (--json): computing it otherwise would cost a third of the
	// throughput of a large download for nothing.
	sum := checksum{}
	if o.json || o.hash {
		sum.h = sha256.New()
	}
	var (
		n int64
		p *pending
	)
	observer := func(tr *tracker) io.Writer {
		if sum.h == nil {
			return tr
		}
		return io.MultiWriter(sum, tr)
	}
	if o.outputIsStdout || o.target != nil && o.target.special {
		r.Path = o.output
		tr := d.pr.track(o.output, total(m))
		n, err = d.stream(ctx, start, m, src, observer(tr))
		tr.done()
	} else {
		name := ""
		if o.target != nil {
			name = o.target.name
		} else {
			name = d.names.claim(d.baseName(uri, m), uri.FileID)
			if d.details() {
				r.Path = d.dir.display(name)
			}
		}
		if o.target != nil {
			r.Path = o.output
		}
		// A name the directory did not hold when the run started needs no look: one that
		// appeared since is found when the file is placed, which never replaces it.
		if d.dir.mayExist(name) {
			if err := d.dir.checkFree(name, o.clobber); err != nil {
				if o.skipExisting && errors.Is(err, fs.ErrExist) {
					r.OK, r.Skipped = true, true
					return r, nil
				}
				return r.fail(err), nil
			}
		}
		tr := d.pr.track(name, total(m))
		if part != nil {
			n, err = part.write(name, m, src, observer(tr), o.clobber)
		} else {
			p, n, err = d.dir.writeTemp(name, src, m.ContentLength, observer(tr), o.clobber)
		}
		tr.done()
	}
	r.Bytes = n
	if d.details() {
		r.Hops = hopsJSON(m.Hops()) // a resumed body added hops
	}
	if err != nil {
		return r.fail(err), nil
	}
	r.SHA256 = sum.hex()
	if p != nil {
		p.uri = uri
		r.OK = true // for now: the commit says (reporter.committed)
		return r, p
	}
	r.OK = true
	return r, nil
}

// details reports whether results carry their hops: --json prints them, the demo shows them.
// Otherwise a failure takes them from its error.
func (d *downloader) details() bool { return d.o.json || d.o.hash }

// oneNow downloads one URI and commits its file at once.
func (d *downloader) oneNow(ctx context.Context, raw string) *result {
	r, p := d.one(ctx, raw)
	if p != nil {
		d.dir.commit([]*pending{p})
		if p.err != nil {
			r.fail(p.err)
			r.settle(false)
			return r
		}
		r.OK = true
	}
	return r
}

// total is the size of the whole media, or -1.
func total(m *mediaclient.Media) int64 {
	if m.ContentLength < 0 {
		return -1
	}
	return m.Offset + m.ContentLength
}

// request asks for the media, from where a kept partial copy ends if there is one. A partial copy
// the server shows to be of no use (416, or a changed media) is discarded and the media asked for
// anew.
func (d *downloader) request(ctx context.Context, c *mediaclient.Client, uri id.ContentURI, part *partial) (*mediaclient.Media, error) {
	o := d.o
	switch {
	case o.thumbnail != "":
		return c.Thumbnail(ctx, uri, mediaclient.ThumbnailOptions{Width: o.width, Height: o.height, Method: o.method, Animated: o.animated})
	case part == nil || part.offset == 0:
		return c.Download(ctx, uri)
	}
	m, err := c.Download(ctx, uri, mediaclient.DownloadOptions{Offset: part.offset, IfRange: part.validator})
	why := ""
	switch {
	case err != nil && unusable(err):
		why = strings.TrimPrefix(errors.Unwrap(err).Error(), "mediaclient: ")
	case err == nil && m.Offset > 0 && m.Validator() != "" && m.Validator() != part.validator:
		// A server that ignores If-Range resumed a media whose validator changed.
		m.Close()
		why = fmt.Sprintf("its validator was %s, the media's is now %s", part.validator, m.Validator())
	case err == nil && m.Offset > 0 && part.total > 0 && m.Size() != part.total:
		// Without a validator, the total is what shows the copy to be of this media.
		m.Close()
		why = fmt.Sprintf("it was of %d bytes in all, the media's size is now %d", part.total, m.Size())
	default:
		return m, err
	}
	if !o.quiet || o.verbose {
		d.pr.printf("mxfetch: %s: the partial copy (%d bytes) no longer fits the media (%s); starting over", uri.String(), part.offset, why)
	}
	part.reset()
	return c.Download(ctx, uri)
}

// stream writes the download that began at start to stdout or to a special file, until ctx ends
// or --max-time passes: a FIFO without a reader is waited for that long. Decrypted bytes wait in a
// private temporary file until the hash matched.
func (d *downloader) stream(ctx context.Context, start time.Time, m *mediaclient.Media, src io.Reader, observer io.Writer) (int64, error) {
	var cancel context.CancelFunc
	if d.o.maxTime.d > 0 {
		ctx, cancel = context.WithDeadline(ctx, start.Add(d.o.maxTime.d))
	} else {
		ctx, cancel = context.WithCancel(ctx) // ends the poller's wait on a write at the end
	}
	defer cancel()
	write := func(r io.Reader) (int64, error) {
		if d.tty {
			r = &terminalText{r: r}
		}
		if w := d.inherited(); w != nil {
			return io.Copy(w, r)
		}
		n, err := writeThrough(ctx, d.o.output, r, io.Discard)
		if err != nil && ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
			err = fmt.Errorf("%w (%v)", ctx.Err(), err) // a write the end of ctx cut short
		}
		return n, err
	}
	if d.o.encrypted == nil {
		return write(io.TeeReader(src, observer))
	}
	b, err := buffered(io.TeeReader(src, observer))
	if err != nil {
		return 0, err
	}
	defer b.Close()
	return write(b)
}

// inherited returns the descriptor that receives the bytes, when the output is one that mxfetch
// was given (-o -, /dev/stdout, /dev/stderr, /dev/fd/N), or nil.
func (d *downloader) inherited() io.Writer {
	t := d.o.target
	switch {
	case d.o.outputIsStdout:
		return d.stdout
	case t == nil || !t.inherited:
		return nil
	case t.fd == 2:
		return d.stderr
	}
	if d.fd == nil {
		d.fd = os.NewFile(uintptr(t.fd), d.o.output) // one worker writes to a special file
	}
	return d.fd
}

// checksum is a SHA-256 that may be switched off (nil h): then it takes bytes and computes nothing.
type checksum struct{ h hash.Hash }

func (c checksum) Write(p []byte) (int, error) {
	if c.h != nil {
		c.h.Write(p)
	}
	return len(p), nil
}

func (c checksum) hex() string {
	if c.h == nil {
		return ""
	}
	return hex.EncodeToString(c.h.Sum(nil))
}

// baseName picks the file name in the output directory: the server's (sanitised) name, which the
// library takes from the answer that carried the bytes or else from the homeserver's redirect;
// else the media ID with an extension from the content type, through the same checks.
func (d *downloader) baseName(uri id.ContentURI, m *mediaclient.Media) string {
	if name := filename.Sanitize(m.FileName); name != "" && d.o.thumbnail == "" {
		return name
	}
	stem := uri.FileID
	if d.o.thumbnail != "" {
		stem += fmt.Sprintf("-%dx%d", d.o.width, d.o.height)
	}
	return filename.FromID(stem, filename.Extension(m.ContentType))
}

// hop is a hop as --json prints it.
type hop struct {
	Step        string `json:"step"`
	Attempt     int    `json:"attempt"`
	Method      string `json:"method"`
	Origin      string `json:"origin"`
	Path        string `json:"path"`
	Status      int    `json:"status"`
	Credentials bool   `json:"credentials"`
	Error       string `json:"error,omitempty"`
}

func hopsJSON(hops []mediaclient.Hop) []hop {
	out := make([]hop, len(hops))
	for i, h := range hops {
		out[i] = hop{Step: string(h.Step), Attempt: h.Attempt, Method: h.Method, Origin: h.Origin, Path: h.Path, Status: h.Status, Credentials: h.Credentials}
		if h.Err != nil {
			out[i].Error = h.Err.Error()
		}
	}
	return out
}

func since(t time.Time) time.Duration { return time.Since(t).Round(time.Millisecond) }
