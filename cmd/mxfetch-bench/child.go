package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"maunium.net/go/mautrix"

	"github.com/mxfetch/mxfetch/mediaclient"
)

// childResult is what a child process reports on stdout.
type childResult struct {
	Seconds float64 `json:"seconds"` // the pass over the list, process start excluded
	Bytes   int64   `json:"bytes"`
	// AllocBytes and Mallocs are what the pass allocated (runtime.MemStats), the server's share
	// excluded: it runs in another process.
	AllocBytes int64 `json:"alloc_bytes"`
	Mallocs    int64 `json:"mallocs"`
	// PeakRSSKiB is the process's own VmHWM at the end.
	PeakRSSKiB int64 `json:"peak_rss_kib"`
	// Protos lists the protocols of the answers, e.g. "HTTP/1.1".
	Protos []string `json:"protos"`
}

// fetcher downloads one item into w and returns the bytes written and the protocol of the answer.
type fetcher func(ctx context.Context, item string, w io.Writer) (int64, string, error)

// h1 returns a copy of Go's default transport that speaks HTTP/1.1 only, its pool as users have it
// (2 idle connections a host).
func h1() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Protocols = new(http.Protocols)
	t.Protocols.SetHTTP1(true)
	t.ForceAttemptHTTP2 = false
	t.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	if t.TLSClientConfig != nil {
		t.TLSClientConfig.NextProtos = nil // a clone of the default transport offers h2 here
	}
	return t
}

// runChild downloads every item of a list (each line "item size") with one client, into io.Discard,
// and checks every size: mxfetch-bench child -client lib|mautrix|mautrix-transport|http|ceiling
// -hs URL -token T -list FILE -parallel N. An item is an mxc URI, or a URL for the ceiling client.
func runChild(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("child", flag.ContinueOnError)
	client := fs.String("client", "lib", "")
	hs := fs.String("hs", "", "")
	token := fs.String("token", "", "")
	list := fs.String("list", "", "")
	parallel := fs.Int("parallel", 1, "")
	if err := fs.Parse(args); err != nil {
		return err
	}
	items, err := readList(*list)
	if err != nil {
		return err
	}
	var fetch fetcher
	switch *client {
	case "lib":
		c, err := mediaclient.New(mediaclient.Options{HomeserverURL: *hs, AccessToken: *token, API: mediaclient.APIV1})
		if err != nil {
			return err
		}
		fetch = func(ctx context.Context, item string, w io.Writer) (int64, string, error) {
			uri, err := mediaclient.ParseURI(item)
			if err != nil {
				return 0, "", err
			}
			m, err := c.Download(ctx, uri)
			if err != nil {
				return 0, "", err
			}
			defer m.Close()
			n, err := io.Copy(w, m) // Media.WriteTo, with its pooled buffer
			return n, "", err       // the server's log says the protocol
		}
	case "mautrix", "mautrix-transport":
		cli, err := mautrix.NewClient(*hs, "", *token)
		if err != nil {
			return err
		}
		if *client == "mautrix-transport" {
			// mautrix's own Download with mxfetch's transport installed as its README says, on
			// the client's own (nil) transport: media goes through NewTransport (HTTP/1.1), the
			// rest (none here) through Go's default.
			if cli.Client.Transport, err = mediaclient.NewMediaTransport(cli.Client.Transport, mediaclient.Options{}); err != nil {
				return err
			}
		} else {
			cli.Client.Transport = h1()
		}
		fetch = func(ctx context.Context, item string, w io.Writer) (int64, string, error) {
			uri, err := mediaclient.ParseURI(item)
			if err != nil {
				return 0, "", err
			}
			resp, err := cli.Download(ctx, uri)
			if err != nil {
				return 0, "", err
			}
			defer resp.Body.Close()
			n, err := io.Copy(w, resp.Body)
			return n, resp.Proto, err
		}
	case "http", "ceiling":
		var hc *http.Client
		if *client == "http" {
			hc = &http.Client{Transport: h1()}
		} else {
			// The ceiling: a transport sized for the parallelism, and 64 KiB reads.
			t := &http.Transport{MaxIdleConnsPerHost: *parallel, DisableCompression: true, Protocols: new(http.Protocols)}
			t.Protocols.SetHTTP1(true)
			hc = &http.Client{Transport: t}
		}
		bufs := sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}
		fetch = func(ctx context.Context, item string, w io.Writer) (int64, string, error) {
			target := item
			if *client == "http" {
				uri, err := mediaclient.ParseURI(item)
				if err != nil {
					return 0, "", err
				}
				target = *hs + "/_matrix/client/v1/media/download/" + uri.Homeserver + "/" + uri.FileID
			}
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
			if err != nil {
				return 0, "", err
			}
			if *token != "" {
				req.Header.Set("Authorization", "Bearer "+*token)
			}
			resp, err := hc.Do(req)
			if err != nil {
				return 0, "", err
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return 0, resp.Proto, fmt.Errorf("status %d", resp.StatusCode)
			}
			if *client == "http" {
				n, err := io.Copy(w, resp.Body)
				return n, resp.Proto, err
			}
			bp := bufs.Get().(*[]byte)
			defer bufs.Put(bp)
			n, err := io.CopyBuffer(struct{ io.Writer }{w}, struct{ io.Reader }{resp.Body}, *bp)
			return n, resp.Proto, err
		}
	default:
		return fmt.Errorf("unknown client %q", *client)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	n, protos, err := fetchAll(ctx, fetch, items, *parallel)
	elapsed := time.Since(start)
	runtime.ReadMemStats(&after)
	if err != nil {
		return err
	}
	return json.NewEncoder(stdout).Encode(childResult{
		Seconds:    elapsed.Seconds(),
		Bytes:      n,
		AllocBytes: int64(after.TotalAlloc - before.TotalAlloc),
		Mallocs:    int64(after.Mallocs - before.Mallocs),
		PeakRSSKiB: readHWM("/proc/self/status"),
		Protos:     protos,
	})
}

type listItem struct {
	item string
	size int64
}

func readList(path string) ([]listItem, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var items []listItem
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		item, sizeText, _ := strings.Cut(sc.Text(), " ")
		size, err := strconv.ParseInt(sizeText, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("list: %w", err)
		}
		items = append(items, listItem{item, size})
	}
	return items, sc.Err()
}

// fetchAll downloads every item with parallel workers into io.Discard, checks the sizes, and
// returns the bytes and the protocols seen.
func fetchAll(ctx context.Context, fetch fetcher, items []listItem, parallel int) (int64, []string, error) {
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		total  int64
		first  error
		protos []string
	)
	next := make(chan listItem)
	for range min(parallel, len(items)) {
		wg.Go(func() {
			for it := range next {
				n, proto, err := fetch(ctx, it.item, io.Discard)
				if err == nil && n != it.size {
					err = fmt.Errorf("%s: %d bytes, want %d", it.item, n, it.size)
				}
				mu.Lock()
				total += n
				if err != nil && first == nil {
					first = err
				}
				if proto != "" && !contains(protos, proto) {
					protos = append(protos, proto)
				}
				mu.Unlock()
			}
		})
	}
	for _, it := range items {
		next <- it
	}
	close(next)
	wg.Wait()
	return total, protos, first
}

func contains(s []string, x string) bool {
	for _, y := range s {
		if y == x {
			return true
		}
	}
	return false
}
