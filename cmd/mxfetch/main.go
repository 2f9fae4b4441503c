// Command mxfetch downloads Matrix media (mxc:// URIs) through MSC3860 redirects without handing the
// access token to anyone but the homeserver. Run "mxfetch --help" for its flags, "mxfetch --demo" to
// see it work against an embedded test server.
package main

import (
	"context"
	"os"
)

func main() {
	ctx, stop := notifyContext(context.Background())
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(exitCode(err))
}
