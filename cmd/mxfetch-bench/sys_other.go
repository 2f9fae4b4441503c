//go:build !linux

package main

import (
	"errors"
	"time"
)

// The benchmark measures on Linux (VmHWM, /proc/stat, syncfs); elsewhere it builds, and these say
// nothing.

func cpuTicks() (busy, total float64)      { return 0, 0 }
func selfCPU() time.Duration               { return 0 }
func syncFS(string) (time.Duration, error) { return 0, errors.New("syncfs: Linux only") }
func fsType(string) string                 { return "?" }
func kernel() string                       { return "?" }
