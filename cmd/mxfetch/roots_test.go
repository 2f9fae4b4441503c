package main

import (
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"

	"github.com/mxfetch/mxfetch/testserver"
)

// TestLoadRoots: on Linux the file SSL_CERT_FILE names is the whole trust; SSL_CERT_DIR, another
// system, or a file without certificates leave it to Go.
func TestLoadRoots(t *testing.T) {
	srv := testserver.New(t, testserver.Config{TLS: true})
	ca := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(ca, srv.CertPEM(), 0o644)
	env := func(vars ...string) func(string) string {
		return func(k string) string {
			for i := 0; i+1 < len(vars); i += 2 {
				if vars[i] == k {
					return vars[i+1]
				}
			}
			return ""
		}
	}
	pool := loadRoots("linux", env("SSL_CERT_FILE", ca))
	if pool == nil {
		t.Fatal("SSL_CERT_FILE: no pool")
	}
	want := x509.NewCertPool()
	want.AppendCertsFromPEM(srv.CertPEM())
	if !pool.Equal(want) {
		t.Error("SSL_CERT_FILE: the pool holds more than its certificate")
	}
	for name, p := range map[string]*x509.CertPool{
		"SSL_CERT_DIR": loadRoots("linux", env("SSL_CERT_FILE", ca, "SSL_CERT_DIR", t.TempDir())),
		"darwin":       loadRoots("darwin", env("SSL_CERT_FILE", ca)),
		"unreadable":   loadRoots("linux", env("SSL_CERT_FILE", filepath.Join(t.TempDir(), "none.pem"))),
		"not PEM":      loadRoots("linux", env("SSL_CERT_FILE", "roots.go")),
	} {
		if p != nil {
			t.Errorf("%s: a pool of the command's own; want Go's loading", name)
		}
	}
}

// TestRootsWith: --cacert's pool is the system's and the file's, in a pool of its own.
func TestRootsWith(t *testing.T) {
	srv := testserver.New(t, testserver.Config{TLS: true})
	pool, ok := rootsWith(srv.CertPEM())
	if !ok || pool == systemRoots() {
		t.Fatalf("rootsWith: ok %v; the pool must be a copy", ok)
	}
	if sys := systemRoots(); sys != nil && sys.Equal(pool) {
		t.Error("the system's pool changed, or the certificate was not added")
	}
}
