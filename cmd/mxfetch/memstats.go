//go:build mxfetch_memstats

package main

import (
	"fmt"
	"os"
	"runtime"
)

// Built with -tags mxfetch_memstats (the benchmark does), the command writes its memory statistics
// at the end of a run to the file MXFETCH_MEMSTATS names, as one JSON object.
func init() {
	memStats = func(files int) {
		path := os.Getenv("MXFETCH_MEMSTATS")
		if path == "" {
			return
		}
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		os.WriteFile(path, fmt.Appendf(nil, `{"files":%d,"total_alloc":%d,"mallocs":%d,"heap_sys":%d,"num_gc":%d}`+"\n",
			files, m.TotalAlloc, m.Mallocs, m.HeapSys, m.NumGC), 0o644)
	}
}
