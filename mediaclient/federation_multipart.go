package mediaclient

// This file reads the multipart/mixed answer of the federation media endpoints (spec v1.11): a JSON
// metadata part, then a part that holds either the media's bytes or a Location header. Everything
// before the media part is bounded in size and in idle time; the media part itself streams through
// the download's resuming body like any other answer.

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

// readMultipart reads a 2xx federation answer up to its media part. With a Location part it closes
// the answer; otherwise it returns an answer whose body is the media part (its headers, status 200,
// Content-Length from the part if it says one), tied to the same hop, so that a stall aborts it
// like any body. The stall timeout, when positive, also bounds each wait for the head's bytes.
//
// A missing or invalid boundary, a Content-Type that is not multipart/mixed, a metadata part that
// is not a JSON object or is longer than 64 KiB, a missing media part: ErrBadMultipart. A
// connection that breaks or stalls meanwhile returns that error as it is (a break, which a resuming
// body may resume).
func readMultipart(resp *http.Response, stall time.Duration) (ans *fedAnswer, err error) {
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
	head := &headReader{r: hb, limit: maxAnswerHead}
	if stall > 0 {
		head.after = stall
		head.timer = time.AfterFunc(time.Hour, func() {
			hb.abort(fmt.Errorf("%w: no data for %v", ErrStalled, stall))
		})
		head.timer.Stop()
	}
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
	head.end()
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
	ans.inline = &http.Response{
		Status:        resp.Status,
		StatusCode:    http.StatusOK,
		Proto:         resp.Proto,
		ProtoMajor:    resp.ProtoMajor,
		ProtoMinor:    resp.ProtoMinor,
		Header:        h,
		ContentLength: cl,
		Body:          &hopBody{ReadCloser: &partBody{part: part, answer: resp.Body}, ctx: hb.ctx, cancel: hb.cancel},
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

// headReader bounds the bytes read before the media part, and the wait for each of them.
type headReader struct {
	r      io.Reader
	n      int64
	limit  int64
	timer  *time.Timer // aborts the hop when a read waits longer than after
	after  time.Duration
	passed bool // the head is read: no more bound
}

func (h *headReader) Read(p []byte) (int, error) {
	if h.passed {
		return h.r.Read(p)
	}
	if h.n >= h.limit {
		return 0, errHeadTooLong
	}
	if int64(len(p)) > h.limit-h.n {
		p = p[:h.limit-h.n]
	}
	if h.timer != nil {
		h.timer.Reset(h.after)
	}
	n, err := h.r.Read(p)
	if h.timer != nil {
		h.timer.Stop()
	}
	h.n += int64(n)
	return n, err
}

// end lifts the bounds: what follows is the media, read under the body's own checks.
func (h *headReader) end() {
	h.passed = true
	if h.timer != nil {
		h.timer.Stop()
	}
}

// partBody is an inline media part: reading it reads the part, closing it closes the whole answer.
type partBody struct {
	part   *multipart.Part
	answer io.Closer
}

func (b *partBody) Read(p []byte) (int, error) { return b.part.Read(p) }

func (b *partBody) Close() error { return b.answer.Close() }
