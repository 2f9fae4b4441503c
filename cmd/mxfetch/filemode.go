package main

import "io/fs"

// newFileMode is the permission of a new file: 0666 less the umask, as curl, wget and touch give
// it (0644 under the usual umask 022, 0600 under 077).
func newFileMode() fs.FileMode { return 0o666 &^ umask() }
