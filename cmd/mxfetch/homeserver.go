package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"maunium.net/go/mautrix"

	"github.com/mxfetch/mxfetch/mediaclient"
)

// discoveryTimeout bounds the .well-known lookup of one server name.
const discoveryTimeout = 30 * time.Second

// errDiscovery marks a homeserver that could not be found from its server name.
var errDiscovery = errors.New("cannot find the homeserver")

// resolveHomeserver turns the value of --homeserver (or a content URI's server name) into a base
// URL. A value with a scheme is a URL and is taken as it is. A value without one is a server name,
// looked up as the client-server spec says: https://NAME/.well-known/matrix/client names the base
// URL, and a 404 there means https://NAME itself. A scheme-less value with a path is a URL
// without its scheme and gets https. When ctx carries an address policy (guard.go), the lookup's
// redirects and connections and the base URL it finds must keep to it.
func resolveHomeserver(ctx context.Context, hc *http.Client, value string) (string, error) {
	v := strings.TrimSpace(value)
	if strings.Contains(v, "://") {
		return v, nil
	}
	if strings.ContainsAny(v, "/?#") {
		return "https://" + v, nil
	}
	ctx, cancel := context.WithTimeout(ctx, discoveryTimeout)
	defer cancel()
	where := "https://" + v + "/.well-known/matrix/client"
	wk, err := mautrix.DiscoverClientAPIWithClient(ctx, hc, v)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return "", fmt.Errorf("%w %q: %s: %w; %s", errDiscovery, value, where, err, discoveryHint(err, v))
	}
	base := "https://" + v // 404: the server name is the homeserver
	if wk != nil {
		base = strings.TrimRight(strings.TrimSpace(wk.Homeserver.BaseURL), "/")
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
		return "", fmt.Errorf("%w %q: %s gives no usable m.homeserver base_url (%q)", errDiscovery, value, where, truncate(base, 200))
	}
	if p := policyOf(ctx); p != nil {
		if err := p.checkURL(ctx, u); err != nil {
			return "", fmt.Errorf("%w %q: %s names %s as its homeserver: %w", errDiscovery, value, where, truncate(base, 200), err)
		}
	}
	return base, nil
}

// discoveryHint says what may help when the .well-known lookup of name failed with err: a name
// that does not exist needs the homeserver's URL; one that answers, but not over https, may speak
// plain http.
func discoveryHint(err error, name string) string {
	var dns *net.DNSError
	if errors.As(err, &dns) && dns.IsNotFound {
		return "no such host: pass --homeserver URL, the homeserver's address (https://matrix.example.org)"
	}
	return "if it speaks plain http, pass --homeserver http://" + name
}

// truncate shortens s to at most n bytes for a message.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}

// clients hands out one mediaclient.Client per homeserver: the one given, or, without one, the
// homeserver of each content URI's server name, looked up once.
type clients struct {
	o         *options
	transport http.RoundTripper
	discover  *http.Client
	note      func(string) // prints a -v line; nil prints nothing

	mu      sync.Mutex
	byName  map[string]*clientEntry
	fixed   *mediaclient.Client
	fixedIn error
}

type clientEntry struct {
	once   sync.Once
	c      *mediaclient.Client
	err    error
	policy *addrPolicy // the addresses its downloads may reach (guard.go)
}

// forServer returns the client for the media of a server name.
func (cs *clients) forServer(ctx context.Context, server string) (*mediaclient.Client, error) {
	if cs.fixed != nil || cs.fixedIn != nil {
		return cs.fixed, cs.fixedIn
	}
	cs.mu.Lock()
	e := cs.byName[server]
	if e == nil {
		e = &clientEntry{}
		cs.byName[server] = e
	}
	cs.mu.Unlock()
	e.once.Do(func() {
		var base string
		e.policy = newAddrPolicy(ctx, server)
		base, e.err = resolveHomeserver(withPolicy(ctx, e.policy), cs.discover, server)
		if e.err == nil && cs.o.verbose && cs.note != nil {
			cs.note(fmt.Sprintf("mxfetch: the media of %s comes from the homeserver %s", server, base))
		}
		if e.err == nil {
			e.c, e.err = cs.o.client(base, cs.transport)
		}
	})
	return e.c, e.err
}

// guard returns ctx with the address policy of the downloads of a server name's media, when its
// homeserver was looked up from the name (forServer, which must have returned first).
func (cs *clients) guard(ctx context.Context, server string) context.Context {
	if cs.fixed != nil || cs.fixedIn != nil {
		return ctx
	}
	cs.mu.Lock()
	e := cs.byName[server]
	cs.mu.Unlock()
	if e == nil || e.policy == nil {
		return ctx
	}
	return withPolicy(ctx, e.policy)
}
