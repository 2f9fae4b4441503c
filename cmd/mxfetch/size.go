package main

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// parseSize reads a byte count such as 1048576, 512K, 100M, 1.5G or 2GiB. K, M, G and T are powers
// of 1024, as in curl.
func parseSize(s string) (int64, error) {
	t := strings.TrimSpace(strings.ToUpper(s))
	t = strings.TrimSuffix(strings.TrimSuffix(t, "B"), "I")
	mult := 1.0
	if n := len(t); n > 0 {
		if i := strings.IndexByte("KMGT", t[n-1]); i >= 0 {
			mult = math.Pow(1024, float64(i+1))
			t = t[:n-1]
		}
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(t), 64)
	switch {
	case errors.Is(err, strconv.ErrRange) && f > 0, err == nil && f > 0 && f*mult >= math.MaxInt64:
		return 0, fmt.Errorf("%q is too large: a size must stay below 2^63 bytes (leave --max-size out for no limit)", s)
	case err != nil || f <= 0 || math.IsInf(f, 0) || math.IsNaN(f):
		return 0, fmt.Errorf("%q is not a positive size", s)
	}
	return int64(f * mult), nil
}
