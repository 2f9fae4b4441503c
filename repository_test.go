package mxfetch_test

import (
	"bytes"
	"go/version"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// stillRequired names the modules that this module requires for its own tests only but that still
// reach a user's module graph, with the reason. Each entry is a defect to remove.
var stillRequired = map[string]string{}

// TestConsumerModuleGraph checks what this module's go.mod hands to a program that imports only
// mediaclient: with module graph pruning, that program's graph holds every requirement of this
// go.mod, whatever needs it. Each must be a module that mediaclient's packages come from, or one that
// the go.mod of such a module requires (the program gets it from there anyway); what only the
// commands, the benchmark or the tests need must not be among them. The test also checks that the go
// line asks the program for no newer Go than those modules do. It runs offline, from the module cache.
func TestConsumerModuleGraph(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the go command")
	}
	root, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	consumer := t.TempDir()
	gomod := "module example.com/consumer\n\ngo 1.26.0\n\n" +
		"require github.com/mxfetch/mxfetch v0.0.0-00010101000000-000000000000\n\n" +
		"replace github.com/mxfetch/mxfetch => " + root + "\n"
	main := "package main\n\nimport _ \"github.com/mxfetch/mxfetch/mediaclient\"\n\nfunc main() {}\n"
	sum, err := os.ReadFile(filepath.Join(root, "go.sum")) // the consumer's graph is part of ours
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"go.mod": []byte(gomod), "main.go": []byte(main), "go.sum": sum} {
		if err := os.WriteFile(filepath.Join(consumer, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	goCmd := func(dir string, args ...string) []string {
		t.Helper()
		cmd := exec.Command("go", args...)
		cmd.Dir = dir
		// -mod=mod lets the consumer's go line be raised to this module's, as a user's go mod tidy
		// would; the go-line check below reports that.
		cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOPROXY=off", "GOWORK=off", "GOTOOLCHAIN=local")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
		}
		return strings.Fields(string(out))
	}

	const self = "github.com/mxfetch/mxfetch"
	used := map[string]bool{} // the modules that mediaclient's packages come from, this one aside
	for _, m := range goCmd(root, "list", "-deps", "-f", "{{with .Module}}{{.Path}}{{end}}", "./mediaclient") {
		if m != self {
			used[m] = true
		}
	}
	requiredBy := map[string][]string{} // module path → the modules whose go.mod requires it
	edges := goCmd(root, "mod", "graph")
	for i := 0; i+1 < len(edges); i += 2 {
		from, _, _ := strings.Cut(edges[i], "@")
		to, _, _ := strings.Cut(edges[i+1], "@")
		if !slices.Contains(requiredBy[to], from) {
			requiredBy[to] = append(requiredBy[to], from)
		}
	}
	inGraph := map[string]bool{}
	for _, m := range goCmd(consumer, "list", "-m", "-f", "{{.Path}}", "all") {
		inGraph[m] = true
		switch {
		case m == "example.com/consumer" || m == self || used[m]:
		case slices.ContainsFunc(requiredBy[m], func(by string) bool { return used[by] }):
		default:
			if why, ok := stillRequired[m]; ok {
				t.Logf("%s is still in a user's graph: %s", m, why)
				continue
			}
			t.Errorf("%s is in the graph of a program that imports only mediaclient, but mediaclient does not use it", m)
		}
	}
	if t.Failed() || len(inGraph) < 3 {
		t.Errorf("the consumer's graph: %v", slices.Sorted(maps.Keys(inGraph)))
	}
	for m := range stillRequired {
		if !inGraph[m] {
			t.Errorf("%s has left the graph: remove it from stillRequired", m)
		}
	}

	goLines := map[string]string{} // module path → its go line, for this module and those it uses
	fields := goCmd(root, append([]string{"list", "-m", "-f", "{{.Path}} go{{.GoVersion}}", self}, slices.Collect(maps.Keys(used))...)...)
	for i := 0; i+1 < len(fields); i += 2 {
		goLines[fields[i]] = fields[i+1]
	}
	newest := "go1"
	for m, v := range goLines {
		if m != self && version.Compare(v, newest) > 0 {
			newest = v
		}
	}
	if own := goLines[self]; version.Compare(own, newest) > 0 {
		t.Errorf("go.mod says %s; the modules mediaclient uses need only %s (a user's go line is raised to ours)", own, newest)
	}
}

// TestFuzzCorporaFound checks that every seed corpus under a testdata/fuzz directory sits where go test
// finds it: testdata/fuzz/FuzzName/ beside a test file that declares FuzzName. A corpus anywhere else
// is never run, and nothing says so.
func TestFuzzCorporaFound(t *testing.T) {
	corpora := 0
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		if d.Name() == ".git" {
			return filepath.SkipDir
		}
		if d.Name() != "fuzz" || filepath.Base(filepath.Dir(path)) != "testdata" {
			return nil
		}
		pkg := filepath.Dir(filepath.Dir(path))
		tests, err := filepath.Glob(filepath.Join(pkg, "*_test.go"))
		if err != nil {
			return err
		}
		var src []byte
		for _, f := range tests {
			b, err := os.ReadFile(f)
			if err != nil {
				return err
			}
			src = append(src, b...)
		}
		entries, err := os.ReadDir(path)
		if err != nil {
			return err
		}
		for _, e := range entries {
			corpus := filepath.Join(path, e.Name())
			if !e.IsDir() || !bytes.Contains(src, []byte("func "+e.Name()+"(f *testing.F)")) {
				t.Errorf("%s: no test in %s declares func %s(f *testing.F), so go test never reads it", corpus, pkg, e.Name())
				continue
			}
			files, err := os.ReadDir(corpus)
			if err != nil {
				return err
			}
			for _, f := range files {
				if f.IsDir() {
					t.Errorf("%s: go test reads only the files directly in a corpus directory", filepath.Join(corpus, f.Name()))
				}
			}
			corpora++
		}
		return filepath.SkipDir
	})
	if err != nil {
		t.Fatal(err)
	}
	if corpora == 0 {
		t.Error("found no seed corpus at all")
	}
}
