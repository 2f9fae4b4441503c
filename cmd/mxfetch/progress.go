package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mattn/go-runewidth"
	"golang.org/x/term"
)

// progress owns stderr. On a terminal it keeps one live line per active download at the bottom of
// the screen and prints messages above them; elsewhere (or with -q) it draws nothing and messages
// go straight to stderr. Every message passes through escape, so that server text cannot drive the
// terminal, and has the access token hidden (redact.go).
type progress struct {
	mu     sync.Mutex
	w      io.Writer
	secret redactor // what every message hides
	live   bool
	width  func() int
	start  time.Time
	bars   []*tracker // active downloads, in start order
	drawn  int        // bar lines on the screen below the last message
	stop   chan struct{}
	done   chan struct{}
	closed bool
}

// isTerminal reports whether w is a terminal.
func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// refresh is how often the bars are redrawn.
const refresh = 150 * time.Millisecond

func newProgress(live bool, stderr io.Writer) *progress {
	pr := &progress{w: stderr, live: live, start: time.Now(), width: func() int { return 80 }}
	if f, ok := stderr.(*os.File); ok {
		pr.width = func() int {
			if w, _, err := term.GetSize(int(f.Fd())); err == nil && w > 0 {
				return w
			}
			return 80
		}
	}
	if live {
		pr.stop, pr.done = make(chan struct{}), make(chan struct{})
		go pr.loop()
	}
	return pr
}

func (pr *progress) loop() {
	defer close(pr.done)
	t := time.NewTicker(refresh)
	defer t.Stop()
	for {
		select {
		case <-pr.stop:
			return
		case <-t.C:
			pr.mu.Lock()
			pr.redraw()
			pr.mu.Unlock()
		}
	}
}

// println prints one message line (escaped, the token hidden) above the bars.
func (pr *progress) println(msg string) {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	line := escape(pr.secret.clean(msg)) + "\n"
	if !pr.live || pr.closed {
		io.WriteString(pr.w, line)
		return
	}
	io.WriteString(pr.w, pr.erase()+line)
	pr.drawn = 0
	pr.redraw()
}

// printf is println with formatting.
func (pr *progress) printf(format string, args ...any) {
	pr.println(strings.TrimSuffix(fmt.Sprintf(format, args...), "\n"))
}

// erase returns what moves the cursor to the first bar line and clears to the end of the screen.
func (pr *progress) erase() string {
	if pr.drawn == 0 {
		return "\r\x1b[J"
	}
	return fmt.Sprintf("\x1b[%dA\r\x1b[J", pr.drawn)
}

// redraw draws the bars again below the messages. The caller holds mu.
func (pr *progress) redraw() {
	if !pr.live || pr.closed {
		return
	}
	width := pr.width()
	var b strings.Builder
	if pr.drawn > 0 {
		fmt.Fprintf(&b, "\x1b[%dA", pr.drawn)
	}
	now := time.Now()
	for _, t := range pr.bars {
		b.WriteString("\r\x1b[2K" + t.line(width-1, now) + "\n")
	}
	b.WriteString("\x1b[J")
	io.WriteString(pr.w, b.String())
	pr.drawn = len(pr.bars)
}

// tracker counts the bytes of one download and draws its bar.
type tracker struct {
	pr    *progress
	name  string // escaped
	total int64  // -1 when unknown
	n     atomic.Int64
	last  atomic.Int64 // when the last byte came (UnixNano), 0 before the first
	start time.Time

	samples []sample // recent byte counts, for the rate; used by line only
}

// sample is the byte count of a download at one moment.
type sample struct {
	at time.Time
	n  int64
}

const (
	// rateWindow is the span over which the rate on a bar is measured: the rate follows the
	// download, and falls to zero when it stalls.
	rateWindow = 3 * time.Second
	// stalledAfter is how long a bar waits without a byte before it says the download is stalled.
	stalledAfter = 2 * time.Second
)

// track starts a bar for a download of total bytes (-1 when unknown); the first base bytes (a kept
// partial copy) count as already there.
func (pr *progress) track(name string, total int64) *tracker {
	t := &tracker{pr: pr, name: escape(name), total: total, start: time.Now()}
	if !pr.live {
		return t
	}
	pr.mu.Lock()
	pr.bars = append(pr.bars, t)
	pr.mu.Unlock()
	return t
}

func (t *tracker) Write(p []byte) (int, error) {
	if len(p) > 0 {
		t.n.Add(int64(len(p)))
		t.last.Store(time.Now().UnixNano())
	}
	return len(p), nil
}

// rate returns the bytes per second over the last rateWindow, given n bytes at now (the average
// since the start until the window has filled half a second). It keeps the samples it needs.
func (t *tracker) rate(n int64, now time.Time) float64 {
	t.samples = append(t.samples, sample{now, n})
	for len(t.samples) > 2 && now.Sub(t.samples[1].at) >= rateWindow {
		t.samples = t.samples[1:]
	}
	first := t.samples[0]
	if span := now.Sub(first.at); span >= 500*time.Millisecond {
		return float64(n-first.n) / span.Seconds()
	}
	if elapsed := now.Sub(t.start).Seconds(); elapsed > 0.2 {
		return float64(n) / elapsed
	}
	return -1 // too early to say
}

// idle returns how long the download has gone without a byte, counted from the start of the bar.
func (t *tracker) idle(now time.Time) time.Duration {
	last := t.start
	if ns := t.last.Load(); ns != 0 {
		last = time.Unix(0, ns)
	}
	return now.Sub(last)
}

// done removes the bar.
func (t *tracker) done() {
	pr := t.pr
	if !pr.live {
		return
	}
	pr.mu.Lock()
	defer pr.mu.Unlock()
	for i, b := range pr.bars {
		if b == t {
			pr.bars = append(pr.bars[:i:i], pr.bars[i+1:]...)
			break
		}
	}
	pr.redraw()
}

// line renders the bar in at most width columns. A download that has had no byte for
// stalledAfter shows a rate of 0 and how long it has been stalled where the ETA was. Only the
// goroutine that draws calls it (with pr.mu held).
func (t *tracker) line(width int, now time.Time) string {
	n := t.n.Load()
	elapsed := now.Sub(t.start).Seconds()
	speed := ""
	rate := t.rate(n, now)
	idle := t.idle(now)
	stalled := idle >= stalledAfter
	if stalled {
		rate = 0
	}
	if rate >= 0 {
		speed = humanBytes(int64(rate)) + "/s"
	}
	var counts, eta string
	const barWidth = 20
	bar := make([]byte, barWidth)
	if t.total > 0 {
		done := min(int(float64(barWidth)*float64(n)/float64(t.total)), barWidth)
		for i := range bar {
			switch {
			case i < done:
				bar[i] = '='
			case i == done:
				bar[i] = '>'
			default:
				bar[i] = ' '
			}
		}
		counts = fmt.Sprintf("%3d%% %s / %s", min(100*n/t.total, 100), humanBytes(n), humanBytes(t.total))
		if n > 0 && n < t.total && rate > 0 {
			left := time.Duration(float64(t.total-n) / rate * float64(time.Second))
			eta = "ETA " + left.Round(time.Second).String()
		}
	} else {
		// Length unknown: a marker sweeps the bar while bytes arrive.
		if stalled {
			elapsed -= idle.Seconds()
		}
		pos := int(elapsed/refresh.Seconds()) % (2 * (barWidth - 3))
		if pos >= barWidth-3 {
			pos = 2*(barWidth-3) - pos
		}
		for i := range bar {
			bar[i] = ' '
		}
		copy(bar[pos:], "<=>")
		counts = humanBytes(n)
	}
	if stalled {
		eta = "stalled " + idle.Truncate(time.Second).String()
	}
	// On a narrow terminal the bar goes first, then the speed, then the ETA.
	for _, parts := range [][]string{{"[" + string(bar) + "]", counts, speed, eta}, {counts, speed, eta}, {counts, eta}, {counts}} {
		var tail string
		for _, p := range parts {
			if p != "" {
				tail += "  " + p
			}
		}
		nameWidth := width - runewidth.StringWidth(tail)
		if nameWidth < 8 && len(parts) > 1 {
			continue
		}
		if nameWidth < 1 {
			return runewidth.Truncate(strings.TrimSpace(tail), width, "")
		}
		name := runewidth.Truncate(t.name, nameWidth, "…")
		return name + strings.Repeat(" ", nameWidth-runewidth.StringWidth(name)) + tail
	}
	return ""
}

// finish stops the bars and, on a terminal, prints the summary line.
func (pr *progress) finish(summary string) {
	if !pr.live {
		return
	}
	close(pr.stop)
	<-pr.done
	pr.mu.Lock()
	defer pr.mu.Unlock()
	io.WriteString(pr.w, pr.erase()+summary+"\n")
	pr.drawn, pr.closed = 0, true
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
