package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"maunium.net/go/mautrix/crypto/attachment"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mxfetch/mxfetch/testserver"
)

func TestEncryptedFile(t *testing.T) {
	srv := testserver.New(t, testserver.Config{Profile: testserver.ProfileMediaRepo})
	plaintext := bytes.Repeat([]byte("top secret "), 10_000)
	ef := attachment.NewEncryptedFile()
	ciphertext := bytes.Clone(plaintext)
	ef.EncryptInPlace(ciphertext)
	uri := srv.AddMedia(ciphertext, testserver.MediaOptions{FileName: "secret.txt"})
	tamperedCipher := bytes.Clone(ciphertext)
	tamperedCipher[10] ^= 1
	tampered := srv.AddMedia(tamperedCipher, testserver.MediaOptions{FileName: "secret.txt"})

	write := func(uri string) string {
		data, _ := json.Marshal(event.EncryptedFileInfo{EncryptedFile: *ef, URL: id.ContentURIString(uri)})
		path := filepath.Join(t.TempDir(), "file.json")
		os.WriteFile(path, data, 0o600)
		return path
	}
	dir := t.TempDir()
	r := cli(t, "", args(hs(srv), []string{"--encrypted-file", write(uri.String()), "-o", dir, "--json"})...)
	res := r.results(t)
	if r.code != 0 || len(res) != 1 {
		t.Fatalf("exit %d, results %+v; want 0 and one\n%s", r.code, res, r.stderr)
	}
	if want := filepath.Join(dir, "secret.txt"); res[0].Path != want {
		t.Errorf("path %s; want %s", res[0].Path, want)
	}
	if res[0].SHA256 != sum(plaintext) {
		t.Errorf("sha256 %s; want the plaintext's, %s", res[0].SHA256, sum(plaintext))
	}
	if got, _ := os.ReadFile(res[0].Path); !bytes.Equal(got, plaintext) {
		t.Error("written file is not the plaintext")
	}

	empty := t.TempDir()
	r = cli(t, "", args(hs(srv), []string{"--encrypted-file", write(tampered.String()), "-o", empty})...)
	if r.code != 1 || !strings.Contains(r.stderr, "SHA-256") {
		t.Errorf("tampered: exit %d, %s", r.code, r.stderr)
	}
	if names := dirNames(t, empty); len(names) != 0 {
		t.Errorf("tampered download left %v", names)
	}
	// To stdout, plaintext that fails the hash check is never printed; good plaintext is.
	r = cli(t, "", args(hs(srv), []string{"--encrypted-file", write(tampered.String()), "-o", "-"})...)
	if r.code != 1 || r.stdout != "" || !strings.Contains(r.stderr, "SHA-256") {
		t.Errorf("tampered to stdout: exit %d, %d bytes printed, %s", r.code, len(r.stdout), r.stderr)
	}
	r = cli(t, "", args(hs(srv), []string{"--encrypted-file", write(uri.String()), "-o", "-"})...)
	if r.code != 0 || r.stdout != string(plaintext) {
		t.Errorf("to stdout: exit %d, %d bytes, %s", r.code, len(r.stdout), r.stderr)
	}
	// The URI on the command line must be the file's own.
	if r := cli(t, "", args(hs(srv), []string{"--encrypted-file", write(uri.String()), "-o", empty, tampered.String()})...); r.code != 2 {
		t.Errorf("mismatched URI: exit %d", r.code)
	}
	bad := filepath.Join(t.TempDir(), "bad.json")
	os.WriteFile(bad, []byte(`{"url":"mxc://a/b","key":{"k":"short"},"iv":"x","v":"v2"}`), 0o600)
	if r := cli(t, "", args(hs(srv), []string{"--encrypted-file", bad})...); r.code != 2 {
		t.Errorf("bad key: exit %d", r.code)
	}
}
