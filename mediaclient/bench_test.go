package mediaclient_test

import (
	"fmt"
	"io"
	"sync/atomic"
	"testing"

	"maunium.net/go/mautrix/id"

	"github.com/mxfetch/mxfetch/mediaclient"
	"github.com/mxfetch/mxfetch/testserver"
)

func benchServer(b *testing.B) *testserver.Server {
	b.Helper()
	return testserver.New(b, testserver.Config{Behavior: &testserver.Behavior{Redirect: 307, V3Redirect: testserver.WhenAsked, V1Redirect: testserver.Always}})
}

// BenchmarkLargeDownload fetches 64 MiB through one 307 hop. B/op must not grow with the size.
func BenchmarkLargeDownload(b *testing.B) {
	for _, size := range []int64{1 << 20, 64 << 20} {
		b.Run(byteSize(size), func(b *testing.B) {
			srv := benchServer(b)
			uri := srv.AddGenerated(size, 1, testserver.MediaOptions{})
			c := newClient(b, srv, mediaclient.Options{})
			buf := make([]byte, 256<<10)
			b.SetBytes(size)
			b.ReportAllocs()
			for b.Loop() {
				m, err := c.Download(b.Context(), uri)
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

// BenchmarkSmallFiles fetches 16 KiB files through one 307 hop at parallelism 16; one op is one file.
func BenchmarkSmallFiles(b *testing.B) {
	srv := benchServer(b)
	uris := make([]id.ContentURI, 1000)
	for i := range uris {
		uris[i] = srv.AddMedia(content(16<<10, byte(i)), testserver.MediaOptions{})
	}
	c := newClient(b, srv, mediaclient.Options{})
	var next atomic.Int64
	b.SetParallelism(8) // 8 × GOMAXPROCS(2) = 16 goroutines
	b.SetBytes(16 << 10)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		buf := make([]byte, 32<<10)
		for pb.Next() {
			uri := uris[next.Add(1)%int64(len(uris))]
			m, err := c.Download(b.Context(), uri)
			if err != nil {
				b.Error(err)
				return
			}
			n, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{m}, buf)
			m.Close()
			if err != nil || n != 16<<10 {
				b.Errorf("%d bytes, %v", n, err)
				return
			}
		}
	})
}

func byteSize(n int64) string {
	if n >= 1<<20 {
		return fmt.Sprintf("%dMiB", n>>20)
	}
	return fmt.Sprintf("%dKiB", n>>10)
}
