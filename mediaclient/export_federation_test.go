package mediaclient

import (
	"net/http"
	"net/netip"
)

// SetFederationClassifier replaces how f classes addresses, so that tests on loopback can play
// public servers and CDNs.
func SetFederationClassifier(f *FederationClient, fn func(netip.AddrPort) string) { f.c.classify = fn }

// FederationTransport returns the transport f made for itself, or nil when it was given one: tests
// set its TLS roots.
func FederationTransport(f *FederationClient) *http.Transport {
	if !f.c.ownTransport {
		return nil
	}
	return f.c.transport.(*http.Transport)
}
