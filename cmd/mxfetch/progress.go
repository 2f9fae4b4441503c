package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"golang.org/x/term"
)

// progress draws a live bar per active download on a terminal, and a summary at the end. On a
// non-terminal, or with -q, it draws nothing; its methods are then no-ops.
type progress struct {
	p      *mpb.Progress // nil when disabled
	out    io.Writer     // where messages go: above the bars, or straight to stderr
	stderr io.Writer
	start  time.Time
	mu     sync.Mutex
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

func newProgress(enabled bool, stderr io.Writer) *progress {
	pr := &progress{out: stderr, stderr: stderr, start: time.Now()}
	if enabled {
		pr.p = mpb.New(mpb.WithOutput(stderr), mpb.WithWidth(32), mpb.WithRefreshRate(150*time.Millisecond))
		pr.out = pr.p
	}
	return pr
}

// printf writes a message line without breaking the bars.
func (pr *progress) printf(format string, args ...any) {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	fmt.Fprintf(pr.out, format, args...)
}

// tracker counts the bytes of one download.
type tracker struct {
	bar *mpb.Bar
}

// track starts a bar; total is -1 when unknown.
func (pr *progress) track(name string, total int64) *tracker {
	if pr.p == nil {
		return &tracker{}
	}
	if len(name) > 28 {
		name = name[:25] + "..."
	}
	if total < 0 {
		total = 0
	}
	bar := pr.p.AddBar(total,
		mpb.PrependDecorators(decor.Name(name, decor.WCSyncSpaceR), decor.CountersKibiByte("% .1f / % .1f", decor.WCSyncSpace)),
		mpb.AppendDecorators(decor.AverageSpeed(decor.SizeB1024(0), "% .1f", decor.WCSyncSpace), decor.Name(" ETA "), decor.AverageETA(decor.ET_STYLE_GO)),
	)
	if total == 0 {
		bar.EnableTriggerComplete()
	}
	return &tracker{bar: bar}
}

func (t *tracker) Write(p []byte) (int, error) {
	if t.bar != nil {
		t.bar.IncrBy(len(p))
	}
	return len(p), nil
}

// done completes the bar, or drops it on failure.
func (t *tracker) done(ok bool) {
	if t.bar == nil {
		return
	}
	if ok {
		t.bar.SetTotal(-1, true)
	} else {
		t.bar.Abort(true)
	}
}

// finish waits for the bars and prints the summary line.
func (pr *progress) finish(ok, failed, skipped int, bytes int64) {
	if pr.p == nil {
		return
	}
	pr.p.Wait()
	line := fmt.Sprintf("%d downloaded, %d failed", ok, failed)
	if skipped > 0 {
		line += fmt.Sprintf(", %d skipped", skipped)
	}
	fmt.Fprintf(pr.stderr, "%s: %s in %v\n", line, humanBytes(bytes), time.Since(pr.start).Round(time.Millisecond))
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
