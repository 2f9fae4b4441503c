package mediaclient

import (
	"context"
	"net/url"

	lru "github.com/hashicorp/golang-lru/v2"
)

// DefaultRedirectCacheSize is how many permanent-redirect targets a Client remembers when
// Options.RedirectCacheSize is zero.
const DefaultRedirectCacheSize = 1024

// redirectCache remembers where 308 (permanent) redirects of a media item led, keyed by the first URL
// of the request, so that a repeated download skips the homeserver hop. 307 and the other redirects
// are never cached. A cached target that fails is dropped and the chain starts at the homeserver.
type redirectCache struct {
	lru *lru.Cache[string, *url.URL]
}

func newRedirectCache(size int) *redirectCache {
	if size < 0 {
		return nil
	}
	if size == 0 {
		size = DefaultRedirectCacheSize
	}
	c, _ := lru.New[string, *url.URL](size)
	return &redirectCache{lru: c}
}

func (rc *redirectCache) get(key string) *url.URL {
	if rc == nil {
		return nil
	}
	u, _ := rc.lru.Get(key)
	return u
}

func (rc *redirectCache) add(key string, target *url.URL) {
	if rc != nil {
		rc.lru.Add(key, target)
	}
}

func (rc *redirectCache) remove(key string) {
	if rc != nil {
		rc.lru.Remove(key)
	}
}

// cacheKey travels in the request context: the key of the permanent-redirect cache for this request.
type cacheKey struct{}

func withCacheKey(ctx context.Context, key string) context.Context {
	return context.WithValue(ctx, cacheKey{}, key)
}

func cacheKeyFrom(ctx context.Context) string {
	k, _ := ctx.Value(cacheKey{}).(string)
	return k
}
