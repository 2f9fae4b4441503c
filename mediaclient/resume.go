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
	"sync/atomic"
	"syscall"
	"time"

	"maunium.net/go/mautrix"
)

// maxResumes bounds how often one body is resumed after a break or a stall.
const maxResumes = 3

// maxSegments bounds how many answers one body may be made of (ranges answered in chunks included).
const maxSegments = 1 << 16

// minSegment and maxShort bound a server that answers ranges in tiny pieces: a ranged answer that
// ends before the total with fewer than minSegment bytes is short, and more than maxShort of them
// end the body (matrix-media-repo answers with 10 MiB).
const (
	minSegment = 64 << 10
	maxShort   = 64
)

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
	valOrigin origin // the origin that gave the validator (validators are per server)
	immutable bool   // a download: the bytes behind the URI never change
	resumable bool   // a break may be resumed
	resumes   int
	segments  int
	short     int   // ranged answers that ended early with fewer than minSegment bytes
	lastStart int64 // where the current segment started
	lastBreak error // why the body was last resumed
	err       error // sticky: returned by every Read once set

	// The stall check: one timer per body, not one per read (arming a timer on every Read cost a
	// tenth of the throughput). A read records when it began waiting; the timer, when it fires, aborts
	// a read that has waited stallAfter, and otherwise sets itself to when the current wait would be
	// that long.
	stall      *time.Timer
	stallAfter time.Duration
	stallCause error
	waiting    atomic.Int64 // when the read in progress began (UnixNano), 0 when none is
	armed      atomic.Bool  // the timer is set (it lets itself lapse while nobody reads)

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
	b.immutable = d.r.thumbnail == nil
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
	b.from, b.pos = asked, asked
	if b.validator, b.valOrigin = validatorOf(resp.Header), d.final; b.validator == "" && !b.immutable {
		b.resumable = false
	}
	if err := b.accept(resp, asked > 0); err != nil {
		if !b.recover(err) { // a break while skipping is resumed like any other
			b.Close()
			return nil, err
		}
	}
	return b, nil
}

// accept checks an answer to a request for the media from b.pos on (ranged tells whether the request
// carried Range) and makes it the current segment. A 200 to a ranged request is the whole media: the
// bytes before b.pos are skipped.
func (b *body) accept(resp *http.Response, ranged bool) error {
	asked := b.pos
	fail := func(err error) error {
		resp.Body.Close()
		return err
	}
	cl := resp.ContentLength
	v := validatorOf(resp.Header)
	if b.validator != "" && v != "" && v != b.validator && (b.d.final == b.valOrigin || !b.immutable) {
		// Validators belong to a server: another origin's (a fallback from a CDN to the homeserver,
		// say) may differ for the same bytes, which the total still checks for a download.
		return fail(ErrChanged)
	}
	var start, end int64 // the segment, end exclusive; -1 when unknown
	switch {
	case resp.StatusCode == http.StatusPartialContent:
		cr := resp.Header.Get("Content-Range")
		if !ranged {
			return fail(fmt.Errorf("%w 206 to a request without Range (Content-Range %q)", ErrUnexpectedStatus, truncateForError(cr)))
		}
		first, last, total, ok := parseContentRange(cr)
		switch {
		case !ok:
			return fail(fmt.Errorf("%w: malformed Content-Range %q", ErrRangeMismatch, truncateForError(cr)))
		case first != asked:
			return fail(fmt.Errorf("%w: asked for bytes from %d, got %q", ErrRangeMismatch, asked, truncateForError(cr)))
		case total >= 0 && last >= total, total < 0 && b.total >= 0 && last >= b.total:
			return fail(fmt.Errorf("%w: %q overruns the total", ErrRangeMismatch, truncateForError(cr)))
		case cl >= 0 && cl != last-first+1:
			return fail(fmt.Errorf("%w: Content-Length %d for %q", ErrRangeMismatch, cl, truncateForError(cr)))
		case b.total >= 0 && total >= 0 && total != b.total:
			return fail(fmt.Errorf("%w: total length %d, was %d", ErrChanged, total, b.total))
		}
		if total >= 0 {
			b.total = total
		}
		start, end = first, last+1
	default:
		if b.total >= 0 && cl >= 0 && cl != b.total {
			return fail(fmt.Errorf("%w: total length %d, was %d", ErrChanged, cl, b.total))
		}
		if ranged && asked > 0 && !b.immutable && !matches(resp.Header, b.validator) {
			return fail(ErrChanged)
		}
		if cl >= 0 {
			b.total = cl
		}
		start, end = 0, cl
	}
	if b.total >= 0 && asked > b.total {
		return fail(fmt.Errorf("%w: offset %d is past the end of the media (%d bytes)", ErrRangeMismatch, asked, b.total))
	}
	if b.limit > 0 && (b.total > b.limit || asked > b.limit) {
		return fail(fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, max(b.total, asked), b.limit))
	}
	if b.validator == "" {
		b.validator, b.valOrigin = v, b.d.final
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
	b.segEnd = end
	if start < asked {
		if err := b.skip(asked - start); err != nil {
			b.closeSegment() // a broken segment is never read again
			return err
		}
	}
	return nil
}

// skip reads n bytes of the current segment and discards them: the server sent the whole media where
// the rest was asked for. The position does not move: those bytes were delivered before.
func (b *body) skip(n int64) error {
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	for n > 0 {
		got, err := b.read((*bp)[:min(int64(len(*bp)), n)])
		n -= int64(got)
		if err != nil && n > 0 {
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
	if b.err != nil {
		return 0, b.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	for {
		if b.limit > 0 && b.pos > b.limit {
			b.closeSegment()
			b.err = fmt.Errorf("%w: more than %d bytes", ErrTooLarge, b.limit)
			return 0, b.err
		}
		if b.segment() == nil {
			if err := b.next(); err != nil {
				if err == io.EOF || b.recover(err) {
					if err == io.EOF {
						b.err = io.EOF
						return 0, io.EOF
					}
					continue
				}
				b.err = b.failure(err)
				return 0, b.err
			}
			continue
		}
		if (b.segEnd >= 0 && b.pos >= b.segEnd) || (b.total >= 0 && b.pos >= b.total) {
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
		if b.total >= 0 && int64(len(q)) > b.total-b.pos {
			q = q[:b.total-b.pos] // never past the media's end, whatever the answer says
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
				continue // a reader may return 0, nil; the segment's own reads are bounded by its timers
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

// segmentDone handles the end of the current segment with err (io.EOF when it ended cleanly, or
// when the position reached the segment's or the media's end). It returns io.EOF when the media is
// complete, nil when the body goes on with another segment, or the error that ends the body.
func (b *body) segmentDone(err error) error {
	if err == io.EOF && b.total >= 0 && b.pos == b.total && (b.segEnd < 0 || b.segEnd > b.total) {
		// The media is complete, but the answer did not say it ends here: it must end now. A byte
		// more means it is another media than the one whose total was learned.
		var one [1]byte
		if n, rerr := b.read(one[:]); n > 0 {
			b.closeSegment()
			return fmt.Errorf("%w: the answer runs past the media's %d bytes", ErrChanged, b.total)
		} else if rerr != nil && rerr != io.EOF {
			err = rerr
		}
	}
	seg := b.segEnd
	b.closeSegment()
	if err == io.EOF && (seg < 0 || b.pos == seg || b.pos == b.total) {
		switch {
		case b.total >= 0 && b.pos == b.total:
			return io.EOF
		case seg >= 0:
			// A short ranged answer: ask for the next range. With no total known yet, the server's
			// 416 at the end says where the media ends (next).
			if b.pos-b.lastStart < minSegment {
				if b.short++; b.short > maxShort {
					return fmt.Errorf("%w: more than %d ranged answers shorter than %d bytes", ErrRangeMismatch, maxShort, minSegment)
				}
			}
			b.d.step = StepNextRange
			return nil
		case b.total < 0:
			return io.EOF // an answer of unknown length that ended cleanly
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
	if t := b.d.trace; t != nil && t.Retry != nil {
		t.Retry(Retry{Step: StepResume, Attempt: b.resumes, Offset: max(b.pos, b.from), Err: err})
	}
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

// next asks for the media from the current position on. It returns io.EOF when the server says
// there is nothing more (416 to a range that starts at the end of a media of unknown total).
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
	resp, err := b.d.do(b.pos, b.validator)
	if err != nil {
		var he mautrix.HTTPError
		if b.total < 0 && b.pos > 0 && errors.As(err, &he) && he.IsStatus(http.StatusRequestedRangeNotSatisfiable) {
			// The end of a media whose total no answer gave: believe it only if the 416 names that
			// total, or names none.
			if _, _, total, ok := parseUnsatisfied(he.Response.Header.Get("Content-Range")); !ok || total == b.pos {
				b.total = b.pos
				return io.EOF
			}
		}
		return err
	}
	b.lastStart = b.pos
	return b.accept(resp, b.pos > 0)
}

// parseUnsatisfied reads the Content-Range of a 416 answer, "bytes */total".
func parseUnsatisfied(v string) (first, last, total int64, ok bool) {
	t, found := strings.CutPrefix(v, "bytes */")
	if !found {
		return 0, 0, 0, false
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 {
		return 0, 0, 0, false
	}
	return 0, 0, n, true
}

// read reads from the current segment, with the stall and low-speed checks.
func (b *body) read(p []byte) (int, error) {
	seg := b.segment()
	if seg == nil {
		return 0, errClosed
	}
	if b.stall != nil {
		b.waiting.Store(time.Now().UnixNano())
		if !b.armed.Swap(true) {
			b.stall.Reset(b.stallAfter)
		}
	}
	n, err := seg.Read(p)
	if b.stall != nil {
		b.waiting.Store(0)
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

// onStall runs when the stall timer fires: it aborts the segment's connection when the read in
// progress has waited stallAfter, and sets the timer again for the next moment that could be so. While
// nobody reads it lets the timer lapse (the next read sets it), so that a body nobody reads or closes
// holds no timer.
func (b *body) onStall() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.armed.Store(false) // before looking at waiting: a read that starts now sets the timer itself
	since := b.waiting.Load()
	if b.closed || since == 0 {
		return
	}
	next := b.stallAfter
	if waited := time.Since(time.Unix(0, since)); waited >= b.stallAfter {
		if b.seg != nil {
			b.seg.abort(fmt.Errorf("%w: no data for %v", b.stallCause, b.stallAfter))
		}
	} else {
		next = b.stallAfter - waited
	}
	if !b.armed.Swap(true) {
		b.stall.Reset(next)
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
