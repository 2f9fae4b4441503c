package main

import (
	"bytes"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mxfetch/mxfetch/testserver"
)

// ceiling is a minimal Go server for the ceiling row: what a plain net/http client and server move
// over this machine's loopback. Like the test server it answers every download with one 307 to
// another port, which serves the bytes with http.ServeContent: the large file generated on the fly
// from the same pattern, the small files from memory.
type ceiling struct {
	hs, cdn  *httptest.Server
	certFile string

	mu     sync.Mutex
	protos map[string]bool
	conns  atomic.Int64 // connections opened at the CDN
}

func startCeiling(tls bool, large int64, small [][]byte) *ceiling {
	c := &ceiling{protos: map[string]bool{}}
	gen := testserver.GeneratedContent(7)
	cdn := http.NewServeMux()
	cdn.HandleFunc("/large", func(w http.ResponseWriter, r *http.Request) {
		c.saw(r)
		http.ServeContent(w, r, "", time.Time{}, io.NewSectionReader(gen, 0, large))
	})
	cdn.HandleFunc("/f/{i}", func(w http.ResponseWriter, r *http.Request) {
		c.saw(r)
		i, err := strconv.Atoi(r.PathValue("i"))
		if err != nil || i < 0 || i >= len(small) {
			http.NotFound(w, r)
			return
		}
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(small[i]))
	})
	c.cdn = httptest.NewUnstartedServer(cdn)
	c.cdn.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			c.conns.Add(1)
		}
	}
	hs := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.saw(r)
		http.Redirect(w, r, c.cdn.URL+r.URL.Path, http.StatusTemporaryRedirect)
	})
	c.hs = httptest.NewUnstartedServer(hs)
	if tls {
		c.cdn.StartTLS()
		c.hs.StartTLS()
	} else {
		c.cdn.Start()
		c.hs.Start()
	}
	return c
}

func (c *ceiling) saw(r *http.Request) {
	c.mu.Lock()
	c.protos[r.Proto] = true
	c.mu.Unlock()
}

// certPEM is the certificate the TLS servers present (httptest's, for 127.0.0.1), or nil.
func (c *ceiling) certPEM() []byte {
	cert := c.hs.Certificate()
	if cert == nil {
		return nil
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})
}

// largeList and smallList are the child's lists: "URL size" lines.
func (c *ceiling) largeList(size int64) []byte {
	return fmt.Appendf(nil, "%s/large %d\n", c.hs.URL, size)
}

func (c *ceiling) smallList(n, size int) []byte {
	var b bytes.Buffer
	for i := range n {
		fmt.Fprintf(&b, "%s/f/%d %d\n", c.hs.URL, i, size)
	}
	return b.Bytes()
}

// reset forgets the protocols and connections seen, and returns the protocols.
func (c *ceiling) reset() (protos string, conns int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ps []string
	for p := range c.protos {
		ps = append(ps, p)
	}
	clear(c.protos)
	return strings.Join(sorted(ps), "+"), c.conns.Swap(0)
}

func (c *ceiling) close() {
	c.hs.Close()
	c.cdn.Close()
}
