// Package leakcheck fails a test that leaves goroutines running. It does for this module's tests
// what go.uber.org/goleak's VerifyNone with IgnoreCurrent does, without adding a module that every
// user of the library would then see in its module graph.
package leakcheck

import (
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Grace is how long the goroutines started during a test get to finish once the test is over: a
// closed connection's reader, for one, returns shortly after Close.
var Grace = 5 * time.Second

// Check records the goroutines running now and registers a cleanup that fails t if a goroutine
// started since is still running Grace after the test and the cleanups registered after Check have
// finished. Call it first in the test, so that the cleanups that close servers and transports run
// before the check. Tests that run in parallel with t would count as leaks: do not use Check in them.
func Check(t testing.TB) {
	t.Helper()
	before := Snapshot()
	t.Cleanup(func() {
		if left := Wait(before, Grace); len(left) > 0 {
			t.Errorf("leakcheck: %d goroutine(s) left running:\n\n%s", len(left), strings.Join(left, "\n\n"))
		}
	})
}

// Wait waits up to grace for every goroutine that is not in before (and is not the caller) to
// finish. It returns the stacks of those still running, or nil. The caller cannot be told when a
// goroutine exits, so Wait looks again after 1 ms, 2 ms, 4 ms … (at most 100 ms apart).
func Wait(before map[int]bool, grace time.Duration) []string {
	deadline := time.Now().Add(grace)
	for pause := time.Millisecond; ; pause = min(2*pause, 100*time.Millisecond) {
		left := started(before)
		if len(left) == 0 || !time.Now().Before(deadline) {
			return left
		}
		time.Sleep(min(pause, time.Until(deadline)))
	}
}

// Snapshot returns the IDs of the goroutines running now, for Wait.
func Snapshot() map[int]bool {
	ids := map[int]bool{}
	for _, g := range stacks(true) {
		ids[goroutineID(g)] = true
	}
	return ids
}

// started returns the stacks of the goroutines that are neither in before nor the caller.
func started(before map[int]bool) []string {
	self := goroutineID(stacks(false)[0])
	var left []string
	for _, g := range stacks(true) {
		if id := goroutineID(g); id != self && !before[id] {
			left = append(left, g)
		}
	}
	return left
}

// stacks returns the stack of every goroutine (all) or of the caller's, one string each, starting
// with its "goroutine N [state]:" line.
func stacks(all bool) []string {
	buf := make([]byte, 64<<10)
	for {
		n := runtime.Stack(buf, all)
		if n < len(buf) {
			return strings.Split(strings.TrimSpace(string(buf[:n])), "\n\n")
		}
		buf = make([]byte, 2*len(buf))
	}
}

// goroutineID reads N from a stack's first line, "goroutine N [state]:"; it returns -1 for text
// that does not start so.
func goroutineID(stack string) int {
	rest, ok := strings.CutPrefix(stack, "goroutine ")
	if !ok {
		return -1
	}
	id, _, _ := strings.Cut(rest, " ")
	n, err := strconv.Atoi(id)
	if err != nil {
		return -1
	}
	return n
}
