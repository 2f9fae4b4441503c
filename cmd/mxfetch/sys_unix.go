//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package main

import (
	"io/fs"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// umaskMu serialises the fallback of umask, which sets the mask for a moment.
var umaskMu sync.Mutex

// umask returns the process's file mode creation mask: from /proc/self/status where the system has
// it (Linux 4.7 and later), which leaves the mask alone; else by setting a strict mask for a moment
// and putting the old one back.
func umask() fs.FileMode {
	if data, err := os.ReadFile("/proc/self/status"); err == nil {
		for line := range strings.Lines(string(data)) {
			if v, ok := strings.CutPrefix(line, "Umask:"); ok {
				if n, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32); err == nil {
					return fs.FileMode(n) & fs.ModePerm
				}
			}
		}
	}
	umaskMu.Lock()
	defer umaskMu.Unlock()
	old := syscall.Umask(0o077)
	syscall.Umask(old)
	return fs.FileMode(old) & fs.ModePerm
}

// foreign reports a file (as Lstat describes it) that is not the user's alone: owned by another
// user or, for a regular file, writable by the group or by others, or with more than one name. Such
// a file in the output directory is never written to, adopted or removed.
func foreign(st fs.FileInfo) bool {
	s, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return false
	}
	if int(s.Uid) != os.Geteuid() {
		return true
	}
	return st.Mode().IsRegular() && (st.Mode().Perm()&0o022 != 0 || s.Nlink > 1)
}

// setBlocking puts f back in blocking mode.
func setBlocking(f *os.File) {
	if rc, err := f.SyscallConn(); err == nil {
		rc.Control(func(fd uintptr) { syscall.SetNonblock(int(fd), false) })
	}
}
