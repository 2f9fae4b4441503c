package main

import (
	"errors"
	"io"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

// openTemp creates the temporary file tmp (a name without a slash) in the directory: O_EXCL, which
// fails on anything already there, a symbolic link included.
func (d *outDir) openTemp(tmp string, perm fs.FileMode) (tempFile, error) {
	fd, err := unix.Openat(d.fd, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, uint32(perm))
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: tmp, Err: err}
	}
	return fdFile(fd), nil
}

// fdFile is a file descriptor open for writing a regular file: what an *os.File would do for a
// temporary file, without its F_GETFL at creation and its allocation.
type fdFile int

func (f fdFile) Write(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		m, err := unix.Write(int(f), p[n:])
		if m > 0 {
			n += m
		}
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return n, &fs.PathError{Op: "write", Path: "temporary file", Err: err}
		case m == 0:
			return n, io.ErrShortWrite
		}
	}
	return n, nil
}

func (f fdFile) Sync() error {
	for {
		err := unix.Fsync(int(f))
		if err != unix.EINTR {
			if err != nil {
				return &fs.PathError{Op: "sync", Path: "temporary file", Err: err}
			}
			return nil
		}
	}
}

func (f fdFile) Close() error {
	if err := unix.Close(int(f)); err != nil {
		return &fs.PathError{Op: "close", Path: "temporary file", Err: err}
	}
	return nil
}

func (f fdFile) Fd() uintptr { return uintptr(f) }

// syncAll syncs the data of a batch's files: one syncfs(2) of the directory's file system for
// three files or more (one call, where an fsync a file would take a call and a journal commit
// each), an fsync each for fewer (a syncfs would also wait for other programs' writes). A failed
// syncfs does not say which file it concerns: each file is then synced on its own, which says.
func (d *outDir) syncAll(batch []*pending) {
	if len(batch) >= 3 && unix.Syncfs(d.fd) == nil {
		return
	}
	for _, p := range batch {
		if err := p.f.Sync(); err != nil && p.err == nil {
			p.err = err
		}
	}
}

// place gives p's synced file its name, in one step that fails if anything stands under the name
// (renameat2 with RENAME_NOREPLACE; a file system without it gets a hard link and an unlink, which
// fail in the same way).
func (d *outDir) place(p *pending) error {
	if p.clobber {
		return d.placeClobber(p)
	}
	err := unix.Renameat2(d.fd, p.tmp, d.fd, p.name, unix.RENAME_NOREPLACE)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.EEXIST):
		return d.existsError(p.name)
	case errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOSYS), errors.Is(err, unix.EOPNOTSUPP):
		return d.finalizeClosed(p.tmp, p.name)
	}
	return &os.LinkError{Op: "rename", Old: p.tmp, New: p.name, Err: err}
}

// syncDir makes the directory's new names durable.
func (d *outDir) syncDir() error { return d.dir.Sync() }

// writeBack asks the kernel to start writing a range of f to the disk now, without waiting: a large
// download then reaches the disk while it arrives, and the sync at the end has little left to do.
func writeBack(f tempFile, off, n int64) {
	unix.SyncFileRange(int(f.Fd()), off, n, unix.SYNC_FILE_RANGE_WRITE)
}
