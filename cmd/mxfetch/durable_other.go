//go:build !linux

package main

import (
	"io/fs"
	"os"
)

// openTemp creates the temporary file tmp in the directory: O_EXCL, which fails on anything already
// there, a symbolic link included.
func (d *outDir) openTemp(tmp string, perm fs.FileMode) (tempFile, error) {
	f, err := d.root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return nil, err
	}
	return f, nil
}

// syncAll syncs the data of a batch's files, one by one.
func (d *outDir) syncAll(batch []*pending) {
	for _, p := range batch {
		if err := p.f.Sync(); err != nil && p.err == nil {
			p.err = err
		}
	}
}

// place gives p's synced file its name without replacing anything (a hard link, which fails if the
// name is taken, then an unlink), or with --clobber replacing a regular file only.
func (d *outDir) place(p *pending) error {
	if p.clobber {
		return d.placeClobber(p)
	}
	return d.finalizeClosed(p.tmp, p.name)
}

// syncDir makes the directory's new names durable where the system can sync a directory.
func (d *outDir) syncDir() error {
	d.dir.Sync()
	return nil
}

func writeBack(tempFile, int64, int64) {}
