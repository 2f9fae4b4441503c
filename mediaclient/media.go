package mediaclient

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

	"maunium.net/go/mautrix/id"

	"github.com/mxfetch/mxfetch/internal/filename"
)

// Media is a downloaded media item whose body streams as it arrives. The caller must Close it;
// closing before the end releases the connection.
//
// Read returns ErrTruncated (wrapped in *Error) when the body ends before its Content-Length, and
// ErrTooLarge when it grows past the size limit, never a silently short body.
type Media struct {
	// URI is the content URI.
	URI id.ContentURI
	// ContentType is the Content-Type of the final answer.
	ContentType string
	// ContentLength is the length of the body, or -1 when unknown.
	ContentLength int64
	// FileName is the sanitised file name from Content-Disposition (base name only, no control
	// characters, no leading dot), or "".
	FileName string
	// Header holds the headers of the final answer.
	Header http.Header
	// Hops lists every response received, the final one included, across retries and fallbacks.
	Hops []Hop
	// API is the endpoint family that served the media.
	API API
	// Offset is where the body starts in the media: DownloadOptions.Offset when the server resumed
	// there, else 0 (the whole media, anew). ContentLength counts from Offset.
	Offset int64
	// Fallback says why the client stepped back from its first plan ("" when it did not):
	// "parameter rejected", "v1 unrecognized", "redirect refused" (joined with "; " when several).
	Fallback string

	body    io.ReadCloser
	read    int64
	limit   int64 // 0: none
	op      string
	err     error // sticky: returned by every Read once set
	pending error // a break in the body not yet acted on (bytes were returned with it)
	status  int
	resume  *resumer // nil when the body cannot be resumed
}

// maxResumes bounds how often one body is resumed.
const maxResumes = 3

// Read reads from the body. A body that breaks off (a reset, a truncation) is resumed with a Range
// request when the server gave a validator (a strong ETag or Last-Modified): the chain starts again at
// the homeserver, so an expired CDN URL is replaced, and If-Range makes sure the bytes are the same
// media. The reader sees one continuous stream, or an error.
func (m *Media) Read(p []byte) (int, error) {
	for {
		if m.err != nil {
			return 0, m.err
		}
		var n int
		err := m.pending
		m.pending = nil
		if err == nil {
			n, err = m.body.Read(p)
		}
		m.read += int64(n)
		if m.limit > 0 && m.read > m.limit {
			n -= int(m.read - m.limit)
			m.read = m.limit
			m.err = m.wrap(fmt.Errorf("%w: more than %d bytes", ErrTooLarge, m.limit))
			return n, m.err
		}
		switch {
		case err == nil:
			return n, nil
		case err == io.EOF && (m.ContentLength < 0 || m.read >= m.ContentLength):
			return n, io.EOF
		case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
			m.err = m.wrap(err)
			return n, m.err
		}
		broken := err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) || (m.ContentLength >= 0 && m.read < m.ContentLength) || isNetError(err)
		if !broken {
			m.err = m.wrap(err) // a decryption or hash error, say: not the network's
			return n, m.err
		}
		if m.resume != nil && m.resume.attempts < maxResumes {
			if n > 0 {
				m.pending = err // hand over these bytes first
				return n, nil
			}
			rerr := m.resume.resume(m)
			if rerr == nil {
				continue
			}
			err = fmt.Errorf("%w (resuming: %w)", err, rerr)
		}
		if m.ContentLength >= 0 && m.read < m.ContentLength || errors.Is(err, io.ErrUnexpectedEOF) || err == io.EOF {
			m.err = m.wrap(fmt.Errorf("%w: got %d of %d bytes: %w", ErrTruncated, m.read, m.ContentLength, err))
		} else {
			m.err = m.wrap(err)
		}
		return n, m.err
	}
}

// copyBufs holds the buffers of WriteTo, so that memory does not grow with the number of downloads.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}

// WriteTo writes the rest of the body to w with one pooled 64 KiB buffer: io.Copy from a Media
// uses it, so large downloads move in large reads without a buffer per copy.
func (m *Media) WriteTo(w io.Writer) (int64, error) {
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	buf := *bp
	var total int64
	for {
		n, err := m.Read(buf)
		if n > 0 {
			wn, werr := w.Write(buf[:n])
			total += int64(wn)
			if werr != nil {
				return total, werr
			}
			if wn != n {
				return total, io.ErrShortWrite
			}
		}
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

// isNetError reports whether err came from the connection.
func isNetError(err error) bool {
	var ne net.Error
	var oe *net.OpError
	return errors.As(err, &ne) || errors.As(err, &oe) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// Close releases the body and its connection.
func (m *Media) Close() error {
	if m.err == nil {
		m.err = m.wrap(errors.New("read after close"))
	}
	return m.body.Close()
}

// Validator returns the media's strong ETag, or else its Last-Modified, or "": what to pass as
// DownloadOptions.IfRange to finish a partial copy later.
func (m *Media) Validator() string { return validatorOf(m.Header) }

// BytesRead is how many bytes of the body have been read so far.
func (m *Media) BytesRead() int64 { return m.read }

func (m *Media) wrap(err error) error {
	return &Error{Op: m.op, URI: m.URI.String(), Err: err}
}

// newMedia wraps a successful response.
func newMedia(r *request, resp *http.Response, limit int64) *Media {
	return &Media{
		URI:           r.uri,
		ContentType:   resp.Header.Get("Content-Type"),
		ContentLength: resp.ContentLength,
		FileName:      filename.FromContentDisposition(resp.Header.Get("Content-Disposition")),
		Header:        resp.Header,
		body:          resp.Body,
		limit:         limit,
		op:            r.op(),
		status:        resp.StatusCode,
	}
}

// ErrChanged: the media changed while a broken body was being resumed (its validator differs).
var ErrChanged = errors.New("mediaclient: media changed while resuming")

// resumer asks for the rest of a broken body.
type resumer struct {
	ctx       context.Context
	c         *Client
	r         request
	validator string // a strong ETag, or Last-Modified
	attempts  int
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

// newResumer returns a resumer for a body with a usable validator, or nil.
func newResumer(ctx context.Context, c *Client, r *request, h http.Header) *resumer {
	v := validatorOf(h)
	if v == "" {
		return nil
	}
	return &resumer{ctx: ctx, c: c, r: *r, validator: v}
}

var emptyBody = io.NopCloser(strings.NewReader(""))

// resume fetches the media from where the broken body stopped and puts it in place of that body.
func (rs *resumer) resume(m *Media) error {
	rs.attempts++
	m.body.Close()
	m.body = emptyBody
	start := m.Offset + m.read
	r := rs.r
	r.offset, r.ifRange = start, rs.validator
	rs.c.debug(rs.ctx, "resuming a broken body", "offset", start, "attempt", rs.attempts)
	next, err := rs.c.fetch(rs.ctx, &r, 0)
	if err != nil {
		return err
	}
	m.Hops = append(m.Hops, next.Hops...)
	if next.Offset != start || (next.ContentLength >= 0 && m.ContentLength >= 0 && start+next.ContentLength != m.Offset+m.ContentLength) {
		next.body.Close()
		return ErrChanged
	}
	m.body = next.body
	return nil
}

// seekStart makes a response to a request with an offset start where it should: a 206 must begin at
// the offset (and carry the same validator); a 200 with the same validator is skipped forward (the
// server ignored Range); a 200 without it is the whole media anew, and Offset says 0.
func (m *Media) seekStart(r *request) error {
	switch {
	case m.status == http.StatusPartialContent:
		cr := m.Header.Get("Content-Range")
		start, _, ok := parseContentRange(cr)
		if !ok || start != r.offset || (r.ifRange != "" && validatorOf(m.Header) != "" && !matches(m.Header, r.ifRange)) {
			return fmt.Errorf("%w: answer to a range request does not fit (%q)", ErrChanged, cr)
		}
		m.Offset = start
	case r.ifRange != "" && matches(m.Header, r.ifRange):
		if _, err := io.CopyN(io.Discard, m.body, r.offset); err != nil {
			return fmt.Errorf("%w: skipping to %d: %w", ErrTruncated, r.offset, err)
		}
		m.Offset = r.offset
		if m.ContentLength >= 0 {
			m.ContentLength -= r.offset
		}
	default:
		m.Offset = 0
	}
	return nil
}

// parseContentRange reads "bytes start-end/total" (total may be "*", given as -1).
func parseContentRange(v string) (start, total int64, ok bool) {
	rest, found := strings.CutPrefix(v, "bytes ")
	if !found {
		return 0, 0, false
	}
	rng, tot, found := strings.Cut(rest, "/")
	if !found {
		return 0, 0, false
	}
	first, _, found := strings.Cut(rng, "-")
	if !found {
		return 0, 0, false
	}
	start, err := strconv.ParseInt(first, 10, 64)
	if err != nil {
		return 0, 0, false
	}
	total = -1
	if tot != "*" {
		if total, err = strconv.ParseInt(tot, 10, 64); err != nil {
			return 0, 0, false
		}
	}
	return start, total, true
}
