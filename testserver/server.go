package testserver

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// DefaultAccessToken is the access token the server accepts when Config.AccessToken is empty.
const DefaultAccessToken = "mxfetch-test-token"

// DefaultServerName is the server name in the content URIs the server hands out when
// Config.ServerName is empty.
const DefaultServerName = "mxfetch.test"

// DefaultMaxUploadSize is the upload limit when Config.MaxUploadSize is zero.
const DefaultMaxUploadSize = 64 << 20

// OriginName names one of the server's origins.
type OriginName string

// The origins. They all serve the same handler; what differs is how a client reaches them.
const (
	// OriginHomeserver is http://127.0.0.1:P (or https with Config.TLS).
	OriginHomeserver OriginName = "homeserver"
	// OriginCDNHost is the homeserver's listener reached as "localhost": same port, another host name.
	OriginCDNHost OriginName = "cdn-host"
	// OriginCDN is http://127.0.0.1 on another port.
	OriginCDN OriginName = "cdn"
	// OriginCDNTLS is https://127.0.0.1 on yet another port, with the server's self-signed certificate.
	OriginCDNTLS OriginName = "cdn-tls"
	// OriginCDNNamed is the CDN's port reached as "localhost": a name resolved when dialling.
	OriginCDNNamed OriginName = "cdn-named"
)

// Config configures a Server. Every zero value has a documented default.
type Config struct {
	// Profile picks the Behavior; "" means ProfileSynapse, whose behaviour is the zero Behavior, so
	// that Config{} and Config{Behavior: &Behavior{}} agree. Ignored when Behavior is set.
	Profile Profile
	// Behavior, when non-nil, replaces the profile's behaviour.
	Behavior *Behavior
	// ServerName is the server name of the media. "" means DefaultServerName.
	ServerName string
	// AccessToken is the only token accepted. "" means DefaultAccessToken.
	AccessToken string
	// TLS serves the homeserver over https (with the certificate from CertPool) instead of http.
	TLS bool
	// Addr is the host:port the homeserver listens on. "" means 127.0.0.1 on a free port. The other
	// origins listen on free ports of the same host.
	Addr string
	// MaxUploadSize limits uploads; zero means DefaultMaxUploadSize.
	MaxUploadSize int64
	// Logf, when non-nil, receives one line per request, with credentials and signatures redacted.
	Logf func(format string, args ...any)
}

// Server is a fake Matrix homeserver with CDN origins, fault injection and a request log.
// It is safe for concurrent use.
type Server struct {
	// URL is the homeserver's base URL, without a trailing slash.
	URL string
	// ServerName is the server name of the media it holds.
	ServerName string
	// AccessToken is the token the client endpoints accept.
	AccessToken string

	cfg     Config
	origins map[OriginName]string
	conns   map[int]*atomic.Int64 // connections accepted, by listening port
	servers []*http.Server
	cert    *x509.Certificate
	certPEM []byte
	secret  []byte
	wg      sync.WaitGroup // the Serve loops
	done    chan struct{}  // closed by Close: stalls end

	inflight sync.WaitGroup // handlers running; Add only under mu while !closed

	fed fedState // the federation endpoints (federation.go)

	mu       sync.Mutex
	behavior *behaviorState
	media    map[string]*Media
	log      []Request
	logGen   int
	nextID   int
	closed   bool
}

// New starts a server for a test and closes it when the test ends. It fails the test if the server
// cannot start.
func New(tb testing.TB, cfg Config) *Server {
	tb.Helper()
	s, err := Start(cfg)
	if err != nil {
		tb.Fatalf("testserver: %v", err)
	}
	tb.Cleanup(s.Close)
	return s
}

// Start starts a server for a program. The caller must Close it.
func Start(cfg Config) (*Server, error) {
	b := Behavior{}
	if cfg.Behavior != nil {
		b = *cfg.Behavior
	} else {
		var ok bool
		if b, ok = ProfileBehavior(cfg.Profile); !ok {
			return nil, fmt.Errorf("testserver: unknown profile %q", cfg.Profile)
		}
	}
	if cfg.ServerName == "" {
		cfg.ServerName = DefaultServerName
	}
	if cfg.AccessToken == "" {
		cfg.AccessToken = DefaultAccessToken
	}
	if cfg.MaxUploadSize == 0 {
		cfg.MaxUploadSize = DefaultMaxUploadSize
	}
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	s := &Server{
		ServerName:  cfg.ServerName,
		AccessToken: cfg.AccessToken,
		cfg:         cfg,
		origins:     make(map[OriginName]string),
		conns:       make(map[int]*atomic.Int64),
		media:       make(map[string]*Media),
		behavior:    newBehaviorState(b),
		secret:      make([]byte, 32),
		done:        make(chan struct{}),
	}
	rand.Read(s.secret)
	cert, certPEM, tlsCert, err := selfSignedCert()
	if err != nil {
		return nil, fmt.Errorf("testserver: certificate: %w", err)
	}
	s.cert, s.certPEM = cert, certPEM
	tlsConfig := &tls.Config{Certificates: []tls.Certificate{tlsCert}, NextProtos: []string{"h2", "http/1.1"}}

	host, _, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("testserver: listen address %q: %w", cfg.Addr, err)
	}
	listen := func(addr string, useTLS bool) (int, error) {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return 0, err
		}
		counter := new(atomic.Int64)
		srv := &http.Server{Handler: s.handler(useTLS), ReadHeaderTimeout: 10 * time.Second,
			ConnState: func(_ net.Conn, state http.ConnState) {
				if state == http.StateNew {
					counter.Add(1)
				}
			}}
		if useTLS {
			srv.TLSConfig = tlsConfig.Clone()
			l = tls.NewListener(l, srv.TLSConfig)
		}
		s.servers = append(s.servers, srv)
		s.conns[l.Addr().(*net.TCPAddr).Port] = counter
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			srv.Serve(l)
		}()
		return l.Addr().(*net.TCPAddr).Port, nil
	}
	other := net.JoinHostPort(host, "0")
	hsPort, err := listen(cfg.Addr, cfg.TLS)
	if err == nil {
		var cdnPort, tlsPort int
		if cdnPort, err = listen(other, false); err == nil {
			if tlsPort, err = listen(other, true); err == nil {
				scheme := "http"
				if cfg.TLS {
					scheme = "https"
				}
				urlHost := host
				if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
					urlHost = "127.0.0.1"
				}
				s.origins[OriginHomeserver] = scheme + "://" + net.JoinHostPort(urlHost, strconv.Itoa(hsPort))
				s.origins[OriginCDNHost] = scheme + "://" + net.JoinHostPort("localhost", strconv.Itoa(hsPort))
				s.origins[OriginCDN] = "http://" + net.JoinHostPort(urlHost, strconv.Itoa(cdnPort))
				s.origins[OriginCDNNamed] = "http://" + net.JoinHostPort("localhost", strconv.Itoa(cdnPort))
				s.origins[OriginCDNTLS] = "https://" + net.JoinHostPort(urlHost, strconv.Itoa(tlsPort))
			}
		}
	}
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("testserver: listen: %w", err)
	}
	s.URL = s.origins[OriginHomeserver]
	return s, nil
}

// Close stops every origin, ends every stall, and waits for in-flight requests to end. It is safe to
// call twice.
func (s *Server) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	close(s.done)
	s.mu.Unlock()
	for _, srv := range s.servers {
		srv.Close()
	}
	s.wg.Wait()
	s.inflight.Wait()
}

// enter counts a handler in, and reports false once the server is closing.
func (s *Server) enter() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.inflight.Add(1)
	return true
}

// Origin returns the base URL of one of the server's origins.
func (s *Server) Origin(name OriginName) string { return s.origins[name] }

// Connections returns how many TCP connections the listener behind an origin has accepted. Origins
// that share a listener (the homeserver and cdn-host, cdn and cdn-named) share the count.
func (s *Server) Connections(name OriginName) int64 {
	u, err := url.Parse(s.origins[name])
	if err != nil {
		return 0
	}
	port, _ := strconv.Atoi(u.Port())
	if c := s.conns[port]; c != nil {
		return c.Load()
	}
	return 0
}

// ResetConnections sets every connection count to zero.
func (s *Server) ResetConnections() {
	for _, c := range s.conns {
		c.Store(0)
	}
}

// SetBehavior replaces the server-wide behaviour (media with their own Behavior keep theirs) and
// resets its fault counters.
func (s *Server) SetBehavior(b Behavior) {
	st := newBehaviorState(b)
	s.mu.Lock()
	s.behavior = st
	s.mu.Unlock()
}

// CertPool returns a pool that trusts the server's TLS certificate.
func (s *Server) CertPool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(s.cert)
	return pool
}

// CertPEM returns the server's self-signed certificate in PEM form, for SSL_CERT_FILE.
func (s *Server) CertPEM() []byte { return append([]byte(nil), s.certPEM...) }

// Client returns an HTTP client that trusts the server's certificate and does not follow
// redirects, so that a test sees every hop.
func (s *Server) Client() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: s.CertPool()}
	return &http.Client{
		Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// selfSignedCert makes a self-signed CA certificate valid for localhost, 127.0.0.1 and ::1.
func selfSignedCert() (*x509.Certificate, []byte, tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{Organization: []string{"mxfetch test server"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour * 365),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, tls.Certificate{}, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, tls.Certificate{}, err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, tls.Certificate{}, err
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	tlsCert, err := tls.X509KeyPair(certPEM, keyPEM)
	return cert, certPEM, tlsCert, err
}
