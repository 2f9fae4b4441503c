package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// This file holds what happens when the run is stopped by SIGINT (Ctrl-C), SIGTERM or SIGHUP (the
// terminal closed, an ssh session dropped): the downloads under way are cancelled, a --continue
// partial copy is kept and anything else unfinished removed, one line per download says which
// (where stderr still takes it), and the exit status is 128 plus the signal's number (130, 143,
// 129), the status a shell reports for curl or gh killed by the same signal. SIGPIPE is ignored, as
// curl ignores it: a reader of stderr that goes away (mxfetch -v … 2>&1 | head -1) does not end the
// downloads, whose notes then go nowhere.

// ending says whether a failed download was ended by the run's own limits, and what it kept.
type ending struct {
	deadline bool   // --max-time passed
	stopped  bool   // the run was stopped (a signal)
	queued   bool   // the run was stopped before the download began
	kept     string // the path of the partial copy kept for --continue, or ""
	removed  int64  // the size of the unfinished file removed
}

// signalError is the cause of a run stopped by a signal.
type signalError struct {
	sig os.Signal
}

func (e *signalError) Error() string {
	switch e.sig {
	case syscall.SIGTERM:
		return "terminated"
	case syscall.SIGHUP:
		return "hung up"
	}
	return "interrupted"
}

// status is the exit status of a run stopped by the signal: 128 + its number.
func (e *signalError) status() int {
	if s, ok := e.sig.(syscall.Signal); ok {
		return 128 + int(s)
	}
	return 130
}

// repeatGrace is how long after the first signal further ones are taken for copies of it: a
// supervisor such as timeout(1) signals both the process and its group, so one stop arrives twice.
const repeatGrace = time.Second

// stopSignals are the signals that stop a run.
var stopSignals = []os.Signal{os.Interrupt, syscall.SIGTERM, syscall.SIGHUP}

// notifyContext returns a context cancelled, with a *signalError as its cause, by the first SIGINT,
// SIGTERM or SIGHUP; a signal the process was started with ignored (nohup, a background job of a
// script) stays ignored. A signal that comes more than repeatGrace later ends the process at once,
// as if mxfetch did not catch signals (a second Ctrl-C when the first seems not to stop it). SIGPIPE
// is ignored from then on: a write to a closed pipe fails with EPIPE instead of killing the process.
func notifyContext(parent context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(parent)
	signal.Ignore(syscall.SIGPIPE)
	sigs := make(chan os.Signal, 1)
	var caught []os.Signal
	for _, s := range stopSignals {
		if !signal.Ignored(s) {
			caught = append(caught, s)
		}
	}
	if len(caught) > 0 { // Notify without signals would relay every one
		signal.Notify(sigs, caught...)
	}
	done := make(chan struct{})
	go watchSignals(sigs, done, cancel, func() <-chan time.Time { return time.After(repeatGrace) }, func() { signal.Stop(sigs) })
	return ctx, func() {
		signal.Stop(sigs)
		close(done)
		cancel(nil)
	}
}

// watchSignals cancels with the first signal from sigs, drops the copies that come before grace()
// fires, then calls release, which gives later signals their default action. It returns early
// when done is closed.
func watchSignals(sigs <-chan os.Signal, done <-chan struct{}, cancel context.CancelCauseFunc, grace func() <-chan time.Time, release func()) {
	select {
	case sig := <-sigs:
		cancel(&signalError{sig: sig})
	case <-done:
		return
	}
	over := grace()
	for {
		select {
		case <-sigs: // a copy of the first: dropped
		case <-over:
			release()
			return
		case <-done:
			return
		}
	}
}

// stoppedBy returns the signal that stopped the run of ctx, or nil.
func stoppedBy(ctx context.Context) *signalError {
	var se *signalError
	if errors.As(context.Cause(ctx), &se) {
		return se
	}
	return nil
}

// interruptLine says that the download of r was cut short by the end of the run, and what became of
// its bytes.
func (d *downloader) interruptLine(ctx context.Context, r *result) string {
	what := "interrupted"
	if se := stoppedBy(ctx); se != nil {
		what = se.Error()
	}
	msg := "mxfetch: " + r.URI + ": " + what
	switch {
	case r.kept != "":
		msg += fmt.Sprintf("; kept the partial copy %s (%d bytes) for a later --continue run", r.kept, r.Bytes)
	case r.Path != "" && (d.o.outputIsStdout || d.o.target != nil && d.o.target.special):
		msg += fmt.Sprintf(" after %d bytes written to %s", r.Bytes, r.Path)
	case r.removed > 0:
		msg += fmt.Sprintf("; removed the unfinished download (%d bytes)", r.removed)
	default:
		msg += " before any byte arrived; nothing was written"
	}
	return msg
}
