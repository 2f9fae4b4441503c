// Package addrclass sorts IP addresses into the classes the private-address guards of mxfetch
// compare: public, loopback, private, link-local, and each IANA special-purpose range on its own.
// The library's redirect guard and the command's guard of looked-up homeservers share it.
package addrclass

import (
	"net/netip"

	"code.dny.dev/ssrf"
)

// The classes; a special-purpose address's class is Special followed by its range.
const (
	Public    = "public"
	Loopback  = "loopback"
	Private   = "private"
	LinkLocal = "link-local"
	Special   = "special"
)

var (
	sharedAddressSpace = netip.MustParsePrefix("100.64.0.0/10")
	thisNetwork        = netip.MustParsePrefix("0.0.0.0/8")    // connecting to it reaches this host
	nat64              = netip.MustParsePrefix("64:ff9b::/96") // globally reachable: the IPv4 address inside decides
)

// Of returns the class of an address: "public", "loopback", "private", "link-local", or
// "special " and the special-purpose range it is in (each range its own class: they are unrelated
// networks). IPv4-mapped and well-known NAT64 IPv6 addresses count as the IPv4 address they carry;
// the unspecified addresses (0.0.0.0/8, ::) count as loopback, since connecting to them reaches this
// host.
func Of(a netip.Addr) string {
	a = a.Unmap()
	if a.Is6() && nat64.Contains(a) {
		b := a.As16()
		a = netip.AddrFrom4([4]byte(b[12:]))
	}
	switch {
	case a.IsLoopback(), a.IsUnspecified(), a.Is4() && thisNetwork.Contains(a):
		return Loopback
	case a.IsPrivate(), a.Is4() && sharedAddressSpace.Contains(a):
		return Private
	case a.IsLinkLocalUnicast():
		return LinkLocal
	}
	return specialClass(a)
}

// specialClass returns "special <range>" for an address in the IANA special-purpose registry (as
// kept by code.dny.dev/ssrf), or "public".
func specialClass(a netip.Addr) string {
	prefixes := ssrf.IPv4DeniedPrefixes
	if a.Is6() {
		if !ssrf.IPv6GlobalUnicast.Contains(a) {
			return Special + " outside " + ssrf.IPv6GlobalUnicast.String()
		}
		prefixes = ssrf.IPv6DeniedPrefixes
	}
	for _, p := range prefixes {
		if p.Contains(a) {
			return Special + " " + p.String()
		}
	}
	return Public
}
