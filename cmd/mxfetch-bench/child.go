package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/mxfetch/mxfetch/mediaclient"
)

// childResult is what a child process reports on stdout.
type childResult struct {
	Passes []float64 `json:"passes"` // seconds per pass over the list
	Bytes  int64     `json:"bytes"`  // bytes of the last pass
	// PeakRSSKiB is the process's own VmHWM at the end.
	PeakRSSKiB int64 `json:"peak_rss_kib"`
}

// fetcher downloads one media item into w and returns the bytes read.
type fetcher func(ctx context.Context, uri id.ContentURI, w io.Writer) (int64, error)

// runChild downloads every URI of a list (each line "mxc://… size") with one client, in passes,
// and checks every size: mxfetch-bench child -client lib|mautrix|mautrix-transport|http -hs URL -token T -list FILE
// -parallel N -passes P.
func runChild(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("child", flag.ContinueOnError)
	client := fs.String("client", "lib", "")
	hs := fs.String("hs", "", "")
	token := fs.String("token", "", "")
	list := fs.String("list", "", "")
	parallel := fs.Int("parallel", 1, "")
	passes := fs.Int("passes", 1, "")
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
		fetch = func(ctx context.Context, uri id.ContentURI, w io.Writer) (int64, error) {
			m, err := c.Download(ctx, uri)
			if err != nil {
				return 0, err
			}
			defer m.Close()
			return io.Copy(w, m)
		}
	case "mautrix", "mautrix-transport":
		cli, err := mautrix.NewClient(*hs, "", *token)
		if err != nil {
			return err
		}
		if *client == "mautrix-transport" { // mautrix's own Download, with the transport installed
			if cli.Client.Transport, err = mediaclient.NewMediaTransport(cli.Client.Transport, mediaclient.Options{}); err != nil {
				return err
			}
		}
		fetch = func(ctx context.Context, uri id.ContentURI, w io.Writer) (int64, error) {
			resp, err := cli.Download(ctx, uri)
			if err != nil {
				return 0, err
			}
			defer resp.Body.Close()
			return io.Copy(w, resp.Body)
		}
	case "http":
		fetch = func(ctx context.Context, uri id.ContentURI, w io.Writer) (int64, error) {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, *hs+"/_matrix/client/v1/media/download/"+uri.Homeserver+"/"+uri.FileID, nil)
			if err != nil {
				return 0, err
			}
			req.Header.Set("Authorization", "Bearer "+*token)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return 0, err
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return 0, fmt.Errorf("status %d", resp.StatusCode)
			}
			return io.Copy(w, resp.Body)
		}
	default:
		return fmt.Errorf("unknown client %q", *client)
	}
	var res childResult
	for range *passes {
		start := time.Now()
		n, err := fetchAll(ctx, fetch, items, *parallel)
		if err != nil {
			return err
		}
		res.Passes = append(res.Passes, time.Since(start).Seconds())
		res.Bytes = n
	}
	res.PeakRSSKiB = readHWM("/proc/self/status")
	return json.NewEncoder(stdout).Encode(res)
}

type listItem struct {
	uri  id.ContentURI
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
		uriText, sizeText, _ := strings.Cut(sc.Text(), " ")
		uri, err := mediaclient.ParseURI(uriText)
		if err != nil {
			return nil, err
		}
		size, err := strconv.ParseInt(sizeText, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("list: %w", err)
		}
		items = append(items, listItem{uri, size})
	}
	return items, sc.Err()
}

// fetchAll downloads every item with parallel workers into io.Discard and checks the sizes.
func fetchAll(ctx context.Context, fetch fetcher, items []listItem, parallel int) (int64, error) {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		total int64
		first error
	)
	next := make(chan listItem)
	for range min(parallel, len(items)) {
		wg.Go(func() {
			for it := range next {
				n, err := fetch(ctx, it.uri, io.Discard)
				if err == nil && n != it.size {
					err = fmt.Errorf("%s: %d bytes, want %d", it.uri, n, it.size)
				}
				mu.Lock()
				total += n
				if err != nil && first == nil {
					first = err
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
	return total, first
}
