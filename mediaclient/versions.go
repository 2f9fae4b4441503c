package mediaclient

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
	"maunium.net/go/mautrix"
)

// versionsFailureTTL is how long a failed /versions is remembered: calls in that window use media v3
// at once instead of each asking (and waiting) again.
const versionsFailureTTL = 30 * time.Second

// versionsTimeout bounds one fetch of /versions, which no single caller owns.
const versionsTimeout = 30 * time.Second

// versionsCache holds the homeserver's /_matrix/client/versions. One fetch runs at a time, shared by
// every call that waits for it; each caller stops waiting when its own context ends.
type versionsCache struct {
	group singleflight.Group

	mu       sync.Mutex
	versions *mautrix.RespVersions // nil until fetched successfully
	failedAt time.Time             // when the last fetch failed
}

// serverVersions returns the homeserver's versions, or nil when they cannot be had (the caller then
// uses media v3).
func (c *Client) serverVersions(ctx context.Context) *mautrix.RespVersions {
	vc := &c.learned.versions
	vc.mu.Lock()
	v, failedAt := vc.versions, vc.failedAt
	vc.mu.Unlock()
	if v != nil {
		return v
	}
	if ctx.Err() != nil || !failedAt.IsZero() && time.Since(failedAt) < versionsFailureTTL {
		return nil
	}
	// The fetch runs on a context of its own: a caller that gives up must not fail it for the
	// others, and no caller's values (a Trace, say) may be used after that caller returned. It
	// has the Client's logger and its own bound.
	logger := c.logger(ctx)
	ch := vc.group.DoChan("versions", func() (any, error) {
		fctx, cancel := context.WithTimeout(logger.WithContext(context.Background()), versionsTimeout)
		defer cancel()
		v, err := c.fetchVersions(fctx)
		vc.mu.Lock()
		defer vc.mu.Unlock()
		if err != nil {
			vc.failedAt = time.Now()
			c.debug(fctx, "fetching /versions failed; using media v3", "error", err)
			return nil, err
		}
		vc.versions, vc.failedAt = v, time.Time{}
		return v, nil
	})
	select {
	case <-ctx.Done():
		return nil
	case res := <-ch:
		v, _ := res.Val.(*mautrix.RespVersions)
		return v
	}
}

// fetchVersions asks the homeserver for /_matrix/client/versions, with the Client's retries.
func (c *Client) fetchVersions(ctx context.Context) (*mautrix.RespVersions, error) {
	u := *c.base
	u.RawPath = c.base.EscapedPath() + "/_matrix/client/versions"
	u.Path, _ = url.PathUnescape(u.RawPath)
	d := c.newDownload(ctx, &request{})
	defer d.cancel()
	resp, err := d.send(u.String(), http.Header{"User-Agent": {c.opts.UserAgent}})
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, c.httpError(resp)
	}
	var v mautrix.RespVersions
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&v); err != nil {
		return nil, err
	}
	return &v, nil
}
