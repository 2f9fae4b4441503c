// Package mediaclient downloads Matrix media through MSC3860 redirects, safely.
//
// It builds download and thumbnail URLs with allow_redirect=true, follows a bounded chain of
// 301/302/303/307/308 redirects as GET, sends the access token (and every other credential) to the
// homeserver's exact origin only and never again once the chain has left it, refuses https→http
// downgrades and malformed Location headers, falls back to a plain request when a server rejects the
// parameter or a redirect, retries transient faults through go-retryablehttp (starting the chain again
// at the homeserver), and streams the body with its metadata, checking it against Content-Length.
//
// The happy path:
//
//	c, err := mediaclient.New(mediaclient.Options{HomeserverURL: "https://matrix.example.org", AccessToken: token})
//	media, err := c.Download(ctx, id.MustParseContentURI("mxc://example.org/abc123"))
//	defer media.Close(); io.Copy(file, media)
//
// Every error is an *Error that wraps its cause: errors.Is(err, mautrix.MNotFound) and the sentinels
// of this package (ErrTooManyRedirects, ErrRedirectRefused, ErrTruncated, ErrTooLarge, …) work through
// it. A Client is safe for concurrent use and logs nothing unless given a logger.
//
// Servers fetch remote media with a FederationClient: requests signed with X-Matrix (mautrix's
// federation code), the multipart answer read with bounds, a Location part followed without
// credentials and with the private-address guard strict.
//
// Specs: https://spec.matrix.org/v1.11/client-server-api/#content-repository (MSC3860 for
// allow_redirect, MSC3916 for authenticated media),
// https://spec.matrix.org/v1.11/server-server-api/#content-repository (federation media).
package mediaclient
