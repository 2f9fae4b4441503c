//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package main

import (
	"io/fs"
	"os"
)

// umask is the usual mask where the system has none to ask.
func umask() fs.FileMode { return 0o022 }

// foreign cannot tell another user's file here.
func foreign(fs.FileInfo) bool { return false }

// setBlocking has nothing to do here.
func setBlocking(*os.File) {}
