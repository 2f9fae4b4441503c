package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mxfetch/mxfetch/testserver"
)

// TestInputFileStreamed: URIs of an -i file (read twice, never kept) are each downloaded once, in
// any spelling, with comments, blank lines and bad lines as for stdin, and the summary counts the
// repeats.
func TestInputFileStreamed(t *testing.T) {
	srv := testserver.New(t, testserver.Config{Profile: testserver.ProfileSynapse})
	u1 := srv.AddMedia([]byte("one"), testserver.MediaOptions{FileName: "one.txt"}).String()
	u2 := srv.AddMedia([]byte("two"), testserver.MediaOptions{FileName: "two.txt"}).String()
	list := filepath.Join(t.TempDir(), "list")
	os.WriteFile(list, []byte("# a comment\n"+u1+"\n\n  "+u2+"  \nnot-a-uri\n"+u1+"\n"+u2+"\n"), 0o644)
	dir := t.TempDir()
	r := cli(t, "", args(hs(srv), []string{"-i", list, "-j", "2", "-o", dir})...)
	if r.code != 1 || !strings.Contains(r.stderr, "not-a-uri") {
		t.Errorf("exit %d; want 1 for the bad line: %s", r.code, r.stderr)
	}
	for name, want := range map[string]string{"one.txt": "one", "two.txt": "two"} {
		if got, err := os.ReadFile(filepath.Join(dir, name)); err != nil || string(got) != want {
			t.Errorf("%s: %q, %v", name, got, err)
		}
	}
	if n := len(dirNames(t, dir)); n != 2 {
		t.Errorf("%d entries written; want 2", n)
	}
	downloads := 0
	for _, req := range srv.RequestsTo(testserver.OriginHomeserver) {
		if strings.Contains(req.Path, "/download/") {
			downloads++
		}
	}
	if downloads != 2 {
		t.Errorf("%d download requests to the homeserver; want one a distinct URI", downloads)
	}
}

// TestInputChanged: a place of an -i file that reads differently the second time is noticed.
func TestInputChanged(t *testing.T) {
	list := filepath.Join(t.TempDir(), "list")
	os.WriteFile(list, []byte("mxc://a.example/one\nmxc://a.example/two\nmxc://a.example/one\n"), 0o644)
	in := inputs{path: list}
	p, err := planInputs(in, false)
	if err != nil || p.given != 3 || p.jobs != 2 || !p.isFirst(0) || !p.isFirst(1) || p.isFirst(2) || p.repeats[0] != 1 {
		t.Fatalf("plan: %+v, %v", p, err)
	}
	os.WriteFile(list, []byte("mxc://a.example/one\nmxc://a.example/three\n"), 0o644)
	var disagree []int
	in.each(func(i int, raw string) error {
		if !p.agrees(i, raw) {
			disagree = append(disagree, i)
		}
		return nil
	})
	if len(disagree) != 1 || disagree[0] != 1 {
		t.Errorf("places read differently: %v; want [1]", disagree)
	}
}
