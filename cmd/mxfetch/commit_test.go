package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// newTestDir opens a fresh output directory, scanned as a run scans it.
func newTestDir(t *testing.T) (*outDir, string) {
	t.Helper()
	path := t.TempDir()
	d, err := openOutDir(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.close)
	d.scan()
	return d, path
}

func writePending(t *testing.T, d *outDir, name string, data []byte, clobber bool) *pending {
	t.Helper()
	p, n, err := d.writeTemp(name, bytes.NewReader(data), int64(len(data)), io.Discard, clobber)
	if err != nil || n != int64(len(data)) {
		t.Fatalf("writeTemp %s: %d bytes, %v", name, n, err)
	}
	return p
}

// TestCommitterReportsEachOnce: files added from many goroutines are each committed and reported
// once, under their names with their bytes, and no temporary file is left.
func TestCommitterReportsEachOnce(t *testing.T) {
	d, path := newTestDir(t)
	var mu sync.Mutex
	reported := map[string]int{}
	c := newCommitter(d, func(p *pending) {
		if p.err != nil {
			t.Errorf("%s: %v", p.name, p.err)
		}
		mu.Lock()
		reported[p.name]++
		mu.Unlock()
	})
	const files, workers = 300, 8
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < files; i += workers {
				name := fmt.Sprintf("f%03d", i)
				c.add(writePending(t, d, name, []byte(name), false))
			}
		})
	}
	wg.Wait()
	c.close()
	if len(reported) != files {
		t.Errorf("%d files reported, want %d", len(reported), files)
	}
	for name, n := range reported {
		if n != 1 {
			t.Errorf("%s reported %d times", name, n)
		}
		if got, err := os.ReadFile(filepath.Join(path, name)); err != nil || string(got) != name {
			t.Errorf("%s holds %q, %v", name, got, err)
		}
	}
	if names := dirNames(t, path); len(names) != files {
		t.Errorf("%d entries in the directory, want %d", len(names), files)
	}
}

// TestCommitterCloseEmpty: closing a committer that got nothing returns.
func TestCommitterCloseEmpty(t *testing.T) {
	d, _ := newTestDir(t)
	c := newCommitter(d, func(p *pending) { t.Errorf("reported %s", p.name) })
	c.close()
}

// TestCommitNeverReplaces: a file that appeared under the name after the download began is kept;
// the download fails with fs.ErrExist and its temporary file is removed. A batch's other files are
// placed.
func TestCommitNeverReplaces(t *testing.T) {
	for _, n := range []int{1, 4} { // an fsync each, and one syncfs for the batch
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			d, path := newTestDir(t)
			var batch []*pending
			for i := range n {
				batch = append(batch, writePending(t, d, fmt.Sprintf("f%d", i), []byte("new"), false))
			}
			os.WriteFile(filepath.Join(path, "f0"), []byte("there first"), 0o644)
			d.commit(batch)
			if !errors.Is(batch[0].err, fs.ErrExist) {
				t.Errorf("err %v, want fs.ErrExist", batch[0].err)
			}
			if got, _ := os.ReadFile(filepath.Join(path, "f0")); string(got) != "there first" {
				t.Errorf("f0 holds %q", got)
			}
			for _, p := range batch[1:] {
				if got, _ := os.ReadFile(filepath.Join(path, p.name)); p.err != nil || string(got) != "new" {
					t.Errorf("%s: %v, %q", p.name, p.err, got)
				}
			}
			if names := dirNames(t, path); len(names) != n {
				t.Errorf("left %v", names)
			}
		})
	}
}

// TestCommitRefusesSpecial: with --clobber a regular file is replaced (keeping its permission), a
// directory or a symbolic link under the name is not: neither one there when the download starts,
// nor one that appears while it runs.
func TestCommitRefusesSpecial(t *testing.T) {
	d, path := newTestDir(t)
	os.Mkdir(filepath.Join(path, "there"), 0o755)
	if _, _, err := d.writeTemp("there", strings.NewReader("new"), 3, io.Discard, true); !errors.Is(err, fs.ErrExist) {
		t.Errorf("a directory there: %v, want fs.ErrExist", err)
	}
	os.WriteFile(filepath.Join(path, "regular"), []byte("old"), 0o600)
	batch := []*pending{
		writePending(t, d, "regular", []byte("new"), true),
		writePending(t, d, "dir", []byte("new"), true),
		writePending(t, d, "link", []byte("new"), true),
	}
	os.Mkdir(filepath.Join(path, "dir"), 0o755)
	os.Symlink("regular", filepath.Join(path, "link"))
	d.commit(batch)
	if got, _ := os.ReadFile(filepath.Join(path, "regular")); batch[0].err != nil || string(got) != "new" {
		t.Errorf("regular: %v, %q", batch[0].err, got)
	}
	if st, _ := os.Stat(filepath.Join(path, "regular")); st.Mode().Perm() != 0o600 {
		t.Errorf("regular: mode %v, want the old 0600", st.Mode().Perm())
	}
	for _, p := range batch[1:] {
		if !errors.Is(p.err, fs.ErrExist) {
			t.Errorf("%s: %v, want fs.ErrExist", p.name, p.err)
		}
	}
	if st, err := os.Lstat(filepath.Join(path, "link")); err != nil || st.Mode()&fs.ModeSymlink == 0 {
		t.Error("the link was replaced")
	}
	if names := dirNames(t, path); len(names) != 4 {
		t.Errorf("left %v", names)
	}
}

// TestScan: the scan remembers the names there and notices a partial copy.
func TestScan(t *testing.T) {
	path := t.TempDir()
	os.WriteFile(filepath.Join(path, "here.txt"), nil, 0o644)
	d, err := openOutDir(path)
	if err != nil {
		t.Fatal(err)
	}
	defer d.close()
	if !d.mayExist("anything") || !d.partials {
		t.Error("before the scan, every name may exist and partial copies may be there")
	}
	d.scan()
	if !d.mayExist("here.txt") || d.mayExist("new.txt") || d.partials {
		t.Errorf("after the scan: here.txt %v, new.txt %v, partials %v", d.mayExist("here.txt"), d.mayExist("new.txt"), d.partials)
	}
	os.WriteFile(filepath.Join(path, ".mxfetch-abc-0123456789abcdef.part"), nil, 0o644)
	d2, _ := openOutDir(path)
	defer d2.close()
	d2.scan()
	if !d2.partials {
		t.Error("the partial copy went unnoticed")
	}
}

// writerToReader has a WriteTo, which copyOut must use.
type writerToReader struct {
	io.Reader
	used bool
}

func (r *writerToReader) WriteTo(w io.Writer) (int64, error) {
	r.used = true
	return io.Copy(struct{ io.Writer }{w}, r.Reader)
}

// readFromWriter must never have its ReadFrom used: an *os.File's allocates a buffer a copy.
type readFromWriter struct {
	bytes.Buffer
	t *testing.T
}

func (w *readFromWriter) ReadFrom(r io.Reader) (int64, error) {
	w.t.Error("ReadFrom used")
	return w.Buffer.ReadFrom(r)
}

func TestCopyOut(t *testing.T) {
	src := &writerToReader{Reader: strings.NewReader("through WriteTo")}
	var dst bytes.Buffer
	if n, err := copyOut(&dst, src); err != nil || n != 15 || !src.used || dst.String() != "through WriteTo" {
		t.Errorf("WriteTo: %d, %v, used %v, %q", n, err, src.used, dst.String())
	}
	w := &readFromWriter{t: t}
	if n, err := copyOut(w, strings.NewReader("through the pool")); err != nil || n != 16 || w.String() != "through the pool" {
		t.Errorf("pool: %d, %v, %q", n, err, w.String())
	}
}

// chunkReader returns its bytes a few at a time.
type chunkReader struct {
	data  []byte
	chunk int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), r.chunk)], r.data)
	r.data = r.data[n:]
	return n, nil
}

// countingWriter counts its writes.
type countingWriter struct {
	bytes.Buffer
	writes int
}

func (w *countingWriter) Write(p []byte) (int, error) {
	w.writes++
	return w.Buffer.Write(p)
}

// TestFillOut: bytes that arrive in pieces reach the file in one write per buffer, and the observer
// sees every byte as it is read.
func TestFillOut(t *testing.T) {
	for _, size := range []int{0, 100, 16 << 10, 64 << 10, 200 << 10} {
		data := make([]byte, size)
		for i := range data {
			data[i] = byte(i * 7)
		}
		var file countingWriter
		var seen bytes.Buffer
		n, err := fillOut(&file, &chunkReader{data: data, chunk: 1000}, &seen, int64(size))
		want := (size + 64<<10 - 1) / (64 << 10)
		if err != nil || n != int64(size) || !bytes.Equal(file.Bytes(), data) || !bytes.Equal(seen.Bytes(), data) || file.writes != want {
			t.Errorf("%d bytes: %d, %v; %d writes, want %d; observer saw %d bytes", size, n, err, file.writes, want, seen.Len())
		}
	}
	broken := errors.New("broken")
	if _, err := fillOut(io.Discard, io.MultiReader(strings.NewReader("some"), iotest(broken)), io.Discard, -1); !errors.Is(err, broken) {
		t.Errorf("a failing read: %v", err)
	}
}

func iotest(err error) io.Reader { return errReader{err} }

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }
