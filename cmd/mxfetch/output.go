package main

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"maunium.net/go/mautrix/id"

	"github.com/mxfetch/mxfetch/internal/filename"
)

// This file holds where downloads go. Files are created in an output directory opened once as an
// os.Root: every name is relative to it, so a name cannot lead out of it, and a new file is created
// with O_EXCL, which never follows a symbolic link. A finished download is a temporary file that
// waits for the sync of its batch (commit.go) and only then gets its name, without replacing
// anything (or, with --clobber, replacing a regular file only): no partial or unsynced file ever
// stands under a final name, and a special file (a device, a FIFO, a terminal) is written to, never
// replaced.

// outDir is an output directory.
type outDir struct {
	root *os.Root
	dir  *os.File // the directory itself: syncs, and renames relative to it
	fd   int      // dir's descriptor
	path string   // as the user gave it, for messages and --json paths

	// What the directory held when the run started (see scan): names that may be taken, as hashes
	// (nil: look at every name), and whether any partial copy of a --continue run was there.
	seed     maphash.Seed
	taken    map[uint64]struct{}
	partials bool
}

// maxScanned bounds the names scan remembers: past it, every name is looked at on the disk.
const maxScanned = 1 << 16

func openOutDir(path string) (*outDir, error) {
	root, err := os.OpenRoot(path)
	if err != nil {
		return nil, err
	}
	dir, err := root.Open(".")
	if err != nil {
		root.Close()
		return nil, err
	}
	return &outDir{root: root, dir: dir, fd: int(dir.Fd()), path: path, seed: maphash.MakeSeed(), partials: true}, nil
}

func (d *outDir) close() {
	d.dir.Close()
	d.root.Close()
}

// scan reads the directory's names once, so that a download into an empty (or unrelated) directory
// costs no look-up of its name and no search for a stale partial copy: one pass over the directory
// instead of two look-ups a file, each taking the directory's lock against the other downloads'
// creations. A name that appears after the scan is still never replaced: placing the file fails.
func (d *outDir) scan() {
	d.taken, d.partials = map[uint64]struct{}{}, false
	for {
		names, err := d.dir.Readdirnames(1024)
		for _, n := range names {
			if strings.HasPrefix(n, ".mxfetch-") && strings.HasSuffix(n, ".part") {
				d.partials = true
			}
			if d.taken != nil {
				d.taken[maphash.String(d.seed, n)] = struct{}{}
				if len(d.taken) > maxScanned {
					d.taken = nil
				}
			}
		}
		if err != nil {
			if err != io.EOF {
				d.taken, d.partials = nil, true
			}
			return
		}
	}
}

// mayExist reports whether something may stand under name: false only when the scan saw no such
// name.
func (d *outDir) mayExist(name string) bool {
	if d.taken == nil {
		return true
	}
	_, ok := d.taken[maphash.String(d.seed, name)]
	return ok
}

// display is the path of name for messages and --json.
func (d *outDir) display(name string) string { return filepath.Join(d.path, name) }

// errExists reports a file in the way; the message says what to do.
type errExists struct {
	path    string
	special string // "" for a regular file, else what it is
}

func (e *errExists) Error() string {
	if e.special != "" {
		return fmt.Sprintf("%s exists and is %s: not replaced", e.path, e.special)
	}
	return fmt.Sprintf("%s exists (use --clobber to overwrite or --skip-existing)", e.path)
}

func (e *errExists) Is(target error) bool { return target == fs.ErrExist }

// kind names what a non-regular file is, for messages.
func kind(m fs.FileMode) string {
	switch {
	case m&fs.ModeSymlink != 0:
		return "a symbolic link"
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case m&fs.ModeDevice != 0:
		return "a device"
	case m&fs.ModeSocket != 0:
		return "a socket"
	}
	return "not a regular file"
}

// checkFree says whether name can receive a download: nil when nothing is there, errExists when a
// file is (a regular file may be replaced with clobber; anything else never is).
func (d *outDir) checkFree(name string, clobber bool) error {
	st, err := d.root.Lstat(name)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return err
	case !st.Mode().IsRegular():
		return &errExists{path: d.display(name), special: kind(st.Mode())}
	case clobber:
		return nil
	}
	return &errExists{path: d.display(name)}
}

// tempName returns a fresh hidden name for the temporary file of name: at most 76 bytes, whatever
// the length of name. Its random part comes from a generator seeded by the system; O_EXCL, not the
// name, is what keeps another file out.
func tempName(name string) string {
	return ".mxfetch-" + filename.Prefix(name, 40) + "-" + strconv.FormatUint(rand.Uint64()|1<<63, 16) + ".tmp"
}

// createTemp creates a new private file for name.
func (d *outDir) createTemp(name string) (*os.File, string, error) {
	var f *os.File
	tmp, err := d.newTemp(name, func(tmp string) (err error) {
		f, err = d.root.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		return err
	})
	return f, tmp, err
}

// newTemp picks a free temporary name for name and creates it with create, which must fail with
// fs.ErrExist when the name is taken.
func (d *outDir) newTemp(name string, create func(tmp string) error) (string, error) {
	for range 5 {
		tmp := tempName(name)
		err := create(tmp)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("cannot write in %s: %w", d.path, err)
		}
		return tmp, nil
	}
	return "", fmt.Errorf("cannot write in %s: no free temporary name", d.path)
}

// tempFile is an open temporary file that a download is written to: an *os.File, or on Linux a
// bare descriptor (fdFile, durable_linux.go).
type tempFile interface {
	io.Writer
	Sync() error
	Close() error
	Fd() uintptr
}

// createTempMode creates a new file for name, for writing, with the given permission (less the
// umask).
func (d *outDir) createTempMode(name string, perm fs.FileMode) (tempFile, string, error) {
	var f tempFile
	tmp, err := d.newTemp(name, func(tmp string) (err error) {
		f, err = d.openTemp(tmp, perm)
		return err
	})
	return f, tmp, err
}

// finalize gives the complete file tmp (whose open handle is f) the name name. Without clobber an
// existing file is never replaced: a hard link fails if the name appeared meanwhile, where a rename
// would silently replace it. With clobber only a regular file is replaced, by an atomic rename.
func (d *outDir) finalize(f *os.File, tmp, name string, clobber bool) error {
	if err := d.checkFree(name, clobber); err != nil {
		return err
	}
	if clobber {
		if err := d.root.Rename(tmp, name); err != nil {
			return err
		}
	} else if err := d.root.Link(tmp, name); err == nil {
		d.root.Remove(tmp)
	} else if errors.Is(err, fs.ErrExist) {
		return &errExists{path: d.display(name)}
	} else if _, serr := d.root.Lstat(name); errors.Is(serr, fs.ErrNotExist) {
		if err := d.root.Rename(tmp, name); err != nil { // a file system without hard links
			return err
		}
	} else {
		return err
	}
	// The name must now be the file written: anything else under it is removed, not kept.
	st, err1 := f.Stat()
	lst, err2 := d.root.Lstat(name)
	if err1 != nil || err2 != nil || !os.SameFile(st, lst) {
		return fmt.Errorf("%s was replaced while being written", d.display(name))
	}
	return nil
}

// finalizeClosed gives the closed temporary file tmp the name name without replacing anything: a
// hard link, which fails if the name is taken, then the unlink of tmp; on a file system without hard
// links, a rename once the name is seen free, checked afterwards.
func (d *outDir) finalizeClosed(tmp, name string) error {
	err := d.root.Link(tmp, name)
	switch {
	case err == nil:
		d.root.Remove(tmp)
		return nil
	case errors.Is(err, fs.ErrExist):
		return d.existsError(name)
	}
	if _, serr := d.root.Lstat(name); serr == nil {
		return d.existsError(name)
	} else if !errors.Is(serr, fs.ErrNotExist) {
		return err
	}
	before, err := d.root.Lstat(tmp)
	if err != nil {
		return err
	}
	if err := d.root.Rename(tmp, name); err != nil {
		return err
	}
	if after, err := d.root.Lstat(name); err != nil || !os.SameFile(before, after) {
		return fmt.Errorf("%s was replaced while being written", d.display(name))
	}
	return nil
}

// modeFor is the permission of a new file under name: that of the regular file it replaces, or
// newFileMode.
func (d *outDir) modeFor(name string) fs.FileMode {
	if st, err := d.root.Lstat(name); err == nil && st.Mode().IsRegular() {
		return st.Mode().Perm()
	}
	return newFileMode()
}

// pending is a finished download waiting in its temporary file, open and not yet synced, for the
// commit of its batch to sync it and give it its name.
type pending struct {
	f       tempFile
	tmp     string
	name    string
	clobber bool
	perm    fs.FileMode // with clobber, the permission of the file it replaces; 0 for none
	err     error       // set by the commit when the file could not be kept

	job int           // for the report, once committed
	r   *result       // idem
	uri id.ContentURI // for removing a stale partial copy
}

// writeTemp writes src (of size bytes, -1 when unknown) to a new temporary file for name and
// returns it, unsynced, for the commit of its batch; observer sees every byte written. It returns the bytes written. A new file is
// created with its final permission, 0666 less the umask (newFileMode, which the kernel applies at
// creation); one that replaces a regular file (with
// clobber) is private until it takes that file's permission.
func (d *outDir) writeTemp(name string, src io.Reader, size int64, observer io.Writer, clobber bool) (*pending, int64, error) {
	p := &pending{name: name, clobber: clobber}
	perm := fs.FileMode(0o666) // less the umask, by the kernel: newFileMode
	if clobber {
		st, err := d.root.Lstat(name)
		switch {
		case err == nil && !st.Mode().IsRegular():
			return nil, 0, &errExists{path: d.display(name), special: kind(st.Mode())}
		case err == nil:
			p.perm, perm = st.Mode().Perm(), 0o600
		case !errors.Is(err, fs.ErrNotExist):
			return nil, 0, err
		}
	}
	f, tmp, err := d.createTempMode(name, perm)
	if err != nil {
		return nil, 0, err
	}
	p.f, p.tmp = f, tmp
	n, err := fillOut(&sink{w: f, f: f}, src, observer, size)
	if err != nil {
		f.Close()
		d.root.Remove(tmp)
		return nil, n, err
	}
	return p, n, nil
}

// sink writes to a file and then shows the bytes to the observer, if any (the progress bar and the
// checksum).
type sink struct {
	w        io.Writer
	f        tempFile // the file w writes to, or nil
	observer io.Writer
	written  int64
	hinted   int64 // bytes handed to the kernel for write-back (see writeBack)
}

func (s *sink) Write(p []byte) (int, error) {
	n, err := s.w.Write(p)
	if n > 0 {
		if s.observer != nil {
			s.observer.Write(p[:n])
		}
		s.written += int64(n)
		if s.f != nil && s.written-s.hinted >= writeBackChunk {
			writeBack(s.f, s.hinted, s.written-s.hinted)
			s.hinted = s.written
		}
	}
	return n, err
}

// writeBackChunk is how many bytes of a large file are written before the kernel is asked to start
// writing them to the disk, so that the sync at the end finds little left to do.
const writeBackChunk = 8 << 20

// copyBufs holds the copy buffers, so that memory does not grow with the number of downloads. Unlike
// a sync.Pool, which every garbage collection empties, it keeps its buffers: a run of many small
// files makes as many buffers as it has downloads at once, not a few with every collection.
var copyBufs = bufferPool{free: make(chan *[]byte, 16), size: 64 << 10}

// largeBufs holds the buffers of large files: fewer, larger writes (measured on tmpfs: 256 KiB
// writes move a 512 MiB file 5% faster than 64 KiB ones).
var largeBufs = bufferPool{free: make(chan *[]byte, 4), size: 256 << 10}

// largeFile is the size from which a download is copied with largeBufs.
const largeFile = 4 << 20

// bufferPool is a bounded free list of buffers of one size.
type bufferPool struct {
	free chan *[]byte
	size int
}

func (p bufferPool) Get() *[]byte {
	select {
	case b := <-p.free:
		return b
	default:
		b := make([]byte, p.size)
		return &b
	}
}

// Put returns a buffer; past the list's bound it is left to the garbage collector.
func (p bufferPool) Put(b *[]byte) {
	select {
	case p.free <- b:
	default:
	}
}

// fillOut copies src (of size bytes, -1 when unknown) to the file dst with one pooled buffer,
// filled before each write: a small
// file takes one write however its bytes arrive (the first read returns what the transport had
// buffered with the headers). observer sees the bytes as they are read, so that the progress bar
// moves with the network, not with the writes.
func fillOut(dst io.Writer, src io.Reader, observer io.Writer, size int64) (int64, error) {
	pool := copyBufs
	if size >= largeFile {
		pool = largeBufs
	}
	bp := pool.Get()
	defer pool.Put(bp)
	buf := *bp
	var total int64
	for {
		n, rerr := readFull(src, buf, observer)
		if n > 0 {
			w, werr := dst.Write(buf[:n])
			total += int64(w)
			if werr != nil {
				return total, werr
			}
			if w != n {
				return total, io.ErrShortWrite
			}
		}
		if rerr == io.EOF {
			return total, nil
		}
		if rerr != nil {
			return total, rerr
		}
	}
}

// readFull reads into buf until it is full, the stream ends (io.EOF, with what was read) or fails,
// showing observer every byte read.
func readFull(src io.Reader, buf []byte, observer io.Writer) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := src.Read(buf[n:])
		if m > 0 {
			observer.Write(buf[n : n+m])
			n += m
		}
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// copyOut copies src to dst with one pooled buffer: src's own WriteTo when it has one (a Media moves
// its bytes through the library's pooled 64 KiB buffer), else a buffer of the command's pool. dst's
// ReadFrom is never used: an *os.File's would allocate a buffer of its own for every copy.
func copyOut(dst io.Writer, src io.Reader) (int64, error) {
	if wt, ok := src.(io.WriterTo); ok {
		return wt.WriteTo(dst)
	}
	bp := copyBufs.Get()
	defer copyBufs.Put(bp)
	return io.CopyBuffer(struct{ io.Writer }{dst}, src, *bp)
}

// commit makes a batch of finished downloads durable and gives each its name: the files' data is
// synced first (syncAll: one syncfs for the batch where the system has it), then each file takes its
// name without replacing anything that appeared meanwhile (place), then the directory is synced
// once, so that the names are on the disk too. Each pending's err says how it went; a file that is
// not kept is removed.
func (d *outDir) commit(batch []*pending) {
	d.syncAll(batch)
	placed := 0
	for _, p := range batch {
		if err := p.f.Close(); p.err == nil && err != nil {
			p.err = err
		}
		if p.err == nil {
			p.err = d.place(p)
		}
		if p.err != nil {
			d.root.Remove(p.tmp)
			continue
		}
		placed++
	}
	if placed == 0 {
		return
	}
	if err := d.syncDir(); err != nil {
		for _, p := range batch {
			if p.err == nil {
				p.err = fmt.Errorf("syncing %s: %w", d.path, err)
			}
		}
	}
}

// placeClobber gives p's file its name with --clobber: a regular file there is replaced (its
// permission kept), anything else is not.
func (d *outDir) placeClobber(p *pending) error {
	st, err := d.root.Lstat(p.name)
	switch {
	case err == nil && !st.Mode().IsRegular():
		return &errExists{path: d.display(p.name), special: kind(st.Mode())}
	case err == nil && p.perm == 0:
		p.perm = st.Mode().Perm()
	}
	if p.perm != 0 {
		if err := d.root.Chmod(p.tmp, p.perm); err != nil {
			return err
		}
	}
	return d.root.Rename(p.tmp, p.name)
}

// existsError says what stands under name, which a file could not take.
func (d *outDir) existsError(name string) error {
	if st, err := d.root.Lstat(name); err == nil && !st.Mode().IsRegular() {
		return &errExists{path: d.display(name), special: kind(st.Mode())}
	}
	return &errExists{path: d.display(name)}
}

// target is where -o FILE points, decided once before any download.
type target struct {
	// special is set for a device, FIFO or socket (through symbolic links): written to as it is.
	special bool
	// inherited is set, with special, for a path that names a descriptor mxfetch was given
	// (/dev/stdout, /dev/stderr, /dev/fd/N, /proc/self/fd/N): fd is written to as it is, at its
	// offset and with its flags, as -o - writes to standard output. Opening the path again would
	// start at offset 0 of a file the shell opened to append to.
	inherited bool
	fd        int
	// dir and name place a regular file: the directory holding the file the path leads to (a
	// symbolic link is followed, so that it keeps pointing at the new file) and its name there.
	dir  string
	name string
	// exists is set when a regular file is already there.
	exists bool
}

// resolveTarget decides what -o PATH is.
func resolveTarget(path string) (*target, error) {
	if fd, ok := inheritedFD(path); ok {
		return &target{special: true, inherited: true, fd: fd}, nil
	}
	st, err := os.Stat(path)
	switch {
	case err == nil && !st.Mode().IsRegular():
		return &target{special: true}, nil
	case err == nil:
		real, err := filepath.EvalSymlinks(path)
		if err != nil {
			return nil, err
		}
		return &target{dir: filepath.Dir(real), name: filepath.Base(real), exists: true}, nil
	case errors.Is(err, fs.ErrNotExist):
		if lst, lerr := os.Lstat(path); lerr == nil && lst.Mode()&fs.ModeSymlink != 0 {
			return nil, fmt.Errorf("%s is a symbolic link to nothing", path)
		}
		return &target{dir: filepath.Dir(path), name: filepath.Base(path)}, nil
	}
	return nil, err
}

// inheritedFD returns the descriptor that path names, if it names one: /dev/stdin, /dev/stdout,
// /dev/stderr, /dev/fd/N or /proc/self/fd/N.
func inheritedFD(path string) (int, bool) {
	p := filepath.ToSlash(filepath.Clean(path))
	switch p {
	case "/dev/stdin":
		return 0, true
	case "/dev/stdout":
		return 1, true
	case "/dev/stderr":
		return 2, true
	}
	for _, dir := range []string{"/dev/fd/", "/proc/self/fd/"} {
		if n, ok := strings.CutPrefix(p, dir); ok {
			fd, err := strconv.Atoi(n)
			return fd, err == nil && fd >= 0 && strconv.Itoa(fd) == n
		}
	}
	return 0, false
}

// writeThrough writes src into the special file at path (opened for writing, never created,
// truncated or replaced). A FIFO without a reader is waited for until ctx ends.
func writeThrough(ctx context.Context, path string, src io.Reader, observer io.Writer) (int64, error) {
	f, err := openThrough(ctx, path)
	if err != nil {
		return 0, err
	}
	n, err := copyOut(&sink{w: f, observer: observer}, src)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return n, err
}

// openThrough opens the special file at path for writing without blocking: a FIFO without a
// reader (ENXIO) is tried again, less often each time, until it has one or ctx ends. The file is
// left to the runtime's poller where it takes it (a FIFO, a terminal on Linux), so that a write
// that blocks ends when ctx does; anything else is made blocking again.
func openThrough(ctx context.Context, path string) (*os.File, error) {
	wait := time.Millisecond
	for {
		f, err := os.OpenFile(path, os.O_WRONLY|syscall.O_NONBLOCK, 0)
		if err == nil {
			if f.SetWriteDeadline(time.Time{}) != nil { // not in the poller
				setBlocking(f)
			} else {
				context.AfterFunc(ctx, func() { f.SetWriteDeadline(time.Now()) })
			}
			return f, nil
		}
		if !errors.Is(err, syscall.ENXIO) {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%s has no reader: %w", path, ctx.Err())
		case <-time.After(wait):
		}
		wait = min(2*wait, 100*time.Millisecond)
	}
}

// buffered holds a whole stream in a private temporary file before handing it on: the plaintext of
// an encrypted attachment goes to stdout or a special file only once its hash matched, which is
// known at the end of the stream.
func buffered(src io.Reader) (io.ReadCloser, error) {
	f, err := os.CreateTemp("", "mxfetch-plain-*")
	if err != nil {
		return nil, err
	}
	// Unlinked at once where the system allows it: no other process finds it by name.
	removed := os.Remove(f.Name()) == nil
	cleanup := func() {
		f.Close()
		if !removed {
			os.Remove(f.Name())
		}
	}
	if _, err := copyOut(struct{ io.Writer }{f}, src); err != nil {
		cleanup()
		return nil, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		cleanup()
		return nil, err
	}
	return readCloser{Reader: f, close: func() error { cleanup(); return nil }}, nil
}

type readCloser struct {
	io.Reader
	close func() error
}

func (r readCloser) Close() error { return r.close() }
