package mediaclient

import "net/netip"

// SetClassifier replaces how c classes addresses, so that tests on loopback can play a public
// homeserver.
func SetClassifier(c *Client, f func(netip.AddrPort) string) { c.classify = f }

// Classify exposes the default classification.
func Classify(ap netip.AddrPort) string { return classify(ap) }

// SetTransportClassifier replaces how the Clients a MediaTransport makes class addresses. It applies
// to the Clients made after it, so call it before the first request.
func SetTransportClassifier(t *MediaTransport, f func(netip.AddrPort) string) { t.classify = f }
