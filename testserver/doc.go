// Package testserver is a fake Matrix homeserver with CDN origins, for testing media downloads
// against MSC3860 redirects: the httptest of this field.
//
// A Server listens on loopback with several origins that differ from the homeserver by port, by host
// name (localhost vs 127.0.0.1) and by scheme (TLS with a self-signed certificate). It serves media v3
// and client v1 (authenticated) downloads and thumbnails, uploads, /versions and whoami, and answers as
// the real servers in the profiles do: directly, with 301/302/303/307/308 redirect chains to signed CDN
// URLs, by rejecting allow_redirect, with faults (429, 5xx, truncated, slow or reset bodies, expired
// URLs, stalls before the headers or mid-body, dripped bodies, hostile 206 answers), and serves bytes
// as real servers do (Serving: matrix-media-repo's 10 MiB range chunks, no validators, Range ignored).
// Behaviour is plain data (Behavior), per server and per media item. Every request at every origin
// is recorded with its headers, so a test can prove where a token went.
//
// Catalogue lists conformance scenarios as data: Publish puts them on a server, Judge turns the
// request log into a Report (text, JSON or HTML) of what a client did with each, and ReportHandler
// serves it. A client that asked nothing for a scenario is "not tried"; where the log cannot tell a
// safe client from an unsafe one (what it did with a short body, a file: Location, a wrong hash) the
// verdict is "observed", with what to check.
//
// In a test:
//
//	srv := testserver.New(t, testserver.Config{Profile: testserver.ProfileMediaRepo})
//	uri := srv.AddMedia([]byte("hello"), testserver.MediaOptions{ContentType: "text/plain"})
//	// download uri from srv.URL with srv.AccessToken, then inspect srv.Requests()
package testserver
