package mediaclient

import (
	"io"
	"net/http"
	"sync"
	"sync/atomic"

	"maunium.net/go/mautrix/id"

	"github.com/mxfetch/mxfetch/internal/filename"
)

// Media is a downloaded media item whose body streams as it arrives. The caller must Close it;
// closing before the end releases the connection.
//
// Reading returns io.EOF only once exactly the media's bytes were delivered. A body that breaks off or
// stalls is resumed (see Options.DisableResume); when that does not help, Read returns an *Error
// wrapping ErrTruncated (and ErrStalled or ErrTooSlow for a stall), never a silently short body. A
// body larger than the size limit is ErrTooLarge.
type Media struct {
	// URI is the content URI.
	URI id.ContentURI
	// ContentType is the Content-Type of the first successful answer.
	ContentType string
	// ContentLength is how many bytes the body delivers (from Offset to the end of the media), or -1
	// when the server did not say.
	ContentLength int64
	// FileName is the sanitised file name from Content-Disposition (base name only, no control or
	// format characters, no leading dot or dash, no Windows device name) of the answer that carried
	// the bytes, or of the homeserver's redirect when the target gave none; "" when neither did.
	FileName string
	// Header holds the headers of the first successful answer.
	Header http.Header
	// API is the endpoint family that served the media.
	API API
	// Offset is where the body starts in the media: DownloadOptions.Offset when the server resumed
	// there, else 0 (the whole media, anew).
	Offset int64

	d         *download
	b         *body
	r         io.Reader // what Read reads: the body, or a decrypting reader above it
	err       error     // sticky: returned by every Read once set
	delivered atomic.Int64

	size      int64
	closeOnce sync.Once
	closeErr  error
}

// newMedia wraps the first successful answer of a download.
func newMedia(d *download, resp *http.Response) (*Media, error) {
	b, err := newBody(d, resp)
	if err != nil {
		return nil, err
	}
	m := &Media{
		URI:           d.r.uri,
		ContentType:   resp.Header.Get("Content-Type"),
		ContentLength: -1,
		FileName:      filename.FromContentDisposition(resp.Header.Get("Content-Disposition")),
		Header:        resp.Header,
		API:           d.api,
		Offset:        b.from,
		d:             d,
		b:             b,
		r:             b,
	}
	if m.FileName == "" {
		m.FileName = d.disposition
	}
	m.size = b.total
	if b.total >= 0 {
		m.ContentLength = b.total - b.from
	}
	return m, nil
}

// Read reads from the body.
func (m *Media) Read(p []byte) (int, error) {
	if m.err != nil {
		return 0, m.err
	}
	n, err := m.r.Read(p)
	m.delivered.Add(int64(n))
	if err != nil && err != io.EOF {
		m.err = m.d.fail(err)
		err = m.err
	}
	return n, err
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

// Close releases the body and its connection. It may be called while a Read is in progress in
// another goroutine, which then returns an error; later reads return an error too.
func (m *Media) Close() error {
	m.closeOnce.Do(func() {
		// Only the body is closed: it is safe against a Read in progress, and the layers above it
		// (decryption) hold nothing but what the body gives them.
		m.closeErr = m.b.Close()
		m.d.cancel()
	})
	return m.closeErr
}

// Hops lists every request sent for the media so far, the redirects, retries, fallbacks and resumes
// included. A resumed body adds hops as it is read. It may be called while another goroutine reads.
func (m *Media) Hops() []Hop { return m.d.hopsCopy() }

// Fallbacks lists the steps back from the download's first plan, in order (none when there were
// none).
func (m *Media) Fallbacks() []Fallback { return append([]Fallback(nil), m.d.fallbacks...) }

// Size is the media's total length as the first answer gave it, or -1 when it did not say.
func (m *Media) Size() int64 { return m.size }

// Validator returns the strong ETag, or else the Last-Modified, of the first answer, or "": what to
// pass as DownloadOptions.IfRange to finish a partial copy later.
func (m *Media) Validator() string { return validatorOf(m.Header) }

// BytesRead is how many bytes Read has returned so far. It may be called while another goroutine
// reads.
func (m *Media) BytesRead() int64 { return m.delivered.Load() }
