package mediaclient

// This file reads the multipart/mixed answer of the federation media endpoints (spec v1.11): a JSON
// metadata part, then a part that holds either the media's bytes or a Location header. Everything
// before the media part (the head) is bounded in size, in idle time, in speed and in total time;
// the media part itself streams through the download's resuming body like any other answer, held
// to its Content-Length when it gives one.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strconv"
	"time"
)

const (
	// maxMetadataPart bounds the JSON metadata part, as mautrix's federation client does.
	maxMetadataPart = 64 << 10
	// maxAnswerHead bounds everything read before the media part: a preamble, the part headers and
	// the metadata part.
	maxAnswerHead = 256 << 10
)

// errHeadTooLong ends a read past maxAnswerHead.
var errHeadTooLong = errors.New("answer head too long")

// fedAnswer is a federation answer read up to its media part.
type fedAnswer struct {
	meta     json.RawMessage // the metadata part (a JSON object)
	inline   *http.Response  // an answer whose body is the media part, or nil
	location []string        // the media part's Location values, when it has any
}

// headLimits bound the reading of a federation answer's head: the Options of the same names, as
// New set them (0 or less: no bound).
type headLimits struct {
	stall         time.Duration // StallTimeout: the longest wait for a byte
	lowSpeedLimit int64         // LowSpeedLimit and LowSpeedTime: the slowest pace
	lowSpeedTime  time.Duration
	whole         time.Duration // HeaderTimeout: the longest wait for the whole head
}

// headLimitsOf returns the head limits of a Client's options.
func headLimitsOf(o *Options) headLimits {
	return headLimits{stall: o.StallTimeout, lowSpeedLimit: o.LowSpeedLimit, lowSpeedTime: o.LowSpeedTime, whole: o.HeaderTimeout}
}

// readMultipart reads a 2xx federation answer up to its media part. With a Location part it closes
// the answer; otherwise it returns an answer whose body is the media part (its headers, status 200,
// Content-Length from the part if it says one, and held to it), tied to the same hop, so that a
// stall aborts it like any body.
//
// The head — everything before the media part's bytes — is read under lim, as a body is: a wait
// for a byte longer than the stall timeout is ErrStalled, a pace under the low-speed limit is
// ErrTooSlow; and since the head is part of waiting for the answer, the whole of it must come
// within the header timeout (ErrStalled).
//
// A missing or invalid boundary, a Content-Type that is not multipart/mixed, a metadata part that
// is not a JSON object or is longer than 64 KiB, a missing media part: ErrBadMultipart. A
// connection that breaks or stalls meanwhile returns that error as it is (a break, which a resuming
// body may resume).
func readMultipart(resp *http.Response, lim headLimits) (ans *fedAnswer, err error) {
	defer func() {
		if ans == nil || ans.inline == nil {
			resp.Body.Close()
		}
	}()
	bad := func(format string, args ...any) (*fedAnswer, error) {
		return nil, fmt.Errorf("%w: "+format, append([]any{ErrBadMultipart}, args...)...)
	}
	ct := resp.Header.Get("Content-Type")
	mt, params, err := mime.ParseMediaType(ct)
	switch {
	case err != nil && errors.Is(err, mime.ErrInvalidMediaParameter) && mt == "multipart/mixed":
		return bad("invalid boundary in Content-Type %q", truncateForError(ct))
	case err != nil:
		return bad("Content-Type %q: %v", truncateForError(ct), err)
	case mt != "multipart/mixed":
		return bad("Content-Type %q, want multipart/mixed", truncateForError(ct))
	case params["boundary"] == "":
		return bad("no boundary in Content-Type %q", truncateForError(ct))
	case !validBoundary(params["boundary"]):
		return bad("invalid boundary in Content-Type %q", truncateForError(ct))
	}
	hb, ok := resp.Body.(*hopBody)
	if !ok {
		hb = &hopBody{ReadCloser: resp.Body, ctx: context.Background(), cancel: func(error) {}}
	}
	head := newHeadReader(hb, lim)
	defer head.end()
	fail := func(what string, err error) (*fedAnswer, error) {
		switch cause := hb.cause(); {
		case cause != nil:
			return nil, cause
		case errors.Is(err, errHeadTooLong):
			return bad("more than %d bytes before the media part", maxAnswerHead)
		case isBreak(err) && !errors.Is(err, io.EOF):
			return nil, err
		}
		return bad("%s: %v", what, err)
	}
	mr := multipart.NewReader(head, params["boundary"])
	part, err := mr.NextRawPart()
	if err != nil {
		return fail("no metadata part", err)
	}
	if pct := part.Header.Get("Content-Type"); pct != "" {
		if pmt, _, err := mime.ParseMediaType(pct); err != nil || pmt != "application/json" {
			return bad("metadata part of type %q, want application/json", truncateForError(pct))
		}
	}
	meta, err := io.ReadAll(io.LimitReader(part, maxMetadataPart+1))
	if err != nil {
		return fail("metadata part", err)
	}
	if len(meta) > maxMetadataPart {
		return bad("metadata part longer than %d bytes", maxMetadataPart)
	}
	meta = bytes.TrimSpace(meta)
	if len(meta) == 0 || meta[0] != '{' || !json.Valid(meta) {
		return bad("metadata part is not a JSON object")
	}
	part, err = mr.NextRawPart()
	if err != nil {
		return fail("no media part", err)
	}
	ans = &fedAnswer{meta: meta}
	if loc := part.Header.Values("Location"); len(loc) > 0 {
		ans.location = loc
		return ans, nil
	}
	h := http.Header(part.Header)
	cl := int64(-1)
	if v := h.Get("Content-Length"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return bad("media part with Content-Length %q", truncateForError(v))
		}
		cl = n
	}
	pb := &partBody{part: part, answer: resp.Body, size: cl}
	if cl == 0 {
		// An empty media is not read at all: the part must end here and now.
		switch err := pb.atEnd(); {
		case errors.Is(err, ErrBadMultipart):
			return nil, err
		case err != io.EOF:
			return fail("empty media part", err)
		}
	}
	head.end()
	ans.inline = &http.Response{
		Status:        resp.Status,
		StatusCode:    http.StatusOK,
		Proto:         resp.Proto,
		ProtoMajor:    resp.ProtoMajor,
		ProtoMinor:    resp.ProtoMinor,
		Header:        h,
		ContentLength: cl,
		Body:          &hopBody{ReadCloser: pb, ctx: hb.ctx, cancel: hb.cancel},
		Request:       resp.Request,
	}
	return ans, nil
}

// validBoundary reports whether b is a boundary as RFC 2046 defines it: 1 to 70 characters from
// its set, not ending with a space.
func validBoundary(b string) bool {
	if len(b) == 0 || len(b) > 70 || b[len(b)-1] == ' ' {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case bytes.IndexByte([]byte("'()+_,-./:=? "), c) >= 0:
		default:
			return false
		}
	}
	return true
}

// headReader bounds the head of an answer (the bytes read before the media part): in size, in the
// wait for each read, in pace and in total time. A bound that is passed aborts the hop with its
// cause (ErrStalled or ErrTooSlow), which the reads then return.
type headReader struct {
	hb     *hopBody
	lim    headLimits
	n      int64
	passed bool // the head is read: no more bound

	idle      *time.Timer // aborts the hop when a read waits longer than idleAfter
	idleAfter time.Duration
	idleCause error
	whole     *time.Timer // aborts the hop when the head is not read within lim.whole

	speedStart time.Time // the low-speed check: bytes read since speedStart
	speedBytes int64
}

// newHeadReader starts reading the head of hb under lim. The stall timeout and the low-speed time
// share one timer, as in a body: the shorter one applies to a read that gets nothing.
func newHeadReader(hb *hopBody, lim headLimits) *headReader {
	h := &headReader{hb: hb, lim: lim, idleAfter: lim.stall, idleCause: ErrStalled}
	if lim.lowSpeedLimit <= 0 || lim.lowSpeedTime <= 0 {
		h.lim.lowSpeedLimit, h.lim.lowSpeedTime = 0, 0
	} else if h.idleAfter <= 0 || lim.lowSpeedTime < h.idleAfter {
		h.idleAfter, h.idleCause = lim.lowSpeedTime, ErrTooSlow
	}
	if h.idleAfter > 0 {
		after, cause := h.idleAfter, h.idleCause
		h.idle = time.AfterFunc(time.Hour, func() { hb.abort(fmt.Errorf("%w: no data for %v", cause, after)) })
		h.idle.Stop()
	}
	if lim.whole > 0 {
		h.whole = time.AfterFunc(lim.whole, func() {
			hb.abort(fmt.Errorf("%w: no media part within %v of the answer's headers", ErrStalled, lim.whole))
		})
	}
	return h
}

func (h *headReader) Read(p []byte) (int, error) {
	if h.passed {
		return h.hb.Read(p)
	}
	if h.n >= maxAnswerHead {
		return 0, errHeadTooLong
	}
	if int64(len(p)) > maxAnswerHead-h.n {
		p = p[:maxAnswerHead-h.n]
	}
	if h.idle != nil {
		h.idle.Reset(h.idleAfter)
	}
	n, err := h.hb.Read(p)
	if h.idle != nil {
		h.idle.Stop()
	}
	h.n += int64(n)
	if cause := h.hb.cause(); cause != nil {
		return n, cause
	}
	if err == nil && h.lim.lowSpeedLimit > 0 {
		if err = h.checkSpeed(n); err != nil {
			h.hb.abort(err)
		}
	}
	return n, err
}

// checkSpeed is the low-speed check of a body (body.checkSpeed) for the head.
func (h *headReader) checkSpeed(n int) error {
	now := time.Now()
	if h.speedStart.IsZero() {
		h.speedStart = now
	}
	h.speedBytes += int64(n)
	if el := now.Sub(h.speedStart); el >= h.lim.lowSpeedTime {
		if float64(h.speedBytes) < float64(h.lim.lowSpeedLimit)*el.Seconds() {
			return fmt.Errorf("%w: %d bytes of the answer's head in %v, limit %d bytes/s", ErrTooSlow, h.speedBytes, el.Round(time.Millisecond), h.lim.lowSpeedLimit)
		}
		h.speedStart, h.speedBytes = now, 0
	}
	return nil
}

// end lifts the bounds: what follows is the media, read under the body's own checks.
func (h *headReader) end() {
	h.passed = true
	if h.idle != nil {
		h.idle.Stop()
	}
	if h.whole != nil {
		h.whole.Stop()
	}
}

// partBody is an inline media part: reading it reads the part, closing it closes the whole answer.
// A part that gives its Content-Length (size) is held to it, since nothing but the part's own
// boundary frames it: once that many bytes are read, one more read makes sure the part ends there,
// and a part that goes on is not the media (ErrBadMultipart). One that ends early is cut short, as
// an HTTP body that ends before its Content-Length: the resuming body takes it for a break. An
// answer of the Location form needs no such check: its body is an HTTP body, whose Content-Length
// the transport enforces.
type partBody struct {
	part   *multipart.Part
	answer io.Closer
	size   int64 // the part's Content-Length, -1 when it gives none
	n      int64 // bytes read
}

func (b *partBody) Read(p []byte) (int, error) {
	if b.size < 0 {
		return b.part.Read(p)
	}
	if b.n >= b.size {
		return 0, b.atEnd()
	}
	if int64(len(p)) > b.size-b.n {
		p = p[:b.size-b.n]
	}
	n, err := b.part.Read(p)
	b.n += int64(n)
	if err == nil && b.n == b.size {
		err = b.atEnd()
	}
	return n, err
}

// atEnd makes sure the part ends where its Content-Length says: it returns io.EOF when it does.
func (b *partBody) atEnd() error {
	var one [1]byte
	if n, err := io.ReadAtLeast(b.part, one[:], 1); n > 0 {
		return fmt.Errorf("%w: the media part is longer than its Content-Length %d", ErrBadMultipart, b.size)
	} else if err != io.EOF {
		return err
	}
	return io.EOF
}

func (b *partBody) Close() error { return b.answer.Close() }
