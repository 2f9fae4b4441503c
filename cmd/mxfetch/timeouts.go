package main

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/mxfetch/mxfetch/mediaclient"
)

// This file holds the timeout flags: --connect-timeout, --stall-timeout, --max-time, --upload-wait and curl's
// --speed-limit/--speed-time pair, and how they map onto mediaclient.Options.

// timeoutFlags holds the timeout flags once parsed.
type timeoutFlags struct {
	connectTimeout   seconds
	stallTimeoutFlag seconds
	maxTime          seconds
	uploadWait       seconds
	speedLimit       string
	speedTime        seconds
	speedLimitBytes  int64 // --speed-limit read
}

// seconds is the value of a timeout flag: curl's decimal seconds ("2.5") or a Go duration ("1m30s",
// "300ms"). The zero value is a flag not given.
type seconds struct {
	d   time.Duration
	set bool
}

func (s *seconds) String() string {
	if s == nil || !s.set {
		return ""
	}
	return s.d.String()
}

func (s *seconds) Set(v string) error {
	d, err := parseSeconds(v)
	if err != nil {
		return err
	}
	s.d, s.set = d, true
	return nil
}

// parseSeconds reads a number of seconds, with decimals ("2.5"), or a Go duration ("1m30s").
func parseSeconds(v string) (time.Duration, error) {
	t := strings.TrimSpace(v)
	if f, err := strconv.ParseFloat(t, 64); err == nil {
		if f < 0 || math.IsNaN(f) || math.IsInf(f, 0) || f*float64(time.Second) >= math.MaxInt64 {
			return 0, fmt.Errorf("%q is not a number of seconds from 0 to about 292 years", v)
		}
		return time.Duration(f * float64(time.Second)), nil
	}
	d, err := time.ParseDuration(t)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%q is neither seconds (2.5) nor a duration (1m30s, 300ms)", v)
	}
	return d, nil
}

func (fs *flagSet) seconds(p *seconds, names []string, usage string) {
	fs.def(names, "SECONDS", usage, func(n string) { fs.Var(p, n, "") })
}

// Defaults of curl's pair when only one of them is given.
const (
	defaultSpeedTime  = 30 * time.Second
	defaultSpeedLimit = 1
)

// validateTimeouts checks the timeout flags and reads --speed-limit.
func (o *options) validateTimeouts() error {
	if o.speedTime.set && o.speedTime.d <= 0 {
		return usagef("--speed-time must be more than 0")
	}
	if o.speedLimit != "" {
		n, err := parseSize(o.speedLimit)
		if err != nil {
			return usagef("--speed-limit wants bytes per second (such as 1000 or 100K), not %q", o.speedLimit)
		}
		o.speedLimitBytes = n
	}
	return nil
}

// orNone maps a flag onto a mediaclient duration option: not given is 0 (the library's default),
// 0 is negative (none).
func orNone(s seconds) time.Duration {
	switch {
	case !s.set:
		return 0
	case s.d == 0:
		return -1
	}
	return s.d
}

// stallTimeout is the stall timeout in force: --stall-timeout, or the library's default; 0 for none.
func (o *options) stallTimeout() time.Duration {
	if !o.stallTimeoutFlag.set {
		return mediaclient.DefaultStallTimeout
	}
	return o.stallTimeoutFlag.d
}

// applyTimeouts sets the timeout options of the library from the flags. --stall-timeout bounds both
// silences: waiting for an answer's headers and waiting for the next byte of its body.
func (o *options) applyTimeouts(opts *mediaclient.Options) {
	opts.ConnectTimeout = orNone(o.connectTimeout)
	opts.StallTimeout = orNone(o.stallTimeoutFlag)
	opts.HeaderTimeout = orNone(o.stallTimeoutFlag)
	opts.Timeout = o.maxTime.d       // 0: no cap
	opts.UploadWait = o.uploadWait.d // 0: a 504 M_NOT_YET_UPLOADED is reported at once
	if o.speedLimit != "" || o.speedTime.set {
		opts.LowSpeedLimit, opts.LowSpeedTime = defaultSpeedLimit, defaultSpeedTime
		if o.speedLimitBytes > 0 {
			opts.LowSpeedLimit = o.speedLimitBytes
		}
		if o.speedTime.set {
			opts.LowSpeedTime = o.speedTime.d
		}
	}
}
