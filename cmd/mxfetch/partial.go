package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/mxfetch/mxfetch/mediaclient"
)

// partial is the kept, unfinished copy of one media item that --continue finishes. It lives beside
// the output as .mxfetch-<server>-<mediaID>.part, with a .json sidecar holding the URI and the
// validator (ETag or Last-Modified) the bytes belong to.
type partial struct {
	path, meta string
	offset     int64
	validator  string
}

type partialMeta struct {
	URI       string `json:"uri"`
	Validator string `json:"validator"`
}

// partialFor finds the partial copy of uri in dir, if an earlier run left one.
func partialFor(dir string, uri id.ContentURI) *partial {
	safe := strings.Map(func(r rune) rune {
		if r == '.' || r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' {
			return r
		}
		return '_'
	}, uri.Homeserver)
	p := &partial{path: filepath.Join(dir, ".mxfetch-"+safe+"-"+uri.FileID+".part")}
	p.meta = p.path + ".json"
	st, err := os.Stat(p.path)
	if err != nil || !st.Mode().IsRegular() {
		return p
	}
	var m partialMeta
	data, err := os.ReadFile(p.meta)
	if err != nil || json.Unmarshal(data, &m) != nil || m.URI != uri.String() || m.Validator == "" {
		return p // unknown bytes: start over
	}
	p.offset, p.validator = st.Size(), m.Validator
	return p
}

// discard forgets the partial copy.
func (p *partial) discard() {
	os.Remove(p.path)
	os.Remove(p.meta)
	p.offset, p.validator = 0, ""
}

// rangeNotSatisfiable reports a 416 answer: the partial copy no longer fits the media.
func rangeNotSatisfiable(err error) bool {
	var he mautrix.HTTPError
	return errors.As(err, &he) && he.Response != nil && he.Response.StatusCode == 416
}

// write appends the body of m to the partial copy (from m.Offset: 0 means the media came anew), feeds
// the whole file through observer, and moves it to path when complete. On failure the partial copy
// and its sidecar stay for the next --continue. It returns the bytes written in this run.
func (p *partial) write(path string, m *mediaclient.Media, src io.Reader, observer io.Writer, clobber bool) (int64, error) {
	meta, _ := json.Marshal(partialMeta{URI: m.URI.String(), Validator: m.Validator()})
	if err := os.WriteFile(p.meta, meta, 0o644); err != nil {
		return 0, fmt.Errorf("cannot write in %s: %w", filepath.Dir(p.path), err)
	}
	f, err := os.OpenFile(p.path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return 0, fmt.Errorf("cannot write in %s: %w", filepath.Dir(p.path), err)
	}
	if err := f.Truncate(m.Offset); err != nil {
		f.Close()
		return 0, err
	}
	if _, err := io.Copy(observer, io.NewSectionReader(f, 0, m.Offset)); err != nil {
		f.Close()
		return 0, err
	}
	if _, err := f.Seek(m.Offset, io.SeekStart); err != nil {
		f.Close()
		return 0, err
	}
	n, err := io.Copy(f, io.TeeReader(src, observer))
	if serr := f.Sync(); err == nil {
		err = serr
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if m.Validator() == "" && err != nil {
		p.discard() // bytes that cannot be matched later are of no use
	}
	if err != nil {
		return n, err
	}
	if err := finalize(p.path, path, clobber); err != nil {
		return n, err
	}
	os.Remove(p.meta)
	return n, nil
}
