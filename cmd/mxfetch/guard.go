package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"

	"github.com/mxfetch/mxfetch/internal/addrclass"
	"github.com/mxfetch/mxfetch/mediaclient"
)

// This file keeps the downloads of a server name that was looked up on their own side of the
// network. Without --homeserver and without a token, the homeserver of each content URI's server
// name comes from https://NAME/.well-known/matrix/client, which anyone who can put a URI in a room
// controls: a public name's base_url (or a redirect of its .well-known) naming 127.0.0.1, a
// router's 192.168.1.1 or a cloud's metadata service at 169.254.169.254 would make mxfetch fetch
// from the user's own network and save the answer as a file. So such a lookup, and the downloads
// it leads to, may reach public addresses, and loopback, private or link-local ones only when the
// server name itself is one (a test server on localhost). The library's private-address guard
// does the same for redirects, from the homeserver's own class; here the homeserver is the
// unknown. An address is checked when the name is resolved here, and again when a connection is
// dialled (so that a name that resolves otherwise the second time does not get around it), except
// through a proxy, which resolves names itself.

// classPublic is the class every lookup may reach.
const classPublic = addrclass.Public

// classify returns the class of an address, as the library's guard sees it (internal/addrclass).
func classify(ap netip.AddrPort) string { return addrclass.Of(ap.Addr()) }

// classifyKey carries, in tests, a classify to use instead of the real one.
type classifyKey struct{}

func classifier(ctx context.Context) func(netip.AddrPort) string {
	if f, ok := ctx.Value(classifyKey{}).(func(netip.AddrPort) string); ok {
		return f
	}
	return classify
}

// addrPolicy is the address classes the requests for one server name's media may reach.
type addrPolicy struct {
	server   string
	allowed  map[string]bool
	classify func(netip.AddrPort) string
}

// errNotAllowed marks a refused address. It also matches mediaclient.ErrRedirectRefused, so that
// the library does not retry it.
var errNotAllowed = errors.New("address not allowed")

// addressError says which address was refused, and why.
type addressError struct {
	server, host string
	addr         netip.Addr
	class        string
}

func (e *addressError) Error() string {
	what := e.host
	if e.host != e.addr.String() {
		what += " (" + e.addr.String() + ")"
	}
	return fmt.Sprintf("%s is a %s address, and the server name %s is not: refused, since a server named in a URI must not send mxfetch into this network (pass --homeserver URL to use it)", what, e.class, e.server)
}

func (e *addressError) Is(target error) bool {
	return target == errNotAllowed || target == mediaclient.ErrRedirectRefused
}

// newAddrPolicy returns the policy of a server name: public addresses, and the classes of the
// server name's own addresses.
func newAddrPolicy(ctx context.Context, server string) *addrPolicy {
	p := &addrPolicy{server: server, allowed: map[string]bool{classPublic: true}, classify: classifier(ctx)}
	host, port := splitHostPort(server, 443)
	addrs, _ := lookup(ctx, host)
	for _, a := range addrs {
		p.allowed[p.classify(netip.AddrPortFrom(a, port))] = true
	}
	return p
}

// check refuses an address of a class the policy does not allow.
func (p *addrPolicy) check(host string, ap netip.AddrPort) error {
	if c := p.classify(ap); !p.allowed[c] {
		return &addressError{server: p.server, host: host, addr: ap.Addr(), class: c}
	}
	return nil
}

// checkURL resolves the host of a URL here and checks each of its addresses; a host that does not
// resolve here is refused, since whatever resolves it later may find anything.
func (p *addrPolicy) checkURL(ctx context.Context, u *url.URL) error {
	def := uint16(443)
	if u.Scheme == "http" {
		def = 80
	}
	host, port := splitHostPort(u.Host, def)
	addrs, err := lookup(ctx, host)
	if err != nil || len(addrs) == 0 {
		return fmt.Errorf("%s: its address cannot be checked (it does not resolve here): %w", host, errNotAllowed)
	}
	for _, a := range addrs {
		if err := p.check(host, netip.AddrPortFrom(a, port)); err != nil {
			return err
		}
	}
	return nil
}

// splitHostPort splits a server name or URL host into its host and port (def when it has none).
func splitHostPort(hostPort string, def uint16) (string, uint16) {
	if ap, err := netip.ParseAddrPort(hostPort); err == nil {
		return ap.Addr().String(), ap.Port()
	}
	host, portStr, err := net.SplitHostPort(hostPort)
	if err != nil {
		return strings.Trim(hostPort, "[]"), def
	}
	var port uint16
	if _, err := fmt.Sscan(portStr, &port); err != nil {
		port = def
	}
	return host, port
}

// lookup resolves a host name, or parses an address literal.
func lookup(ctx context.Context, host string) ([]netip.Addr, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{a}, nil
	}
	return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
}

type policyKey struct{}

// withPolicy returns ctx with the policy that the requests made with it follow.
func withPolicy(ctx context.Context, p *addrPolicy) context.Context {
	return context.WithValue(ctx, policyKey{}, p)
}

func policyOf(ctx context.Context) *addrPolicy {
	p, _ := ctx.Value(policyKey{}).(*addrPolicy)
	return p
}

// guardDials makes t check, for a request whose context carries a policy, the address each new
// connection reached, before anything is sent on it. A connection to a proxy is not checked: the
// target's name was resolved and checked before the request, and the proxy resolves it again.
func guardDials(t *http.Transport) *http.Transport {
	proxies := map[string]bool{}
	for _, scheme := range []string{"http", "https"} {
		req := &http.Request{URL: &url.URL{Scheme: scheme, Host: "mxfetch.invalid"}}
		if u, err := t.Proxy(req); err == nil && u != nil {
			def := map[string]uint16{"http": 80, "https": 443, "socks5": 1080, "socks5h": 1080}[u.Scheme]
			host, port := splitHostPort(u.Host, def)
			proxies[net.JoinHostPort(host, fmt.Sprint(port))] = true
		}
	}
	dial := t.DialContext
	t.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := dial(ctx, network, addr)
		p := policyOf(ctx)
		if err != nil || p == nil || proxies[addr] {
			return conn, err
		}
		ap, perr := netip.ParseAddrPort(conn.RemoteAddr().String())
		if perr != nil {
			return conn, nil // not an IP network
		}
		host, _ := splitHostPort(addr, 0)
		if err := p.check(host, ap); err != nil {
			conn.Close()
			return nil, err
		}
		return conn, nil
	}
	return t
}

// checkRedirect is the CheckRedirect of the .well-known lookups: a redirect is followed (ten at
// most, as net/http does) only to an address the request's policy allows.
func checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= 10 {
		return errors.New("stopped after 10 redirects")
	}
	if p := policyOf(req.Context()); p != nil {
		return p.checkURL(req.Context(), req.URL)
	}
	return nil
}
