package mediaclient_test

import (
	"io"
	"testing"

	"github.com/mxfetch/mxfetch/mediaclient"
	"github.com/mxfetch/mxfetch/testserver"
)

// BenchmarkFederationDownload fetches generated media over federation (TLS), inline and through a
// Location part to the CDN. B/op must not grow with the size: the media part streams.
func BenchmarkFederationDownload(b *testing.B) {
	for _, form := range []string{"inline", "location"} {
		for _, size := range []int64{1 << 20, 64 << 20} {
			b.Run(form+"/"+byteSize(size), func(b *testing.B) {
				srv, key := fedServer(b, testserver.Behavior{Chain: []testserver.OriginName{testserver.OriginCDNTLS}},
					testserver.FederationBehavior{Location: form == "location"})
				uri := srv.AddGenerated(size, 1, testserver.MediaOptions{})
				f := newFed(b, srv, key, mediaclient.FederationOptions{})
				playPublic(b, f, srv, testserver.OriginCDNTLS)
				buf := make([]byte, 256<<10)
				b.SetBytes(size)
				b.ReportAllocs()
				for b.Loop() {
					m, err := f.Download(b.Context(), uri)
					if err != nil {
						b.Fatal(err)
					}
					n, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{m}, buf)
					m.Close()
					if err != nil || n != size {
						b.Fatalf("%d bytes, %v", n, err)
					}
				}
			})
		}
	}
}
