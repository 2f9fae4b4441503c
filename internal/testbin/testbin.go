// Package testbin builds the command under test, for the tests that must run it as a program: under a
// pseudo-terminal, with a signal, or as the children of a benchmark.
//
// A test package that uses Build runs its tests through Main:
//
//	func TestMain(m *testing.M) { testbin.Main(m) }
//
//	func TestProgram(t *testing.T) {
//		bin := testbin.Build(t)
//		…
//	}
package testbin

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

var (
	inMain   bool
	once     sync.Once
	binDir   string // holds the executable; Main removes it
	binPath  string
	buildErr error
)

// Main runs the tests of m, removes what Build built and exits with the tests' status.
func Main(m *testing.M) {
	inMain = true
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// Build builds the main package in the current directory (go test runs each test binary in its
// package's directory) and returns the executable's path. It builds once per test binary, and skips
// t in -short mode, where nothing is built.
func Build(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the command")
	}
	if !inMain {
		t.Fatal("testbin.Build: the package's TestMain must call testbin.Main, which removes the executable")
	}
	once.Do(func() {
		wd, err := os.Getwd()
		if err != nil {
			buildErr = err
			return
		}
		if binDir, buildErr = os.MkdirTemp("", "testbin-"); buildErr != nil {
			return
		}
		binPath = filepath.Join(binDir, filepath.Base(wd))
		if out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %w\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}
