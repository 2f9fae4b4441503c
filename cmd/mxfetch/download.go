package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"mime"
	"os"
	"path/filepath"
	"strings"
	"sync"

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
	return json.Marshal(struct {
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
}

func (r *result) fail(err error) *result {
	r.OK = false
	// The URI is already in the result (and in the error line): say only what went wrong.
	var he mautrix.HTTPError
	if errors.As(err, &he) && he.RespError != nil {
		r.ErrCode = he.RespError.ErrCode
	}
	var me *mediaclient.Error
	if errors.As(err, &me) {
		if len(me.Hops) > 0 && len(r.Hops) == 0 {
			r.Hops = hopsJSON(me.Hops)
		}
		if me.URI == r.URI {
			err = me.Err
		}
	}
	r.Error = strings.TrimPrefix(err.Error(), "mediaclient: ")
	return r
}

// names hands out file names within one run, so that two downloads never write the same file.
type names struct {
	mu      sync.Mutex
	claimed map[string]bool
}

// claim returns a path in dir for base that no other download of this run uses. A name already
// taken gets the media ID before its extension: photo.jpg, then photo-<mediaID>.jpg.
func (n *names) claim(dir, base, mediaID string) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	ext := filepath.Ext(base)
	stem := strings.TrimSuffix(base, ext)
	candidates := []string{base, stem + "-" + mediaID + ext}
	for i := 2; ; i++ {
		var p string
		if len(candidates) > 0 {
			p, candidates = filepath.Join(dir, candidates[0]), candidates[1:]
		} else {
			p = filepath.Join(dir, fmt.Sprintf("%s-%s-%d%s", stem, mediaID, i, ext))
		}
		if !n.claimed[p] {
			n.claimed[p] = true
			return p
		}
	}
}

// download fetches every URI of o with o.jobs workers, reports each result and returns errFailed if
// any failed.
func download(ctx context.Context, o *options, c *mediaclient.Client, stdout, stderr io.Writer) error {
	pr := newProgress(!o.quiet && !o.json && isTerminal(stderr), stderr)
	d := &downloader{o: o, c: c, stdout: stdout, pr: pr, names: &names{claimed: map[string]bool{}}}
	results := make([]*result, len(o.uris))
	jobs := o.jobs
	if o.outputIsStdout {
		jobs = 1 // bytes on stdout keep the order of the URIs
	}
	var (
		mu      sync.Mutex
		emitted int
	)
	emit := func() { // print finished results in input order
		mu.Lock()
		defer mu.Unlock()
		for emitted < len(results) && results[emitted] != nil {
			r := results[emitted]
			emitted++
			if o.json {
				json.NewEncoder(stdout).Encode(r)
			}
		}
	}
	idx := make(chan int)
	var wg sync.WaitGroup
	for range min(jobs, len(o.uris)) {
		wg.Go(func() {
			for i := range idx {
				r := d.one(ctx, o.uris[i])
				if !r.OK {
					pr.printf("mxfetch: %s: %s\n", r.URI, r.Error)
				}
				mu.Lock()
				results[i] = r
				mu.Unlock()
				emit()
			}
		})
	}
	for i := range o.uris {
		idx <- i
	}
	close(idx)
	wg.Wait()

	var ok, failed, skipped int
	var bytes int64
	for _, r := range results {
		switch {
		case r.Skipped:
			skipped++
		case r.OK:
			ok++
			bytes += r.Bytes
		default:
			failed++
		}
	}
	pr.finish(ok, failed, skipped, bytes)
	if failed > 0 {
		return errFailed
	}
	return nil
}

type downloader struct {
	o      *options
	c      *mediaclient.Client
	stdout io.Writer
	pr     *progress
	names  *names
}

// one downloads one URI and says how it went.
func (d *downloader) one(ctx context.Context, raw string) *result {
	o := d.o
	r := &result{URI: raw}
	uri, err := mediaclient.ParseURI(raw)
	if err != nil {
		return r.fail(err)
	}
	if !o.outputIsDir && !o.outputIsStdout && !o.clobber {
		if _, err := os.Lstat(o.output); err == nil {
			if o.skipExisting {
				r.OK, r.Skipped, r.Path = true, true, o.output
				return r
			}
			return r.fail(fmt.Errorf("%s exists (use --clobber to overwrite or --skip-existing)", o.output))
		}
	}
	var m *mediaclient.Media
	var part *partial
	if o.thumbnail != "" {
		m, err = d.c.Thumbnail(ctx, uri, mediaclient.ThumbnailOptions{Width: o.width, Height: o.height, Method: o.method, Animated: o.animated})
	} else if o.cont {
		dir := o.output
		if !o.outputIsDir {
			dir = filepath.Dir(o.output)
		}
		part = partialFor(dir, uri)
		m, err = d.c.Download(ctx, uri, mediaclient.DownloadOptions{Offset: part.offset, IfRange: part.validator})
		if err != nil && part.offset > 0 && rangeNotSatisfiable(err) {
			part.discard()
			m, err = d.c.Download(ctx, uri)
		}
	} else {
		m, err = d.c.Download(ctx, uri)
	}
	if err != nil {
		d.verbose(raw, hopsOf(err))
		return r.fail(err)
	}
	defer m.Close()
	r.ContentType, r.Hops = m.ContentType, hopsJSON(m.Hops())
	if fb := m.Fallbacks(); len(fb) > 0 {
		r.Fallback, r.FallbackReason = true, string(fb[0])
		for _, f := range fb[1:] {
			r.FallbackReason += "; " + string(f)
		}
	}
	d.verbose(raw, m.Hops())

	src, err := d.source(m)
	if err != nil {
		return r.fail(err)
	}
	// The SHA-256 is only reported (--json): computing it otherwise would cost a third of the
	// throughput of a large download for nothing.
	sum := checksum{}
	if o.json || o.hash {
		sum.h = sha256.New()
	}
	if o.outputIsStdout {
		r.Path = "-"
		var n int64
		var err error
		if sum.h != nil {
			n, err = io.Copy(io.MultiWriter(d.stdout, sum), src)
		} else {
			n, err = io.Copy(d.stdout, src)
		}
		r.Bytes, r.Hops = n, hopsJSON(m.Hops())
		if err != nil {
			return r.fail(err)
		}
		r.OK, r.SHA256 = true, sum.hex()
		return r
	}

	path := o.output
	if o.outputIsDir {
		path = d.names.claim(o.output, d.baseName(uri, m), uri.FileID)
	}
	r.Path = path
	if _, err := os.Lstat(path); err == nil && !o.clobber {
		if o.skipExisting {
			r.OK, r.Skipped = true, true
			return r
		}
		return r.fail(fmt.Errorf("%s exists (use --clobber to overwrite or --skip-existing)", path))
	}
	total := m.ContentLength
	if total >= 0 {
		total += m.Offset
	}
	tr := d.pr.track(filepath.Base(path), total)
	var n int64
	if part != nil {
		n, err = part.write(path, m, src, io.MultiWriter(sum, tr), o.clobber)
		n += m.Offset
	} else {
		n, err = writeAtomic(path, io.MultiWriter(sum, tr), src, o.clobber)
	}
	tr.done(err == nil)
	r.Bytes, r.Hops = n, hopsJSON(m.Hops()) // a resumed body added hops
	if err != nil {
		return r.fail(err)
	}
	r.OK, r.SHA256 = true, sum.hex()
	return r
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

// baseName picks the file name in the output directory: the server's (sanitised) name, else the
// media ID with an extension from the content type.
func (d *downloader) baseName(uri id.ContentURI, m *mediaclient.Media) string {
	if name := filename.Sanitize(m.FileName); name != "" && d.o.thumbnail == "" {
		return name
	}
	base := uri.FileID
	if d.o.thumbnail != "" {
		base += fmt.Sprintf("-%dx%d", d.o.width, d.o.height)
	}
	if ct, _, err := mime.ParseMediaType(m.ContentType); err == nil && ct != "application/octet-stream" {
		if exts, _ := mime.ExtensionsByType(ct); len(exts) > 0 {
			base += exts[0]
		}
	}
	return base
}

// verbose prints the hops of a download with -v. Origins only: signed query strings never appear.
func (d *downloader) verbose(uri string, hops []mediaclient.Hop) {
	if !d.o.verbose {
		return
	}
	for i, h := range hops {
		creds := "no"
		if h.Credentials {
			creds = "yes"
		}
		d.pr.printf("mxfetch: %s: hop %d: %d %s credentials=%s\n", uri, i+1, h.Status, h.Origin, creds)
	}
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

func hopsOf(err error) []mediaclient.Hop {
	var me *mediaclient.Error
	if errors.As(err, &me) {
		return me.Hops
	}
	return nil
}

// writeAtomic writes src to a temporary file beside path, syncs it and moves it to path: no partial
// file ever stands under the final name. Without clobber an existing file is never replaced.
func writeAtomic(path string, observer io.Writer, src io.Reader, clobber bool) (int64, error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.mxfetch-part")
	if err != nil {
		return 0, fmt.Errorf("cannot write in %s: %w", dir, err)
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	n, err := io.Copy(tmp, io.TeeReader(src, observer))
	if err != nil {
		return n, err
	}
	if err := tmp.Sync(); err != nil {
		return n, err
	}
	if err := tmp.Chmod(0o644); err != nil {
		return n, err
	}
	if err := tmp.Close(); err != nil {
		return n, err
	}
	if err := finalize(tmp.Name(), path, clobber); err != nil {
		return n, err
	}
	done = true
	return n, nil
}

// finalize moves a complete temporary file to path. Without clobber an existing file is never
// replaced: a hard link fails if path appeared meanwhile, where rename would silently replace it.
func finalize(tmp, path string, clobber bool) error {
	if clobber {
		return os.Rename(tmp, path)
	}
	err := os.Link(tmp, path)
	switch {
	case err == nil:
		return os.Remove(tmp)
	case errors.Is(err, fs.ErrExist):
		return fmt.Errorf("%s exists (use --clobber to overwrite or --skip-existing)", path)
	}
	if _, statErr := os.Lstat(path); errors.Is(statErr, fs.ErrNotExist) {
		return os.Rename(tmp, path) // the file system has no hard links
	}
	return err
}
