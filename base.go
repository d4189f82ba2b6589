package lb

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultMaxIdleConnsPerBackend is how many idle connections the default
// base transport keeps per backend. net/http's default of 2 per host makes
// a client at concurrency 32 open and close connections all the time; the
// idle cap does not open connections, it only stops the pool from closing
// the ones the concurrency needed.
const DefaultMaxIdleConnsPerBackend = 256

// idleConnTimeout is how long an idle connection of the default base stays
// open, as in http.DefaultTransport.
const idleConnTimeout = 90 * time.Second

// baseTransport is the Transport's default base RoundTripper. It keeps one
// http.Transport per backend address, which dials that address whatever
// the request's URL names. The Transport hands it its requests unchanged,
// their URLs naming the service, so nothing is copied per request, the
// TLS server name is the URL's host as with any http.Transport, and the
// response's Request is the caller's. Requests to different backends
// never wait on each other's pool lock (one http.Transport guards every
// host's pool with one mutex, which costs measurably at concurrency 32 on
// two cores).
//
// As an http.RoundTripper (Transport.Base, health checks) it takes
// requests whose URL names a backend: the transport of that address sends
// them, and for HTTPS a transport whose TLS server name is the request's
// logical host (its Host header), so that certificates are verified
// against the service's name, not the backend's address, and a connection
// made for one name is never reused for another.
//
// A backend that the environment's proxy settings (HTTP_PROXY, NO_PROXY
// and the like) send through a proxy is not dialled directly: the
// Transport rewrites the request's URL to the backend's address, and the
// proxy is told that address.
//
// When it follows a Balancer, the transports of backends that left the
// Balancer's set are dropped: their idle connections are closed at once,
// and those in use as soon as their response ends (an http.Transport
// closes the connections that become idle after CloseIdleConnections).
// A dropped transport stays within reach of CloseIdleConnections for
// idleConnTimeout, for a request that began on it just before the drop.
type baseTransport struct {
	tlsConfig *tls.Config // template for the TLS settings; nil: defaults
	maxIdle   int
	protocols Protocols // zero: net/http's defaults
	bal       *Balancer // the set to follow; nil: keep every transport

	// pools holds the pool of each poolKey. Adding one is O(1) (a
	// sync.Map store), so the first request to each of thousands of
	// backends costs the same as to the first.
	pools sync.Map // poolKey -> *pool
	// seen is the membership version (snapshot.gen) the pools were last
	// pruned for; pruning runs in the background, one at a time.
	seen    atomic.Uint64
	pruning atomic.Bool

	mu      sync.Mutex // guards retired, and serialises prunes
	retired []retiredTransport
	now     func() time.Time                      // tests replace it
	proxy   func(*http.Request) (*url.URL, error) // tests replace it
}

// poolKey names one http.Transport of the base: a backend address, and a
// TLS server name ("": the host of each request's URL, net/http's rule).
type poolKey struct {
	name string
	addr string
}

// pool is the http.Transport of one backend address (and TLS name).
type pool struct {
	t *http.Transport
	// direct: t dials addr for every request, so a request whose URL
	// names the service can be sent as it is. False when a proxy serves
	// addr: t then dials what the request's URL names, through the proxy.
	direct bool
}

// retiredTransport is the transport of a backend that left the set, kept
// until any connection of it has had time to close itself, so that
// CloseIdleConnections still reaches them.
type retiredTransport struct {
	t     *http.Transport
	until time.Time
}

func newBaseTransport(tlsConfig *tls.Config, maxIdlePerBackend int, bal *Balancer) *baseTransport {
	b := &baseTransport{
		tlsConfig: tlsConfig,
		maxIdle:   maxIdlePerBackend,
		bal:       bal,
		now:       time.Now,
		proxy:     http.ProxyFromEnvironment,
	}
	if bal != nil {
		b.seen.Store(bal.snap.Load().gen)
	}
	return b
}

// backendConns links a Backend to its pool in one base transport.
type backendConns struct {
	owner *baseTransport
	p     *pool
}

// forBackend returns the pool that sends requests to be, with the TLS
// server name taken from each request's URL. The first base to send to a
// Backend caches its pool in it; other bases look theirs up.
func (b *baseTransport) forBackend(be *Backend) *pool {
	b.follow()
	c := be.conns.Load()
	if c != nil && c.owner == b {
		return c.p
	}
	p := b.poolFor(poolKey{addr: be.addr})
	if c == nil {
		be.conns.CompareAndSwap(nil, &backendConns{owner: b, p: p})
	}
	return p
}

// RoundTrip implements http.RoundTripper for requests whose URL names a
// backend's address.
func (b *baseTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	b.follow()
	k := poolKey{addr: r.URL.Host}
	if r.URL.Scheme == "https" {
		name := r.Host
		if name == "" {
			name = k.addr
		}
		if name = hostOnly(name); name != hostOnly(k.addr) {
			k.name = name
		}
	}
	return b.poolFor(k).t.RoundTrip(r)
}

// poolFor returns the pool of k: a backend address, and a TLS server name
// ("": from each request's URL).
func (b *baseTransport) poolFor(k poolKey) *pool {
	if p, ok := b.pools.Load(k); ok {
		return p.(*pool)
	}
	// Two requests may make the pool at once: one wins, the other's
	// http.Transport, which has dialled nothing, is dropped.
	p, _ := b.pools.LoadOrStore(k, b.newPool(k))
	return p.(*pool)
}

// newPool makes the pool of k: an http.Transport with
// http.DefaultTransport's settings, except the idle pool size, the TLS
// server name, and the dialling.
func (b *baseTransport) newPool(k poolKey) *pool {
	dialer := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	t := &http.Transport{
		DialContext:           dialer.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          0, // no cap across hosts
		MaxIdleConnsPerHost:   b.maxIdle,
		IdleConnTimeout:       idleConnTimeout,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: 1 * time.Second,
	}
	if b.tlsConfig != nil || k.name != "" {
		tc := &tls.Config{}
		if b.tlsConfig != nil {
			tc = b.tlsConfig.Clone()
		}
		if tc.ServerName == "" {
			tc.ServerName = k.name
		}
		t.TLSClientConfig = tc
	}
	_ = setProtocols(t, &b.protocols) // checked by NewTransport
	p := &pool{t: t, direct: !b.proxied(k.addr)}
	if !p.direct {
		t.Proxy = b.proxy
		return p
	}
	// Direct pools dial the backend, and make the TLS handshake themselves,
	// so that an error of either is known to have happened before the
	// request was written: dialError marks it, which is how the Transport
	// proves that a request was not sent (never from an error's type).
	addr := k.addr
	t.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
		c, err := dialer.DialContext(ctx, network, addr)
		if err != nil {
			return nil, &dialError{err}
		}
		return c, nil
	}
	tmpl := t.TLSClientConfig
	t.DialTLSContext = func(ctx context.Context, network, target string) (net.Conn, error) {
		raw, err := dialer.DialContext(ctx, network, addr)
		if err != nil {
			return nil, &dialError{err}
		}
		conn := tls.Client(raw, tlsFor(tmpl, target, b.protocols.nextProtos()))
		hctx, cancel := context.WithTimeout(ctx, t.TLSHandshakeTimeout)
		defer cancel()
		if err := conn.HandshakeContext(hctx); err != nil {
			raw.Close()
			return nil, &dialError{err}
		}
		return conn, nil
	}
	return p
}

// tlsFor returns the TLS configuration of a connection to target (the
// request URL's host:port), as net/http makes it: the template's (nil: the
// defaults), with the target's host as the server name unless the template
// names one, and protos offered unless the template says which protocols.
func tlsFor(tmpl *tls.Config, target string, protos []string) *tls.Config {
	var c *tls.Config
	if tmpl != nil {
		c = tmpl.Clone()
	} else {
		c = &tls.Config{}
	}
	if c.ServerName == "" {
		c.ServerName = hostOnly(target)
	}
	if len(c.NextProtos) == 0 {
		c.NextProtos = protos
	}
	return c
}

// proxied reports whether the environment's proxy settings send requests
// to addr, by HTTP or HTTPS, through a proxy. net/http reads them once per
// process, so the answer holds for the pool's life.
func (b *baseTransport) proxied(addr string) bool {
	for _, scheme := range []string{"http", "https"} {
		u, err := b.proxy(&http.Request{URL: &url.URL{Scheme: scheme, Host: addr}})
		if err != nil || u != nil {
			return true
		}
	}
	return false
}

// follow prunes the pools in the background if the Balancer's set
// changed since the last time: two atomic loads when it did not.
func (b *baseTransport) follow() {
	if b.bal == nil {
		return
	}
	if gen := b.bal.snap.Load().gen; gen != b.seen.Load() && b.pruning.CompareAndSwap(false, true) {
		go b.pruneLoop()
	}
}

// pruneLoop prunes until the pools match the latest set.
func (b *baseTransport) pruneLoop() {
	for {
		s := b.bal.snap.Load()
		b.prune(s)
		b.pruning.Store(false)
		if b.bal.snap.Load().gen == s.gen || !b.pruning.CompareAndSwap(false, true) {
			return
		}
	}
}

// prune drops the pools of addresses that are not members of s, the
// Balancer's set, and forgets the retired transports whose connections
// have all closed by now.
func (b *baseTransport) prune(s *snapshot) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.seen.Store(s.gen)
	now := b.now()
	kept := b.retired[:0]
	for _, r := range b.retired {
		if now.Before(r.until) {
			kept = append(kept, r)
		}
	}
	clear(b.retired[len(kept):])
	b.retired = kept

	members := make(map[string]struct{}, len(s.members))
	for _, be := range s.members {
		members[be.addr] = struct{}{}
	}
	b.pools.Range(func(k, v any) bool {
		if _, ok := members[k.(poolKey).addr]; !ok {
			b.pools.Delete(k)
			t := v.(*pool).t
			t.CloseIdleConnections()
			b.retired = append(b.retired, retiredTransport{t: t, until: now.Add(idleConnTimeout + time.Second)})
		}
		return true
	})
}

// CloseIdleConnections closes the idle connections of every pool, those of
// backends that left the set included.
func (b *baseTransport) CloseIdleConnections() {
	b.pools.Range(func(_, v any) bool {
		v.(*pool).t.CloseIdleConnections()
		return true
	})
	b.mu.Lock()
	retired := append([]retiredTransport(nil), b.retired...)
	b.mu.Unlock()
	for _, r := range retired {
		r.t.CloseIdleConnections()
	}
}

// hostOnly returns the host of "host:port", "[v6]:port", "[v6]" or "host".
func hostOnly(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	if n := len(hostport); n > 1 && hostport[0] == '[' && hostport[n-1] == ']' {
		return hostport[1 : n-1]
	}
	return hostport
}
