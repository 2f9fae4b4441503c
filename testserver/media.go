package testserver

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"sort"
	"time"

	"maunium.net/go/mautrix/id"
)

// MediaOptions describes one media item added through the Go API. Every field may be left zero.
type MediaOptions struct {
	// ContentType is sent as Content-Type; "" means application/octet-stream.
	ContentType string
	// FileName is sent in Content-Disposition when the request names no file; "" sends none.
	FileName string
	// Thumbnail is served by the thumbnail endpoints; nil serves the content itself.
	Thumbnail []byte
	// Behavior, when non-nil, replaces the server-wide behaviour for this item, with its own fault
	// counters.
	Behavior *Behavior
	// MediaID is the media ID to use; "" picks a fresh one. An item added with the ID of another
	// replaces it.
	MediaID string
	// ModTime is sent as Last-Modified; the zero value means the time the item is added.
	ModTime time.Time
}

// Media is one stored item.
type Media struct {
	ID          string
	ContentType string
	FileName    string

	content   io.ReaderAt
	size      int64
	thumbnail []byte
	etag      string
	modTime   time.Time
	behavior  *behaviorState
	locate    func() string // when non-nil, the Location of the homeserver's redirects (Publish)

	seq      int
	ready    chan struct{} // closed once the bytes are there
	uploaded bool          // guarded by Server.mu
	thumbs   map[string]int
}

// Size is the length of the content in bytes.
func (m *Media) Size() int64 { return m.size }

// AddMedia stores content and returns its content URI.
func (s *Server) AddMedia(content []byte, opts MediaOptions) id.ContentURI {
	sum := sha256.Sum256(content)
	return s.add(bytes.NewReader(content), int64(len(content)), `"`+hex.EncodeToString(sum[:16])+`"`, opts)
}

// AddReaderAt stores an item whose size bytes are read from r each time they are served, so that
// large files are streamed rather than held in memory: r must stay readable while the server runs
// (an *os.File, say; the caller closes it after Close). Its ETag is derived from the media ID, size
// and ModTime, so an item added again with the same options keeps it.
func (s *Server) AddReaderAt(r io.ReaderAt, size int64, opts MediaOptions) id.ContentURI {
	m := s.newMedia(opts)
	sum := sha256.Sum256(fmt.Appendf(nil, "%s\x00%d\x00%d", m.ID, size, m.modTime.Unix()))
	return s.fill(m, r, size, `"`+hex.EncodeToString(sum[:16])+`"`)
}

// AddGenerated stores size bytes of deterministic content derived from seed without holding them in
// memory (see GeneratedContent), for very large downloads.
func (s *Server) AddGenerated(size int64, seed byte, opts MediaOptions) id.ContentURI {
	return s.add(GeneratedContent(seed), size, fmt.Sprintf(`"gen-%d-%d"`, size, seed), opts)
}

// GeneratedContent returns the reader behind AddGenerated: a pseudo-random pattern of period 65521
// bytes (a prime, so it never lines up with buffer sizes) derived from seed, cheap to serve at any
// offset.
func GeneratedContent(seed byte) io.ReaderAt {
	g := make(generated, generatedPeriod)
	x := uint32(seed)*2654435761 + 1
	for i := range g {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		g[i] = byte(x)
	}
	return g
}

const generatedPeriod = 65521

type generated []byte

func (g generated) ReadAt(p []byte, off int64) (int, error) {
	n := 0
	for n < len(p) {
		n += copy(p[n:], g[(off+int64(n))%generatedPeriod:])
	}
	return n, nil
}

func (s *Server) add(r io.ReaderAt, size int64, etag string, opts MediaOptions) id.ContentURI {
	return s.fill(s.newMedia(opts), r, size, etag)
}

// fill gives a new item its bytes.
func (s *Server) fill(m *Media, r io.ReaderAt, size int64, etag string) id.ContentURI {
	s.mu.Lock()
	m.content, m.size, m.etag, m.uploaded = r, size, etag, true
	s.mu.Unlock()
	close(m.ready)
	return id.ContentURI{Homeserver: s.ServerName, FileID: m.ID}
}

func (s *Server) newMedia(opts MediaOptions) *Media {
	m := &Media{
		ID:          opts.MediaID,
		ContentType: opts.ContentType,
		FileName:    opts.FileName,
		thumbnail:   opts.Thumbnail,
		modTime:     opts.ModTime.UTC().Truncate(time.Second),
		ready:       make(chan struct{}),
		thumbs:      make(map[string]int),
	}
	if opts.ModTime.IsZero() {
		m.modTime = time.Now().UTC().Truncate(time.Second)
	}
	if m.ContentType == "" {
		m.ContentType = "application/octet-stream"
	}
	if opts.Behavior != nil {
		m.behavior = newBehaviorState(*opts.Behavior)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextID++
	m.seq = s.nextID
	if m.ID == "" {
		m.ID = fmt.Sprintf("m%06d%s", s.nextID, hex.EncodeToString(s.secret[:4]))
	}
	s.media[m.ID] = m
	return m
}

// CreateMedia reserves a content URI whose bytes arrive later through Upload (or the
// PUT /_matrix/media/v3/upload endpoint). Downloads wait for them up to the request's timeout_ms.
func (s *Server) CreateMedia(opts MediaOptions) id.ContentURI {
	m := s.newMedia(opts)
	return id.ContentURI{Homeserver: s.ServerName, FileID: m.ID}
}

// Upload fills a media item created by CreateMedia. It reports false if there is no such item or it
// already has its bytes.
func (s *Server) Upload(mediaID string, content []byte, contentType string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.media[mediaID]
	if m == nil || m.uploaded {
		return false
	}
	sum := sha256.Sum256(content)
	m.content, m.size, m.etag, m.uploaded = bytes.NewReader(content), int64(len(content)), `"`+hex.EncodeToString(sum[:16])+`"`, true
	if contentType != "" {
		m.ContentType = contentType
	}
	close(m.ready)
	return true
}

// MediaIDs returns the IDs of the stored media in the order they were added.
func (s *Server) MediaIDs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]string, 0, len(s.media))
	for id := range s.media {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return s.media[ids[i]].seq < s.media[ids[j]].seq })
	return ids
}

// SetContent replaces the bytes of a stored item (a new ETag and modification time included), as if
// the media had changed on the server. It reports false if there is no such item.
func (s *Server) SetContent(mediaID string, content []byte) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.media[mediaID]
	if m == nil || !m.uploaded {
		return false
	}
	sum := sha256.Sum256(content)
	m.content, m.size, m.etag = bytes.NewReader(content), int64(len(content)), `"`+hex.EncodeToString(sum[:16])+`"`
	m.modTime = m.modTime.Add(time.Second)
	return true
}

func (s *Server) lookup(mediaID string) *Media {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.media[mediaID]
}
