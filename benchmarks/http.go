package benchmarks

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bufbuild/httplb"
	"github.com/bufbuild/httplb/resolver"
	"github.com/go-lb/lb"
)

// HTTPBackends is the number of loopback backends of the HTTP benchmarks.
const HTTPBackends = 4

// HTTPConcurrency are the numbers of concurrent callers of the HTTP
// benchmarks.
var HTTPConcurrency = []int{1, 32}

// LogicalHost is the service name the balanced clients send requests to;
// lb and httplb replace it with a backend's address.
const LogicalHost = "backends.test"

// HTTPRow is one client of the HTTP benchmarks.
type HTTPRow struct {
	ID       string // the row's name in benchmark names
	Library  string // import path of the package doing the work
	Module   string // module path, for the version column
	Settings string // configuration, stated in the report
	Lb       bool   // lb's row
	Baseline bool   // the plain client: no balancer
	// New returns a client over the fleet's backends.
	New func(f *Fleet) (*Client, error)
}

// Client is an HTTP client under test: Do sends one GET and reads the
// whole response.
type Client struct {
	hc    *http.Client
	url   func() string
	close func()
}

// Do sends one GET, reads the body to the end and closes it.
func (c *Client) Do(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url(), nil)
	if err != nil {
		return err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("status %d", resp.StatusCode)
	}
	return err
}

// Close releases the client's connections and goroutines.
func (c *Client) Close() { c.close() }

// CloseIdleConnections closes the client's idle connections, so that its
// next requests dial new ones.
func (c *Client) CloseIdleConnections() { c.hc.CloseIdleConnections() }

// Fleet is a set of loopback HTTP/1.1 backends that count the connections
// they accept and the requests they serve, per backend.
type Fleet struct {
	Servers  []*httptest.Server
	conns    atomic.Int64
	requests []atomic.Int64
}

// NewFleet starts n loopback backends answering "ok".
func NewFleet(n int) *Fleet {
	f := &Fleet{requests: make([]atomic.Int64, n)}
	for i := 0; i < n; i++ {
		i := i
		s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			f.requests[i].Add(1)
			_, _ = io.WriteString(w, "ok")
		}))
		s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
			if st == http.StateNew {
				f.conns.Add(1)
			}
		}
		s.Start()
		f.Servers = append(f.Servers, s)
	}
	return f
}

// Conns returns the number of connections the backends accepted so far.
func (f *Fleet) Conns() int64 { return f.conns.Load() }

// Requests returns the requests each backend served so far.
func (f *Fleet) Requests() []int64 {
	out := make([]int64, len(f.requests))
	for i := range f.requests {
		out[i] = f.requests[i].Load()
	}
	return out
}

// Addrs returns the backends' "127.0.0.1:port" addresses.
func (f *Fleet) Addrs() []string {
	out := make([]string, len(f.Servers))
	for i, s := range f.Servers {
		out[i] = s.Listener.Addr().String()
	}
	return out
}

// Close stops the backends.
func (f *Fleet) Close() {
	for _, s := range f.Servers {
		s.Close()
	}
}

// staticResolver is an httplb resolver that always resolves to a fixed
// set of addresses.
type staticResolver struct{ addrs []string }

func (r staticResolver) New(_ context.Context, _, _ string, rcv resolver.Receiver, _ <-chan struct{}) io.Closer {
	as := make([]resolver.Address, len(r.addrs))
	for i, a := range r.addrs {
		as[i] = resolver.Address{HostPort: a}
	}
	rcv.OnResolve(as)
	return io.NopCloser(nil)
}

// HTTPRows returns the clients of the HTTP benchmarks.
func HTTPRows() []HTTPRow {
	return []HTTPRow{
		{
			ID: "plain", Library: "net/http", Module: "std", Baseline: true,
			Settings: "http.Client, a clone of http.DefaultTransport (2 idle conns per host); URLs name the backends in turn (an atomic counter)",
			New:      func(f *Fleet) (*Client, error) { return newPlain(f, 0), nil },
		},
		{
			ID: "plain-idle256", Library: "net/http", Module: "std", Baseline: true,
			Settings: "as plain, MaxIdleConnsPerHost 256 (lb's default base)",
			New:      func(f *Fleet) (*Client, error) { return newPlain(f, lb.DefaultMaxIdleConnsPerBackend), nil },
		},
		{
			ID: "lb", Library: "github.com/go-lb/lb", Module: "github.com/go-lb/lb", Lb: true,
			Settings: "NewTransport(NewBalancer(RoundRobin{})), defaults (one http.Transport per backend with 256 idle conns, 3 attempts, retry budget)",
			New:      newLbClient,
		},
		{
			ID: "httplb", Library: "github.com/bufbuild/httplb", Module: "github.com/bufbuild/httplb",
			Settings: "NewClient(WithResolver(static addresses)), defaults (round robin, 1 idle conn per backend)",
			New:      func(f *Fleet) (*Client, error) { return newHTTPLB(f, 0) },
		},
		{
			ID: "httplb-idle256", Library: "github.com/bufbuild/httplb", Module: "github.com/bufbuild/httplb",
			Settings: "as httplb, with WithTransport(\"http\", ...) giving each backend an http.Transport of 256 idle conns (for HTTP/1.1 at concurrency)",
			New:      func(f *Fleet) (*Client, error) { return newHTTPLB(f, lb.DefaultMaxIdleConnsPerBackend) },
		},
	}
}

func newPlain(f *Fleet, maxIdle int) *Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if maxIdle > 0 {
		tr.MaxIdleConnsPerHost = maxIdle
	}
	urls := make([]string, len(f.Servers))
	for i, s := range f.Servers {
		urls[i] = s.URL + "/ping"
	}
	var next atomic.Uint64
	return &Client{
		hc:    &http.Client{Transport: tr},
		url:   func() string { return urls[(next.Add(1)-1)%uint64(len(urls))] },
		close: tr.CloseIdleConnections,
	}
}

func newLbClient(f *Fleet) (*Client, error) {
	bal, err := lb.NewBalancer(lb.RoundRobin{}, lb.WithEndpoints(lb.Addrs(f.Addrs()...)))
	if err != nil {
		return nil, err
	}
	tr, err := lb.NewTransport(bal)
	if err != nil {
		bal.Close()
		return nil, err
	}
	u := (&url.URL{Scheme: "http", Host: LogicalHost, Path: "/ping"}).String()
	return &Client{
		hc:  &http.Client{Transport: tr},
		url: func() string { return u },
		close: func() {
			tr.CloseIdleConnections()
			bal.Close()
		},
	}, nil
}

func newHTTPLB(f *Fleet, maxIdle int) (*Client, error) {
	opts := []httplb.ClientOption{httplb.WithResolver(staticResolver{f.Addrs()})}
	if maxIdle > 0 {
		opts = append(opts, httplb.WithTransport("http", idleTransport{maxIdle}))
	}
	c := httplb.NewClient(opts...)
	u := (&url.URL{Scheme: "http", Host: LogicalHost, Path: "/ping"}).String()
	var once sync.Once
	return &Client{
		hc:    c.Client,
		url:   func() string { return u },
		close: func() { once.Do(func() { _ = c.Close() }) },
	}, nil
}

// idleTransport is an httplb.Transport like httplb's default for "http",
// but keeping maxIdle idle connections per backend instead of 1.
type idleTransport struct{ maxIdle int }

func (t idleTransport) NewRoundTripper(_, _ string, cfg httplb.TransportConfig) httplb.RoundTripperResult {
	tr := &http.Transport{
		Proxy:                  cfg.ProxyFunc,
		GetProxyConnectHeader:  cfg.ProxyConnectHeadersFunc,
		DialContext:            cfg.DialFunc,
		ForceAttemptHTTP2:      true,
		MaxIdleConnsPerHost:    t.maxIdle,
		IdleConnTimeout:        cfg.IdleConnTimeout,
		TLSHandshakeTimeout:    cfg.TLSHandshakeTimeout,
		TLSClientConfig:        cfg.TLSClientConfig,
		MaxResponseHeaderBytes: cfg.MaxResponseHeaderBytes,
		ExpectContinueTimeout:  time.Second,
		DisableCompression:     cfg.DisableCompression,
	}
	return httplb.RoundTripperResult{RoundTripper: tr, Close: tr.CloseIdleConnections}
}
