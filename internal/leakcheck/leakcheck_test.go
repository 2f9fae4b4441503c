package leakcheck

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestWaitReportsAndForgets(t *testing.T) {
	before := Snapshot()
	stop := startBlocked()
	left := Wait(before, 10*time.Millisecond)
	if len(left) != 1 {
		t.Fatalf("left = %q; want one goroutine", left)
	}
	if !strings.Contains(left[0], "blockedInTest") {
		t.Errorf("left = %q; want the goroutine in blockedInTest", left[0])
	}
	stop()
	if left := Wait(before, Grace); len(left) != 0 {
		t.Errorf("after it returned, left = %q; want none", left)
	}
}

// startBlocked starts a goroutine that waits in blockedInTest, and returns once it is there. The
// function it returns ends the goroutine and returns once it has.
func startBlocked() (stop func()) {
	there, release, done := make(chan struct{}), make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		blockedInTest(there, release)
	}()
	<-there
	return func() {
		close(release)
		<-done
	}
}

func blockedInTest(there, release chan struct{}) {
	close(there)
	<-release
}

// recorder is a testing.TB that keeps its cleanups and errors.
type recorder struct {
	testing.TB
	cleanups []func()
	errors   []string
}

func (r *recorder) Helper()          {}
func (r *recorder) Cleanup(f func()) { r.cleanups = append(r.cleanups, f) }
func (r *recorder) Errorf(format string, args ...any) {
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}

func (r *recorder) finish() {
	for i := len(r.cleanups) - 1; i >= 0; i-- {
		r.cleanups[i]()
	}
}

func TestCheck(t *testing.T) {
	defer func(g time.Duration) { Grace = g }(Grace)
	Grace = 10 * time.Millisecond

	leaky := &recorder{}
	Check(leaky)
	stop := startBlocked()
	leaky.finish()
	if len(leaky.errors) != 1 {
		t.Fatalf("leaky test: errors %q; want one", leaky.errors)
	}
	if !strings.Contains(leaky.errors[0], "1 goroutine(s) left running") {
		t.Errorf("leaky test: error %q; want it to count one goroutine", leaky.errors[0])
	}
	if !strings.Contains(leaky.errors[0], "blockedInTest") {
		t.Errorf("leaky test: error %q; want the stack of blockedInTest", leaky.errors[0])
	}

	stop()

	tidy := &recorder{}
	Check(tidy)
	startBlocked()()
	tidy.finish()
	if len(tidy.errors) != 0 {
		t.Errorf("tidy test: errors %q; want none", tidy.errors)
	}
}

func TestGoroutineID(t *testing.T) {
	for _, tc := range []struct {
		stack string
		want  int
	}{
		{"goroutine 17 [running]:\nmain.main()", 17},
		{"goroutine 1 [chan receive, 2 minutes]:", 1},
		{"", -1},
		{"goroutine x [running]:", -1},
	} {
		if got := goroutineID(tc.stack); got != tc.want {
			t.Errorf("goroutineID(%q) = %d; want %d", tc.stack, got, tc.want)
		}
	}
}
