package main

import (
	"crypto/x509"
	"os"
	"runtime"
	"sync"
)

// This file holds the certificates the command trusts. Go's own loading of the system's
// certificates on Linux reads the bundle file and then every file of the certificate directories
// (/etc/ssl/certs holds each certificate of the bundle once more), and parses each: about half of
// the time of a first request over TLS. The command reads one file instead, as curl does: the one
// SSL_CERT_FILE names, else the system's bundle.

// bundleFiles are the system's bundles of trusted certificates, where Linux distributions keep
// them (Go's list).
var bundleFiles = []string{
	"/etc/ssl/certs/ca-certificates.crt",                // Debian, Ubuntu, Gentoo, Arch
	"/etc/pki/tls/certs/ca-bundle.crt",                  // Fedora, RHEL 6
	"/etc/ssl/ca-bundle.pem",                            // OpenSUSE
	"/etc/pki/tls/cacert.pem",                           // OpenELEC
	"/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem", // CentOS, RHEL 7
	"/etc/ssl/cert.pem",                                 // Alpine
}

// systemRoots returns the trusted certificates, read once: on Linux, from the file SSL_CERT_FILE
// names, else from the first bundle of bundleFiles that exists. It returns nil — Go's own loading,
// which also reads the certificate directories — elsewhere, when SSL_CERT_DIR is set, or when no
// such file holds a certificate. The pool it returns is shared: clone it to add to it.
var systemRoots = sync.OnceValue(func() *x509.CertPool {
	return loadRoots(runtime.GOOS, os.Getenv)
})

func loadRoots(goos string, env func(string) string) *x509.CertPool {
	if goos != "linux" || env("SSL_CERT_DIR") != "" {
		return nil
	}
	files := bundleFiles
	if f := env("SSL_CERT_FILE"); f != "" {
		files = []string{f}
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(data) {
			return nil
		}
		return pool
	}
	return nil
}

// rootsWith returns the trusted certificates and those of pem: a pool of its own.
func rootsWith(pem []byte) (*x509.CertPool, bool) {
	var pool *x509.CertPool
	if sys := systemRoots(); sys != nil {
		pool = sys.Clone()
	} else if p, err := x509.SystemCertPool(); err == nil && p != nil {
		pool = p
	} else {
		pool = x509.NewCertPool()
	}
	return pool, pool.AppendCertsFromPEM(pem)
}
