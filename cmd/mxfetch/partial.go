package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/mxfetch/mxfetch/internal/filename"
	"github.com/mxfetch/mxfetch/mediaclient"
)

// partial is the kept, unfinished copy of one media item that --continue finishes. It lives in the
// output directory as .mxfetch-<start of the media ID>-<hash of the URI>.part (at most 96 bytes,
// whatever the URI), with a .json sidecar holding the URI, the validator (ETag or Last-Modified) its
// bytes belong to and the media's total size. While a run uses it, it is open and locked (flock): a
// second writer, in this run or another, is refused, never let in to write the same bytes.
//
// A copy is kept when the server gave a validator or the total size. The bytes behind an mxc URI never
// change, so a copy without a validator (matrix-media-repo sends none when it serves the bytes
// itself) is finished with Range alone, and the total the server gives then must be the one
// recorded: a copy of media of another size is discarded and the download starts over.
type partial struct {
	dir       *outDir
	name      string
	meta      string
	f         *os.File // open and locked
	offset    int64    // bytes kept from an earlier run
	validator string   // "" when the server gave none
	total     int64    // the media's size, 0 when unknown
	gone      bool     // discarded, or finished under its final name
}

type partialMeta struct {
	URI       string `json:"uri"`
	Validator string `json:"validator"`
	Total     int64  `json:"total,omitempty"`
}

// errBusy: another process (or download) holds the partial copy.
var errBusy = errors.New("the partial copy is being written by another mxfetch; try again when it has finished")

// partialNames is how many names the partial copy of one media may have. The first name that no
// other user's file holds (see foreign) is used: a file planted under the predictable name in a
// shared directory is passed over, never adopted, written to or removed, and the copy starts over
// under the next name, created private.
const partialNames = 4

// partialName is the ith name of the partial copy of uri (0 the usual one).
func partialName(uri id.ContentURI, i int) string {
	sum := sha256.Sum256([]byte(uri.String()))
	n := ""
	if i > 0 {
		n = "-" + strconv.Itoa(i)
	}
	return ".mxfetch-" + filename.Prefix(uri.FileID, 48) + "-" + hex.EncodeToString(sum[:8]) + n + ".part"
}

// errForeign: another user's file (see foreign) holds the name.
var errForeign = errors.New("another user's file holds the name")

// openPartial opens (or creates) the partial copy of uri in d and locks it, under the first of its
// names that no other user's file holds.
func (d *outDir) openPartial(uri id.ContentURI) (*partial, error) {
	for i := range partialNames {
		p, err := d.openPartialAt(uri, partialName(uri, i))
		if !errors.Is(err, errForeign) {
			return p, err
		}
	}
	return nil, fmt.Errorf("cannot keep a partial copy in %s: other users' files hold %s and its %d other names", d.path, partialName(uri, 0), partialNames-1)
}

// openPartialAt opens (or creates) the partial copy of uri under name and locks it. A name that
// holds something of the user's other than a plain regular file (a symbolic link, a FIFO) is
// removed, never followed, and a new copy is started; a file of another user's, or one the group
// or others may write to or with a second name, is left alone (errForeign).
func (d *outDir) openPartialAt(uri id.ContentURI, name string) (*partial, error) {
	meta := name + ".json"
	if d.foreignAt(meta) {
		return nil, errForeign
	}
	for range 4 {
		f, err := d.openRegular(name)
		if errors.Is(err, errForeign) {
			return nil, err
		}
		if err != nil {
			return nil, fmt.Errorf("cannot write in %s: %w", d.path, err)
		}
		if err := lockFile(f); err != nil {
			f.Close()
			return nil, err
		}
		// Locked: is the file still the one under the name (not unlinked by a writer that just
		// finished), and the user's alone?
		st, err1 := f.Stat()
		lst, err2 := d.root.Lstat(name)
		if err1 != nil || err2 != nil || !os.SameFile(st, lst) {
			f.Close()
			continue
		}
		if foreign(st) {
			f.Close()
			return nil, errForeign
		}
		p := &partial{dir: d, name: name, meta: meta, f: f}
		p.load(uri, st.Size())
		return p, nil
	}
	return nil, fmt.Errorf("the partial copy %s keeps changing", d.display(name))
}

// foreignAt reports whether another user's file (see foreign) stands under name.
func (d *outDir) foreignAt(name string) bool {
	st, err := d.root.Lstat(name)
	return err == nil && foreign(st)
}

// removeOwn removes name unless another user's file stands there.
func (d *outDir) removeOwn(name string) {
	if st, err := d.root.Lstat(name); err == nil && !foreign(st) {
		d.root.Remove(name)
	}
}

// openRegular opens the regular file name for reading and writing, creating it (O_EXCL, private)
// when absent; whatever else of the user's stands under the name is removed first, and another
// user's file is left alone (errForeign).
func (d *outDir) openRegular(name string) (*os.File, error) {
	for range 4 {
		st, err := d.root.Lstat(name)
		if errors.Is(err, fs.ErrNotExist) {
			f, err := d.root.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
			if errors.Is(err, fs.ErrExist) {
				continue // another writer was first: look again
			}
			return f, err
		}
		if err != nil {
			return nil, err
		}
		if foreign(st) {
			return nil, errForeign
		}
		if !st.Mode().IsRegular() {
			if err := d.root.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return nil, err
			}
			continue
		}
		f, err := d.root.OpenFile(name, os.O_RDWR, 0)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		return f, err
	}
	return nil, fmt.Errorf("%s keeps changing", d.display(name))
}

// load reads the sidecar: the kept bytes count only when they belong to uri and have a validator or
// a total size they fall short of.
func (p *partial) load(uri id.ContentURI, size int64) {
	var m partialMeta
	data, err := p.readMeta()
	if err != nil || size == 0 || json.Unmarshal(data, &m) != nil || m.URI != uri.String() ||
		m.Validator == "" && m.Total <= 0 || m.Total > 0 && size >= m.Total {
		p.reset()
		return
	}
	p.offset, p.validator, p.total = size, m.Validator, max(m.Total, 0)
}

func (p *partial) readMeta() ([]byte, error) {
	st, err := p.dir.root.Lstat(p.meta)
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() || foreign(st) || st.Size() > 64<<10 {
		return nil, errors.New("not a sidecar")
	}
	return p.dir.root.ReadFile(p.meta)
}

// writeMeta replaces the sidecar (a new file renamed over the name: a link planted there is
// replaced, not written through).
func (p *partial) writeMeta(m partialMeta) error {
	if p.dir.foreignAt(p.meta) {
		return fmt.Errorf("cannot keep a partial copy: %s: %w", p.dir.display(p.meta), errForeign)
	}
	data, _ := json.Marshal(m)
	f, tmp, err := p.dir.createTemp(p.meta)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = p.dir.root.Rename(tmp, p.meta)
	}
	if err != nil {
		p.dir.root.Remove(tmp)
	}
	return err
}

// reset forgets the kept bytes: the download starts over.
func (p *partial) reset() {
	p.f.Truncate(0)
	p.dir.removeOwn(p.meta)
	p.offset, p.validator, p.total = 0, "", 0
}

// discard removes the partial copy and its sidecar.
func (p *partial) discard() {
	p.dir.root.Remove(p.name)
	p.dir.removeOwn(p.meta)
	p.offset, p.validator, p.total = 0, "", 0
	p.gone = true
}

// kept returns the size of the copy kept for a later run, or 0 when there is none.
func (p *partial) kept() int64 {
	if p.gone {
		return 0
	}
	st, err := p.f.Stat()
	if err != nil {
		return 0
	}
	return st.Size()
}

// close releases the lock.
func (p *partial) close() { p.f.Close() }

// unusable reports an answer that shows the kept bytes cannot be finished: the range is not
// satisfiable (416), the media changed (ErrChanged) or the answer to the range does not fit
// (ErrRangeMismatch).
func unusable(err error) bool {
	var he mautrix.HTTPError
	return errors.Is(err, mediaclient.ErrChanged) || errors.Is(err, mediaclient.ErrRangeMismatch) ||
		errors.As(err, &he) && he.Response != nil && he.Response.StatusCode == 416
}

// write appends the body of m to the partial copy (from m.Offset: 0 means the media came anew),
// feeds the whole file (the kept bytes read back from disk, then the new ones) through observer,
// and gives it the name name when complete. It returns the size of the file. A failure keeps the
// copy for the next --continue when the server gave a validator or the total size, and discards it
// otherwise, when it is empty or when the media changed under it.
func (p *partial) write(name string, m *mediaclient.Media, src io.Reader, observer io.Writer, clobber bool) (int64, error) {
	if err := p.dir.checkFree(name, clobber); err != nil {
		return 0, err
	}
	if m.Offset != p.offset {
		p.offset = 0 // the whole media anew
	}
	if err := p.f.Truncate(p.offset); err != nil {
		return 0, err
	}
	if err := p.writeMeta(partialMeta{URI: m.URI.String(), Validator: m.Validator(), Total: max(m.Size(), 0)}); err != nil {
		return 0, err
	}
	if _, err := io.Copy(observer, io.NewSectionReader(p.f, 0, p.offset)); err != nil {
		return 0, err
	}
	if _, err := p.f.Seek(p.offset, io.SeekStart); err != nil {
		return 0, err
	}
	n, err := io.Copy(p.f, io.TeeReader(src, observer))
	if serr := p.f.Sync(); err == nil {
		err = serr
	}
	size := p.offset + n
	if err == nil {
		// What is on disk is what was written: the lock kept every other writer out.
		if st, serr := p.f.Stat(); serr != nil || st.Size() != size {
			err = fmt.Errorf("the partial copy changed while being written")
		}
	}
	if err != nil {
		if m.Validator() == "" && m.Size() <= 0 || size == 0 || errors.Is(err, mediaclient.ErrChanged) || errors.Is(err, mediaclient.ErrRangeMismatch) {
			p.discard() // bytes that cannot be matched later are of no use
		}
		return size, err
	}
	if err := p.f.Chmod(p.dir.modeFor(name)); err != nil {
		return size, err
	}
	if err := p.dir.finalize(p.f, p.name, name, clobber); err != nil {
		return size, err
	}
	p.dir.root.Remove(p.name) // still there after a link
	p.dir.removeOwn(p.meta)
	p.gone = true
	return size, nil
}

// removeStalePartial removes the partial copies of uri left by an earlier --continue run, once the
// media has been downloaded in full; a copy another process is writing, and another user's file,
// are left alone.
func (d *outDir) removeStalePartial(uri id.ContentURI) {
	for i := range partialNames {
		d.removeStale(partialName(uri, i))
	}
}

func (d *outDir) removeStale(name string) {
	st, err := d.root.Lstat(name)
	if err != nil || foreign(st) {
		return
	}
	if st.Mode().IsRegular() {
		f, err := d.root.OpenFile(name, os.O_RDWR, 0)
		if err != nil {
			return
		}
		defer f.Close()
		if lockFile(f) != nil {
			return
		}
		if fst, err := f.Stat(); err != nil || !os.SameFile(fst, st) {
			return
		}
	}
	d.root.Remove(name)
	d.removeOwn(name + ".json")
}
