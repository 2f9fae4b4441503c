package mediaclient

// This file holds the resuming body: it reads the media as one stream over as many answers
// ("segments") as it takes. It owns the position in the media, the media's total length, the
// validator and the resume budget. A segment ends where its Content-Range (or Content-Length) says;
// a short 206 (matrix-media-repo answers open ranges with at most 10 MiB) is followed by a request
// for the next range; a segment that breaks off or stalls is resumed with Range (and If-Range when
// the server gave a validator) through a fresh chain from the homeserver. Every answer is checked
// against what was asked and against the total: bytes never land in the wrong place, and the stream
// ends with io.EOF only when exactly the media's bytes were delivered.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// maxResumes bounds how often one body is resumed after a break or a stall.
const maxResumes = 3

// maxSegments bounds how many answers one body may be made of (ranges answered in chunks included).
const maxSegments = 1 << 16

// errClosed is returned by reads after Close.
var errClosed = errors.New("read after close")

// body is the resuming body of one download.
type body struct {
	d *download

	mu     sync.Mutex // guards seg and closed against Close from another goroutine
	seg    *hopBody   // the current segment, nil between segments
	closed bool

	from      int64  // where the stream starts in the media (Media.Offset)
	pos       int64  // the position in the media of the next byte to deliver
	segEnd    int64  // where the current segment ends (exclusive), -1 when unknown
	total     int64  // the media's length, -1 while unknown
	limit     int64  // the size limit, 0 for none
	validator string // a strong ETag or Last-Modified, "" when the server gave none
	resumable bool   // a break may be resumed
	resumes   int
	segments  int
	lastBreak error // why the body was last resumed
	err       error // sticky: returned by every Read once set

	stall      *time.Timer // aborts a read that gets no byte within stallAfter
	stallAfter time.Duration
	stallCause error

	// The low-speed check: bytes delivered since speedStart.
	speedStart time.Time
	speedBytes int64
}

// newBody makes the body of a download from its first successful answer. offset and ifRange are what
// the caller asked for (DownloadOptions).
func newBody(d *download, resp *http.Response) (*body, error) {
	c := d.c
	b := &body{d: d, segEnd: -1, total: -1, limit: d.r.limit}
	// Downloads may be resumed without a validator: the bytes behind an mxc URI never change, and
	// Content-Range's total checks the rest. A thumbnail may be generated anew, so it needs one.
	b.resumable = !c.opts.DisableResume
	b.stallAfter, b.stallCause = c.opts.StallTimeout, ErrStalled
	if c.opts.LowSpeedLimit > 0 && (b.stallAfter <= 0 || c.opts.LowSpeedTime < b.stallAfter) {
		b.stallAfter, b.stallCause = c.opts.LowSpeedTime, ErrTooSlow
	}
	if b.stallAfter > 0 {
		b.stall = time.AfterFunc(time.Hour, b.onStall)
		b.stall.Stop()
	}
	asked := d.r.offset
	if resp.StatusCode != http.StatusPartialContent && asked > 0 && (d.r.ifRange == "" || !matches(resp.Header, d.r.ifRange)) {
		asked = 0 // the whole media anew
	}
	if resp.StatusCode == http.StatusPartialContent && d.r.ifRange != "" {
		// A server that ignores If-Range (matrix-media-repo does) answers a range of whatever it has
		// now: the caller's partial copy is of another version when the validators differ.
		if v := validatorOf(resp.Header); v != "" && v != d.r.ifRange {
			resp.Body.Close()
			return nil, fmt.Errorf("%w: the partial copy's validator is %s, the media's %s", ErrChanged, d.r.ifRange, v)
		}
	}
	b.from = asked
	if b.validator = validatorOf(resp.Header); b.validator == "" && d.r.thumbnail != nil {
		b.resumable = false
	}
	if err := b.accept(resp, asked, d.r.offset > 0, d.r.ifRange); err != nil {
		if !b.recover(err) { // a break while skipping is resumed like any other
			b.Close()
			return nil, err
		}
	}
	return b, nil
}

// accept checks an answer to a request for the media from asked on (ranged tells whether the request
// carried Range) and makes it the current segment. A 200 to a ranged request is the whole media: the
// bytes before asked are skipped.
func (b *body) accept(resp *http.Response, asked int64, ranged bool, ifRange string) error {
	cl := resp.ContentLength
	v := validatorOf(resp.Header)
	if b.validator != "" && v != "" && v != b.validator {
		resp.Body.Close()
		return ErrChanged
	}
	var start, end int64 // the segment, end exclusive; -1 when unknown
	switch {
	case resp.StatusCode == http.StatusPartialContent:
		cr := resp.Header.Get("Content-Range")
		if !ranged {
			resp.Body.Close()
			return fmt.Errorf("%w 206 to a request without Range (Content-Range %q)", ErrUnexpectedStatus, truncateForError(cr))
		}
		first, last, total, ok := parseContentRange(cr)
		switch {
		case !ok:
			resp.Body.Close()
			return fmt.Errorf("%w: malformed Content-Range %q", ErrRangeMismatch, truncateForError(cr))
		case first != asked:
			resp.Body.Close()
			return fmt.Errorf("%w: asked for bytes from %d, got %q", ErrRangeMismatch, asked, truncateForError(cr))
		case total >= 0 && last >= total:
			resp.Body.Close()
			return fmt.Errorf("%w: %q overruns its total", ErrRangeMismatch, truncateForError(cr))
		case cl >= 0 && cl != last-first+1:
			resp.Body.Close()
			return fmt.Errorf("%w: Content-Length %d for %q", ErrRangeMismatch, cl, truncateForError(cr))
		case b.total >= 0 && total >= 0 && total != b.total:
			resp.Body.Close()
			return fmt.Errorf("%w: total length %d, was %d", ErrChanged, total, b.total)
		}
		if total >= 0 {
			b.total = total
		}
		start, end = first, last+1
	default:
		if b.total >= 0 && cl >= 0 && cl != b.total {
			resp.Body.Close()
			return fmt.Errorf("%w: total length %d, was %d", ErrChanged, cl, b.total)
		}
		if asked > 0 && ifRange != "" && !matches(resp.Header, ifRange) {
			resp.Body.Close()
			return ErrChanged
		}
		if cl >= 0 {
			b.total = cl
		}
		start, end = 0, cl
	}
	if b.limit > 0 && b.total > b.limit {
		resp.Body.Close()
		return fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, b.total, b.limit)
	}
	if b.validator == "" {
		b.validator = v
	}
	seg, ok := resp.Body.(*hopBody)
	if !ok { // every answer comes through the chain, which ties its body to the hop
		seg = &hopBody{ReadCloser: resp.Body, ctx: b.d.ctx, cancel: func(error) {}}
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		seg.Close()
		return errClosed
	}
	b.seg = seg
	b.mu.Unlock()
	b.pos, b.segEnd = start, end
	if asked > start {
		return b.skip(asked)
	}
	return nil
}

// skip reads the current segment forward to the position to, discarding what it reads: the server
// sent the whole media where the rest was asked for.
func (b *body) skip(to int64) error {
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	for b.pos < to {
		buf := (*bp)[:min(int64(len(*bp)), to-b.pos)]
		n, err := b.read(buf)
		b.pos += int64(n)
		if err != nil && b.pos < to {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
	}
	return nil
}

// Read reads the media's bytes, across segments.
func (b *body) Read(p []byte) (int, error) {
	for {
		if b.err != nil {
			return 0, b.err
		}
		if b.segment() == nil {
			if err := b.next(); err != nil {
				if b.recover(err) {
					continue
				}
				b.err = b.failure(err)
				return 0, b.err
			}
			continue
		}
		if b.segEnd >= 0 && b.pos >= b.segEnd {
			if err := b.segmentDone(io.EOF); err != nil {
				b.err = err
				return 0, err
			}
			continue
		}
		q := p
		if b.segEnd >= 0 && int64(len(q)) > b.segEnd-b.pos {
			q = q[:b.segEnd-b.pos]
		}
		if b.limit > 0 && int64(len(q)) > b.limit-b.pos+1 {
			q = q[:b.limit-b.pos+1] // one byte past the limit shows that it is passed
		}
		n, err := b.read(q)
		if b.limit > 0 && b.pos+int64(n) > b.limit {
			n = int(b.limit - b.pos)
			b.pos = b.limit
			b.closeSegment()
			b.err = fmt.Errorf("%w: more than %d bytes", ErrTooLarge, b.limit)
			return n, b.err
		}
		b.pos += int64(n)
		if err == nil {
			if n == 0 {
				continue
			}
			return n, nil
		}
		if ferr := b.segmentDone(err); ferr != nil {
			b.err = ferr
			if ferr == io.EOF {
				return n, io.EOF
			}
			if n > 0 {
				return n, nil // the error comes with the next Read
			}
			return 0, ferr
		}
		if n > 0 {
			return n, nil
		}
	}
}

// segmentDone handles the end of the current segment with err (io.EOF when it ended cleanly). It
// returns io.EOF when the media is complete, nil when the body goes on with another segment, or the
// error that ends the body.
func (b *body) segmentDone(err error) error {
	b.closeSegment()
	if err == io.EOF && (b.segEnd < 0 || b.pos == b.segEnd) {
		switch {
		case b.total < 0 || b.pos == b.total:
			return io.EOF
		case b.segEnd >= 0:
			b.d.step = StepNextRange // a short 206: ask for the next range
			return nil
		}
		err = io.ErrUnexpectedEOF // an answer without length ended before the total
	}
	if b.recover(err) {
		return nil
	}
	return b.failure(err)
}

// recover reports whether a break with err is resumed (and counts it).
func (b *body) recover(err error) bool {
	if !b.resumable || b.resumes >= maxResumes || !isBreak(err) || b.d.ctx.Err() != nil {
		return false
	}
	b.resumes++
	b.lastBreak = err
	b.d.step = StepResume
	b.d.c.debug(b.d.ctx, "resuming a broken body", "offset", b.pos, "attempt", b.resumes, "cause", err.Error())
	return true
}

// failure builds the error that ends the body.
func (b *body) failure(err error) error {
	if ctx := b.d.ctx; ctx.Err() != nil {
		err = ctx.Err()
		if cause := context.Cause(ctx); cause != err {
			err = fmt.Errorf("%w: %w", err, cause)
		}
		return err
	}
	if b.lastBreak != nil && !isBreak(err) {
		err = fmt.Errorf("%w (resuming: %w)", b.lastBreak, err)
	}
	if isBreak(err) || errors.Is(err, ErrStalled) || errors.Is(err, ErrTooSlow) {
		total := "?"
		if b.total >= 0 {
			total = strconv.FormatInt(b.total, 10)
		}
		return fmt.Errorf("%w: got %d of %s bytes: %w", ErrTruncated, b.pos, total, err)
	}
	return err
}

// next asks for the media from the current position on.
func (b *body) next() error {
	b.mu.Lock()
	closed := b.closed
	b.mu.Unlock()
	if closed {
		return errClosed
	}
	b.segments++
	if b.segments > maxSegments {
		return fmt.Errorf("%w: more than %d answers for one media", ErrRangeMismatch, maxSegments)
	}
	from := max(b.pos, b.from) // a skip that broke off may have left pos short of the start
	resp, err := b.d.do(from, b.validator)
	if err != nil {
		return err
	}
	return b.accept(resp, from, from > 0, b.validator)
}

// read reads from the current segment, with the stall and low-speed checks.
func (b *body) read(p []byte) (int, error) {
	seg := b.segment()
	if seg == nil {
		return 0, errClosed
	}
	if b.stall != nil {
		b.stall.Reset(b.stallAfter)
	}
	n, err := seg.Read(p)
	if b.stall != nil {
		b.stall.Stop()
	}
	if err != nil && err != io.EOF {
		if cause := seg.cause(); errors.Is(cause, ErrStalled) || errors.Is(cause, ErrTooSlow) {
			err = cause
		}
	}
	if err == nil && b.d.c.opts.LowSpeedLimit > 0 {
		err = b.checkSpeed(n)
	}
	return n, err
}

// checkSpeed is the low-speed check: fewer than LowSpeedLimit bytes a second over LowSpeedTime.
func (b *body) checkSpeed(n int) error {
	o := b.d.c.opts
	now := time.Now()
	if b.speedStart.IsZero() {
		b.speedStart = now
	}
	b.speedBytes += int64(n)
	if el := now.Sub(b.speedStart); el >= o.LowSpeedTime {
		if float64(b.speedBytes) < float64(o.LowSpeedLimit)*el.Seconds() {
			return fmt.Errorf("%w: %d bytes in %v, limit %d bytes/s", ErrTooSlow, b.speedBytes, el.Round(time.Millisecond), o.LowSpeedLimit)
		}
		b.speedStart, b.speedBytes = now, 0
	}
	return nil
}

// onStall runs when a read got no byte for stallAfter: it aborts the segment's connection.
func (b *body) onStall() {
	if seg := b.segment(); seg != nil {
		seg.abort(fmt.Errorf("%w: no data for %v", b.stallCause, b.stallAfter))
	}
}

func (b *body) segment() *hopBody {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.seg
}

func (b *body) closeSegment() {
	b.mu.Lock()
	seg := b.seg
	b.seg = nil
	b.mu.Unlock()
	if seg != nil {
		seg.Close()
	}
	b.speedStart, b.speedBytes = time.Time{}, 0
}

// Close releases the current segment; it is safe to call while a Read is in progress in another
// goroutine, which then returns an error.
func (b *body) Close() error {
	b.mu.Lock()
	b.closed = true
	seg := b.seg
	b.seg = nil
	b.mu.Unlock()
	if b.stall != nil {
		b.stall.Stop()
	}
	if seg != nil {
		return seg.Close()
	}
	return nil
}

// isBreak reports whether err is a body breaking off: a reset, a truncation, a stall.
func isBreak(err error) bool {
	if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, ErrStalled) || errors.Is(err, ErrTooSlow) {
		return true
	}
	var ne net.Error
	var oe *net.OpError
	return errors.As(err, &ne) || errors.As(err, &oe) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// validatorOf returns a response's strong ETag, or else its Last-Modified, or "".
func validatorOf(h http.Header) string {
	if v := h.Get("ETag"); v != "" && !strings.HasPrefix(v, "W/") {
		return v
	}
	return h.Get("Last-Modified")
}

// matches reports whether a response carries the validator v.
func matches(h http.Header, v string) bool {
	return v != "" && (h.Get("ETag") == v || h.Get("Last-Modified") == v)
}

// parseContentRange reads "bytes first-last/total" (total may be "*", given as -1).
func parseContentRange(v string) (first, last, total int64, ok bool) {
	rest, found := strings.CutPrefix(v, "bytes ")
	if !found {
		return 0, 0, 0, false
	}
	rng, tot, found := strings.Cut(rest, "/")
	if !found {
		return 0, 0, 0, false
	}
	a, z, found := strings.Cut(rng, "-")
	if !found {
		return 0, 0, 0, false
	}
	first, err1 := strconv.ParseInt(a, 10, 64)
	last, err2 := strconv.ParseInt(z, 10, 64)
	if err1 != nil || err2 != nil || first < 0 || last < first {
		return 0, 0, 0, false
	}
	total = -1
	if tot != "*" {
		t, err := strconv.ParseInt(tot, 10, 64)
		if err != nil || t <= 0 {
			return 0, 0, 0, false
		}
		total = t
	}
	return first, last, total, true
}
