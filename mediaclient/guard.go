package mediaclient

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"sync/atomic"
	"syscall"

	"github.com/mxfetch/mxfetch/internal/addrclass"
)

// This file holds the private-address guard (rule 5 of the design): a redirect may not step from the
// homeserver's address class down into loopback, private, link-local or other special-purpose space.
// The address is checked when the connection is dialled (so DNS rebinding does not get around it),
// through a value the redirect loop puts in each hop's context and the dialer of NewTransport reads.

// ErrPrivateAddress: a redirect led to an address in a special-purpose range that the homeserver is
// not in (for a FederationClient: to any such address, unless allowed). The *AddressError that wraps
// it names the address. It also matches ErrRedirectRefused.
var ErrPrivateAddress = errors.New("redirect to a private address")

// AddressError says which address a redirect was refused for.
type AddressError struct {
	// Host is the host name of the redirect target.
	Host string
	// Addr is the address it resolved to.
	Addr netip.Addr
	// Class is the address's class: "loopback", "private", "link-local", or "special" followed by
	// the special-purpose range it is in.
	Class string
	// HomeClass is the class of the homeserver's address ("public" for the internet), or "" when
	// Strict is set.
	HomeClass string
	// Strict reports that only public addresses were allowed, whatever the class of the server that
	// named the target: the rule for a federation Location (FederationClient).
	Strict bool
	// AfterPublic reports that an earlier hop of the chain was on a public address, from where no
	// step into another class is allowed.
	AfterPublic bool
}

func (e *AddressError) Error() string {
	switch {
	case e.Strict:
		return fmt.Sprintf("redirect refused: %s is %s, a %s address, and only public addresses are allowed", e.Host, e.Addr, e.Class)
	case e.AfterPublic && e.Class == e.HomeClass:
		return fmt.Sprintf("redirect refused: %s is %s, a %s address, reached from a public one", e.Host, e.Addr, e.Class)
	}
	return fmt.Sprintf("redirect refused: %s is %s, a %s address, and the homeserver is %s", e.Host, e.Addr, e.Class, e.HomeClass)
}

// Is makes errors.Is match ErrPrivateAddress and ErrRedirectRefused.
func (e *AddressError) Is(target error) bool {
	return target == ErrPrivateAddress || target == ErrRedirectRefused
}

// Address classes (internal/addrclass).
const (
	classPublic   = addrclass.Public
	classLoopback = addrclass.Loopback
)

// classify returns the class of an address (internal/addrclass.Of); IPv4-mapped and NAT64 addresses
// count as the IPv4 address they carry.
func classify(ap netip.AddrPort) string { return addrclass.Of(ap.Addr()) }

// guard says how the private-address guard treats one hop.
type guard int

const (
	// guardNone checks nothing: the guard is off for the hop.
	guardNone guard = iota
	// guardHome is a hop to the homeserver's own origin: its address class is learned, not checked.
	guardHome
	// guardRelative allows public addresses and those of the homeserver's class (a client redirect).
	guardRelative
	// guardStrict allows public addresses only (federation).
	guardStrict
)

// hopPolicy travels in a hop's context to the dialer.
type hopPolicy struct {
	c     *Client
	guard guard
	host  string
	chain *chainGuard
}

// chainGuard is what the guard learns along one redirect chain: a chain that has been on a public
// address may not step down into any other class, the homeserver's included (a public server must
// not send the client into the homeserver's network).
type chainGuard struct {
	public atomic.Bool
}

type policyKey struct{}

// check applies the guard to one address about to be used.
func (p *hopPolicy) check(ctx context.Context, ap netip.AddrPort) error {
	cls := p.c.classify(ap)
	if cls == classPublic {
		p.chain.public.Store(true)
	}
	switch {
	case p.guard == guardHome:
		p.c.learned.homeClass.Store(cls)
		return nil
	case cls == classPublic:
		return nil
	case p.guard == guardStrict:
		return &AddressError{Host: p.host, Addr: ap.Addr(), Class: cls, Strict: true}
	}
	home := p.c.homeClass(ctx)
	if cls == home && !p.chain.public.Load() {
		return nil
	}
	return &AddressError{Host: p.host, Addr: ap.Addr(), Class: cls, HomeClass: home, AfterPublic: p.chain.public.Load()}
}

// homeClass returns the class of the homeserver's address: the one last dialled, or else the one its
// name resolves to (the most special of them).
func (c *Client) homeClass(ctx context.Context) string {
	if v, ok := c.learned.homeClass.Load().(string); ok {
		return v
	}
	addrs, err := c.lookup(ctx, c.base.Hostname())
	if err != nil || len(addrs) == 0 {
		return classPublic // unknown: the strictest choice
	}
	cls := classPublic
	port := urlPort(c.base)
	for _, a := range addrs {
		if x := c.classify(netip.AddrPortFrom(a, port)); x != classPublic {
			cls = x
		}
	}
	c.learned.homeClass.Store(cls)
	return cls
}

// lookup resolves a host name (or parses an address literal).
func (c *Client) lookup(ctx context.Context, host string) ([]netip.Addr, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{a}, nil
	}
	return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
}

// guardControl is the dialer's Control function: it checks the address about to be dialled against
// the policy of the hop that asked for the connection.
func guardControl(ctx context.Context, network, address string, _ syscall.RawConn) error {
	p, _ := ctx.Value(policyKey{}).(*hopPolicy)
	if p == nil {
		return nil
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return nil // not an IP network
	}
	return p.check(ctx, ap)
}

// guardHop prepares a hop for the guard. Without a proxy, the policy goes in the request's context
// for the dialer, which checks the address it connects to. Where the dialer cannot see the target —
// through a proxy it connects to the proxy, and a transport that is not NewTransport's has no such
// dialer — the target's name is resolved and checked here first (an address literal always is), and
// the guard fails closed: a name that does not resolve here is refused, since the proxy may resolve
// it to anything. What stays open there is a name that resolves differently for the proxy than here
// (DNS rebinding between the two look-ups); AllowPrivateRedirects documents it. g says which rule
// applies to the hop; the chain's rules choose it (download.guardFor). chain is what the guard
// learned along the redirect chain so far.
//
// The target is where the transport connects: for a remote server that server discovery found at
// another address than its name (a dial override, federation.go), that address — but a transport
// that cannot apply the override (not NewFederationTransport's, or through a proxy) connects to the
// name in the URL, so both are checked, and both must pass.
func (c *Client) guardHop(req *http.Request, g guard, chain *chainGuard) (*http.Request, error) {
	ctx, err := c.guardContext(req, g, chain)
	if ctx != req.Context() {
		req = req.WithContext(ctx)
	}
	return req, err
}

// guardContext is guardHop returning the context to send the request with, not a copy of the
// request: the chain makes one copy of each hop's request, with the hop's context (exchangeWith).
func (c *Client) guardContext(req *http.Request, g guard, chain *chainGuard) (context.Context, error) {
	ctx := req.Context()
	if g == guardNone {
		return ctx, nil
	}
	host, port, overridden := dialTarget(ctx, req.URL) // the URL's, or where server discovery said to connect
	p := &hopPolicy{c: c, guard: g, host: host, chain: chain}
	viaProxy := false
	if t, ok := c.transport.(*http.Transport); ok && t.Proxy != nil {
		if u, err := t.Proxy(req); err == nil && u != nil {
			viaProxy = true
		}
	}
	if !viaProxy {
		ctx = context.WithValue(ctx, policyKey{}, p)
	}
	if g == guardHome {
		return ctx, nil
	}
	if err := c.preCheck(ctx, req, p, host, port, viaProxy); err != nil {
		return ctx, err
	}
	if overridden && !appliesDialOverride(c.transport, viaProxy) {
		q := *p
		q.host = req.URL.Hostname()
		if err := c.preCheck(ctx, req, &q, q.host, urlPort(req.URL), viaProxy); err != nil {
			return ctx, err
		}
	}
	return ctx, nil
}

// preCheck checks host and port against p before the hop is sent, where the dialer does not: an
// address literal always, a name by resolving it here (and refused when it does not resolve). ctx
// is the hop's, from guardContext.
func (c *Client) preCheck(ctx context.Context, req *http.Request, p *hopPolicy, host string, port uint16, viaProxy bool) error {
	if a, err := netip.ParseAddr(host); err == nil {
		return p.check(ctx, netip.AddrPortFrom(a, port))
	}
	if c.ownTransport && !viaProxy {
		return nil // the dialer checks
	}
	addrs, err := c.lookup(ctx, host)
	if err != nil || len(addrs) == 0 {
		return &RedirectError{Reason: "the target's address cannot be checked (it does not resolve here)", Location: redactURL(req.URL)}
	}
	for _, a := range addrs {
		if err := p.check(ctx, netip.AddrPortFrom(a, port)); err != nil {
			return err
		}
	}
	return nil
}

// urlPort is the port a URL connects to.
func urlPort(u *url.URL) uint16 {
	if n, err := strconv.ParseUint(u.Port(), 10, 16); err == nil {
		return uint16(n)
	}
	if u.Scheme == "http" {
		return 80
	}
	return 443
}
