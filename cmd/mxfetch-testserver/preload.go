package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"

	"github.com/mxfetch/mxfetch/testserver"
)

// preload adds every regular file of dir as media, streamed from the open file, and prints its content
// URI. The caller closes the returned files after the server. Symbolic links are followed.
func preload(srv *testserver.Server, dir string, stdout io.Writer) (files []*os.File, err error) {
	defer func() {
		if err != nil {
			for _, f := range files {
				f.Close()
			}
			files = nil
		}
	}()
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("preload: %w", err)
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name() < entries[j].Name() })
	for _, e := range entries {
		f, err := os.Open(filepath.Join(dir, e.Name()))
		if err != nil {
			return files, fmt.Errorf("preload: %w", err)
		}
		info, err := f.Stat()
		if err != nil || !info.Mode().IsRegular() {
			f.Close()
			if err != nil {
				return files, fmt.Errorf("preload: %w", err)
			}
			continue
		}
		files = append(files, f)
		head := make([]byte, 512)
		n, err := f.ReadAt(head, 0)
		if err != nil && err != io.EOF {
			return files, fmt.Errorf("preload: %w", err)
		}
		uri := srv.AddReaderAt(f, info.Size(), testserver.MediaOptions{
			ContentType: contentType(e.Name(), head[:n]),
			FileName:    e.Name(),
			MediaID:     mediaID(info),
			ModTime:     info.ModTime(),
		})
		fmt.Fprintf(stdout, "media        %s %s\n", uri, e.Name())
	}
	return files, nil
}

// mediaID derives a media ID from a file's name, size and modification time: the same file gets the
// same ID after a restart, and a changed file a new one.
func mediaID(info os.FileInfo) string {
	sum := sha256.Sum256(fmt.Appendf(nil, "%s\x00%d\x00%d", info.Name(), info.Size(), info.ModTime().UnixNano()))
	return "f" + hex.EncodeToString(sum[:12])
}
