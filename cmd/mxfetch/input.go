package main

import (
	"bufio"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"os"
	"strings"

	"github.com/mxfetch/mxfetch/mediaclient"
)

// This file holds the URIs of a run in the order given. Those of an -i file are read twice — once
// to plan (which URIs repeat), once to hand them to the downloads — instead of being kept: memory
// does not grow with the length of the list beyond a few bytes a URI.

// scanInput calls fn with each URI of an -i list: one a line, surrounding space trimmed, blank lines
// and lines starting with # skipped.
func scanInput(r io.Reader, fn func(string) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if err := fn(line); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("-i: %w", err)
	}
	return nil
}

// streamedInput returns the -i file to read twice instead of keeping its URIs: a regular file (not
// stdin), and no --json (which prints each URI given) or -o FILE (which must know that the list
// holds one URI).
func (o *options) streamedInput() (string, bool) {
	if o.input == "" || o.input == "-" || o.json || o.target != nil && !o.target.special {
		return "", false
	}
	st, err := os.Stat(o.input)
	if err != nil || !st.Mode().IsRegular() {
		return "", false
	}
	return o.input, true
}

// inputs is the URIs of a run: those of the command line (or of an -i list kept in memory), or
// those of an -i file.
type inputs struct {
	uris []string
	path string
}

// errInputChanged: the -i file was not the same on the second reading.
var errInputChanged = errors.New("-i: the file changed during the run")

// each calls fn with each URI given and its place in the list.
func (in inputs) each(fn func(i int, raw string) error) error {
	if in.path == "" {
		for i, raw := range in.uris {
			if err := fn(i, raw); err != nil {
				return err
			}
		}
		return nil
	}
	f, err := os.Open(in.path)
	if err != nil {
		return fmt.Errorf("-i: %w", err)
	}
	defer f.Close()
	i := 0
	return scanInput(f, func(raw string) error {
		err := fn(i, raw)
		i++
		return err
	})
}

// inputPlan is what the first reading of the inputs says: which URIs repeat (by their canonical
// form), and which place of the list starts each distinct one (a job, numbered in order).
type inputPlan struct {
	given, jobs int
	first       []uint64        // bit i is set when place i holds a URI's first appearance
	repeats     map[int32]int32 // how many more times a job's URI was given (only jobs given more than once)
	jobOf       []int32         // with --json: the job of each place
	check       []uint64        // for an -i file: each place's hash, to see that the second reading agrees
	seed        maphash.Seed
}

// planInputs reads the inputs once. Distinct URIs are told apart by a 128-bit hash of their
// canonical form, kept only while reading.
func planInputs(in inputs, wantJobOf bool) (*inputPlan, error) {
	p := &inputPlan{seed: maphash.MakeSeed()}
	seed2 := maphash.MakeSeed()
	seen := map[[2]uint64]int32{}
	err := in.each(func(i int, raw string) error {
		k := canonical(raw)
		key := [2]uint64{maphash.String(p.seed, k), maphash.String(seed2, k)}
		j, dup := seen[key]
		if dup {
			if p.repeats == nil {
				p.repeats = map[int32]int32{}
			}
			p.repeats[j]++
		} else {
			j = int32(p.jobs)
			seen[key] = j
			p.jobs++
			for len(p.first) <= i/64 {
				p.first = append(p.first, 0)
			}
			p.first[i/64] |= 1 << (i % 64)
		}
		if wantJobOf {
			p.jobOf = append(p.jobOf, j)
		}
		if in.path != "" {
			p.check = append(p.check, maphash.String(p.seed, raw))
		}
		p.given++
		return nil
	})
	return p, err
}

// isFirst reports whether place i holds a URI's first appearance.
func (p *inputPlan) isFirst(i int) bool {
	return i/64 < len(p.first) && p.first[i/64]&(1<<(i%64)) != 0
}

// agrees reports whether place i of the second reading holds what the first read there.
func (p *inputPlan) agrees(i int, raw string) bool {
	return p.check == nil || i < len(p.check) && p.check[i] == maphash.String(p.seed, raw)
}

// canonical is the form of a URI that tells repeats apart: its parsed form, or the text as given.
func canonical(raw string) string {
	if u, err := mediaclient.ParseURI(raw); err == nil {
		return u.String()
	}
	return raw
}
