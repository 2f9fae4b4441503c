package mediaclient_test

import (
	"context"
	"fmt"

	"maunium.net/go/mautrix"

	"github.com/mxfetch/mxfetch/mediaclient"
	"github.com/mxfetch/mxfetch/testserver"
)

// ExampleNewMediaTransport installs the transport on a mautrix client with one line: mautrix's own
// DownloadBytes then follows the homeserver's 307 without the token, and gets the bytes from an
// S3-style CDN that refuses requests carrying one (without the transport, mautrix sends the token
// there and the CDN answers 400).
func ExampleNewMediaTransport() {
	srv, _ := testserver.Start(testserver.Config{Profile: testserver.ProfileMediaRepo})
	defer srv.Close()
	uri := srv.AddMedia([]byte("hello from the CDN"), testserver.MediaOptions{ContentType: "text/plain"})

	cli, _ := mautrix.NewClient(srv.URL, "@bot:example.org", srv.AccessToken)
	var err error
	cli.Client.Transport, err = mediaclient.NewMediaTransport(cli.Client.Transport, mediaclient.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer cli.Client.CloseIdleConnections()

	data, err := cli.DownloadBytes(context.Background(), uri)
	fmt.Printf("%s (error: %v)\n", data, err)
	for _, r := range srv.Requests() {
		where := "homeserver"
		if r.Role == testserver.RoleCDN {
			where = "CDN"
		}
		fmt.Printf("%s answered %d; token sent: %t\n", where, r.Status, r.HasCredentials())
	}
	// Output:
	// hello from the CDN (error: <nil>)
	// homeserver answered 307; token sent: true
	// CDN answered 200; token sent: false
}
