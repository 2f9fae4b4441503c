package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mxfetch/mxfetch/internal/filename"
)

// This file holds where downloads go. Files are created in an output directory opened once as an
// os.Root: every name is relative to it, so a name cannot lead out of it, and a new file is created
// with O_EXCL, which never follows a symbolic link. A finished file is a temporary file, synced and
// then linked (or, with --clobber, renamed) to its name: no partial file ever stands under a final
// name, and a special file (a device, a FIFO, a terminal) is written to, never replaced.

// outDir is an output directory.
type outDir struct {
	root *os.Root
	path string // as the user gave it, for messages and --json paths
}

func openOutDir(path string) (*outDir, error) {
	root, err := os.OpenRoot(path)
	if err != nil {
		return nil, err
	}
	return &outDir{root: root, path: path}, nil
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
// the length of name.
func tempName(name string) string {
	var b [8]byte
	rand.Read(b[:])
	return ".mxfetch-" + filename.Prefix(name, 40) + "-" + hex.EncodeToString(b[:]) + ".tmp"
}

// createTemp creates a new private file for name.
func (d *outDir) createTemp(name string) (*os.File, string, error) {
	for range 5 {
		tmp := tempName(name)
		f, err := d.root.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return nil, "", fmt.Errorf("cannot write in %s: %w", d.path, err)
		}
		return f, tmp, nil
	}
	return nil, "", fmt.Errorf("cannot write in %s: no free temporary name", d.path)
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

// modeFor is the permission of a new file under name: that of the regular file it replaces, or
// newFileMode.
func (d *outDir) modeFor(name string) fs.FileMode {
	if st, err := d.root.Lstat(name); err == nil && st.Mode().IsRegular() {
		return st.Mode().Perm()
	}
	return newFileMode()
}

// writeFile writes src to a temporary file in d, syncs it and moves it to name. observer sees every
// byte written. It returns the bytes written.
func (d *outDir) writeFile(name string, src io.Reader, observer io.Writer, clobber bool) (int64, error) {
	if err := d.checkFree(name, clobber); err != nil {
		return 0, err
	}
	f, tmp, err := d.createTemp(name)
	if err != nil {
		return 0, err
	}
	done := false
	defer func() {
		f.Close()
		if !done {
			d.root.Remove(tmp)
		}
	}()
	n, err := io.Copy(f, io.TeeReader(src, observer))
	if err != nil {
		return n, err
	}
	if err := f.Sync(); err != nil {
		return n, err
	}
	if err := f.Chmod(d.modeFor(name)); err != nil {
		return n, err
	}
	if err := d.finalize(f, tmp, name, clobber); err != nil {
		return n, err
	}
	done = true
	return n, nil
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
	n, err := io.Copy(f, io.TeeReader(src, observer))
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
	if _, err := io.Copy(f, src); err != nil {
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
