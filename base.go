package lb

import (
	"crypto/tls"
	"net"
	"net/http"
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

// baseTransport is the Transport's default base RoundTripper. Plain HTTP
// goes through one http.Transport, whose pools are keyed by URL.Host: one
// pool per backend. HTTPS goes through one http.Transport per TLS server
// name (the logical host of the request, from its Host header), whose
// tls.Config names that host: certificates are verified against the
// service's name, not the backend's address, while the pools inside stay
// per backend. A connection made for one name is never reused for another.
type baseTransport struct {
	tlsConfig *tls.Config // template for the HTTPS transports; nil: defaults
	maxIdle   int

	plain  *http.Transport
	byName atomic.Pointer[map[string]*http.Transport] // copy on write
	mu     sync.Mutex                                 // serialises writers of byName
}

func newBaseTransport(tlsConfig *tls.Config, maxIdlePerBackend int) *baseTransport {
	b := &baseTransport{tlsConfig: tlsConfig, maxIdle: maxIdlePerBackend}
	b.plain = b.newHTTPTransport(nil)
	m := map[string]*http.Transport{}
	b.byName.Store(&m)
	return b
}

// newHTTPTransport returns an http.Transport with http.DefaultTransport's
// settings, except the idle pool size.
func (b *baseTransport) newHTTPTransport(tc *tls.Config) *http.Transport {
	return &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   30 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		TLSClientConfig:       tc,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          0, // no cap across backends
		MaxIdleConnsPerHost:   b.maxIdle,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: 1 * time.Second,
	}
}

// RoundTrip implements http.RoundTripper.
func (b *baseTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Scheme != "https" {
		return b.plain.RoundTrip(r)
	}
	host := r.Host
	if host == "" {
		host = r.URL.Host
	}
	return b.forName(hostOnly(host)).RoundTrip(r)
}

// forName returns the HTTPS transport for a TLS server name. The lookup is
// one atomic load and a map read; a new name copies the map.
func (b *baseTransport) forName(name string) *http.Transport {
	if t := (*b.byName.Load())[name]; t != nil {
		return t
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	old := *b.byName.Load()
	if t := old[name]; t != nil {
		return t
	}
	var tc *tls.Config
	if b.tlsConfig != nil {
		tc = b.tlsConfig.Clone()
	} else {
		tc = &tls.Config{}
	}
	if tc.ServerName == "" {
		tc.ServerName = name
	}
	t := b.newHTTPTransport(tc)
	m := make(map[string]*http.Transport, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	m[name] = t
	b.byName.Store(&m)
	return t
}

// CloseIdleConnections closes the idle connections of every pool.
func (b *baseTransport) CloseIdleConnections() {
	b.plain.CloseIdleConnections()
	for _, t := range *b.byName.Load() {
		t.CloseIdleConnections()
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
