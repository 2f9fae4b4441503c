package mediaclient

import (
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
	lru *lru.Cache[string, cachedTarget]
}

// cachedTarget is a remembered permanent redirect target.
type cachedTarget struct {
	url *url.URL
	// left records that the chain had left the homeserver's origin on its way to the target: then no
	// credential goes to the target, even on the homeserver's origin (rule 4 of the design).
	left bool
}

func newRedirectCache(size int) *redirectCache {
	if size < 0 {
		return nil
	}
	if size == 0 {
		size = DefaultRedirectCacheSize
	}
	c, _ := lru.New[string, cachedTarget](size)
	return &redirectCache{lru: c}
}

func (rc *redirectCache) get(key string) (cachedTarget, bool) {
	if rc == nil || key == "" {
		return cachedTarget{}, false
	}
	return rc.lru.Get(key)
}

// len is how many targets are remembered.
func (rc *redirectCache) len() int {
	if rc == nil {
		return 0
	}
	return rc.lru.Len()
}

func (rc *redirectCache) add(key string, t cachedTarget) {
	if rc != nil && key != "" {
		rc.lru.Add(key, t)
	}
}

func (rc *redirectCache) remove(key string) {
	if rc != nil {
		rc.lru.Remove(key)
	}
}
