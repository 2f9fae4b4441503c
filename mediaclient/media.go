package mediaclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"

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
	// Fallback says why the client stepped back from its first plan ("" when it did not):
	// "parameter rejected", "v1 unrecognized", "redirect refused" (joined with "; " when several).
	Fallback string

	body  io.ReadCloser
	read  int64
	limit int64 // 0: none
	op    string
	err   error
}

// Read reads from the body.
func (m *Media) Read(p []byte) (int, error) {
	if m.err != nil {
		return 0, m.err
	}
	n, err := m.body.Read(p)
	m.read += int64(n)
	if m.limit > 0 && m.read > m.limit {
		excess := int(m.read - m.limit)
		n -= excess
		m.read = m.limit
		m.err = m.wrap(fmt.Errorf("%w: more than %d bytes", ErrTooLarge, m.limit))
		return n, m.err
	}
	switch {
	case err == nil:
		return n, nil
	case err == io.EOF:
		if m.ContentLength >= 0 && m.read < m.ContentLength {
			m.err = m.wrap(fmt.Errorf("%w: got %d of %d bytes", ErrTruncated, m.read, m.ContentLength))
			return n, m.err
		}
		return n, io.EOF
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		m.err = m.wrap(err)
	case m.ContentLength >= 0 && m.read < m.ContentLength, errors.Is(err, io.ErrUnexpectedEOF):
		m.err = m.wrap(fmt.Errorf("%w: got %d of %d bytes: %w", ErrTruncated, m.read, m.ContentLength, err))
	default:
		m.err = m.wrap(err)
	}
	return n, m.err
}

// Close releases the body and its connection.
func (m *Media) Close() error {
	if m.err == nil {
		m.err = m.wrap(errors.New("read after close"))
	}
	return m.body.Close()
}

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
	}
}
