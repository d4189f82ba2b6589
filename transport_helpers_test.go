package lb_test

import (
	"context"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/go-lb/lb"
)

// Helpers for the Transport and health-check tests: loopback backends that
// count what they execute and can be killed and restarted on their address.

// How a test backend answers.
const (
	modeOK        int32 = iota // 200, body = backend name
	mode503                    // 503
	modeBreak                  // read the request, count it, close the connection
	modeHold                   // block until released (see tbackend.release)
	modeUnhealthy              // 200 on /, 500 on /healthz
)

type tbackend struct {
	t    *testing.T
	name string
	addr string

	mode     atomic.Int32
	executed atomic.Int64 // requests whose handler ran (side effects)
	served   atomic.Int64 // 200 responses written
	conns    atomic.Int64 // connections accepted, over every restart
	active   atomic.Int64 // handlers running
	bodies   chan []byte  // request bodies, if not nil

	mu      sync.Mutex
	srv     *http.Server
	held    chan struct{} // closed to release modeHold handlers
	handler http.HandlerFunc
}

// startTBackend starts a backend on 127.0.0.1 and stops it at cleanup.
func startTBackend(t *testing.T, name string) *tbackend {
	t.Helper()
	b := &tbackend{t: t, name: name, held: make(chan struct{})}
	ln := listenLowPort(t)
	b.addr = ln.Addr().String()
	b.serve(ln)
	t.Cleanup(func() {
		b.release()
		b.kill()
	})
	return b
}

func startTBackends(t *testing.T, n int) ([]*tbackend, []lb.Endpoint) {
	t.Helper()
	bs := make([]*tbackend, n)
	eps := make([]lb.Endpoint, n)
	for i := range bs {
		bs[i] = startTBackend(t, string(rune('a'+i)))
		eps[i] = lb.Endpoint{Addr: bs[i].addr}
	}
	return bs, eps
}

func (b *tbackend) serve(ln net.Listener) {
	srv := &http.Server{
		Handler:           http.HandlerFunc(b.handle),
		ReadHeaderTimeout: 10 * time.Second,
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				b.conns.Add(1)
			}
		},
	}
	b.mu.Lock()
	b.srv = srv
	b.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
}

func (b *tbackend) handle(w http.ResponseWriter, r *http.Request) {
	b.active.Add(1)
	defer b.active.Add(-1)
	body, _ := io.ReadAll(r.Body)
	b.executed.Add(1)
	if b.bodies != nil {
		b.bodies <- body
	}
	b.mu.Lock()
	h, held := b.handler, b.held
	b.mu.Unlock()
	if h != nil {
		h(w, r)
		return
	}
	switch b.mode.Load() {
	case mode503:
		http.Error(w, "unavailable: "+b.name, http.StatusServiceUnavailable)
		return
	case modeBreak:
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
		return
	case modeHold:
		select {
		case <-held:
		case <-r.Context().Done():
		}
	case modeUnhealthy:
		if r.URL.Path == "/healthz" {
			http.Error(w, "sick", http.StatusInternalServerError)
			return
		}
	}
	w.Header().Set("X-Backend", b.name)
	w.Header().Set("X-Seen-Host", r.Host)
	_, _ = io.WriteString(w, b.name)
	b.served.Add(1)
}

// kill closes the listener and every open connection, as a crash would.
func (b *tbackend) kill() {
	b.mu.Lock()
	srv := b.srv
	b.srv = nil
	b.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
}

// restart listens again on the same address.
func (b *tbackend) restart() {
	b.t.Helper()
	var ln net.Listener
	var err error
	deadline := time.Now().Add(5 * time.Second)
	for {
		ln, err = net.Listen("tcp", b.addr)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond) // the port is briefly busy after a close
	}
	require.NoError(b.t, err)
	b.serve(ln)
}

// hold makes the handlers block until release.
func (b *tbackend) hold() {
	b.mu.Lock()
	b.held = make(chan struct{})
	b.mu.Unlock()
	b.mode.Store(modeHold)
}

// release lets every held handler answer.
func (b *tbackend) release() {
	b.mu.Lock()
	defer b.mu.Unlock()
	select {
	case <-b.held:
	default:
		close(b.held)
	}
}

// listenLowPort listens on a loopback port below the kernel's ephemeral
// range (which starts at 32768 by default), so that once the listener is
// closed no outgoing connection or ":0" listener can take the port, and a
// killed backend can be restarted on its address.
func listenLowPort(t *testing.T) net.Listener {
	t.Helper()
	for try := 0; try < 200; try++ {
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(10000+rand.IntN(20000))))
		if err == nil {
			return ln
		}
	}
	t.Fatal("no free loopback port in 10000-29999")
	return nil
}

// deadAddr returns a loopback address where nothing listens: dials are
// refused.
// The port is below the ephemeral range, so that no ":0" listener of a
// test running alongside can be given it once it is closed.
func deadAddr(t *testing.T) string {
	t.Helper()
	ln := listenLowPort(t)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

// newTestTransport builds a balancer over eps and a Transport over it, and
// closes both at cleanup.
func newTestTransport(t *testing.T, builder lb.Builder, eps []lb.Endpoint, balOpts []lb.Option, opts ...lb.TransportOption) (*lb.Transport, *lb.Balancer) {
	t.Helper()
	bal, err := lb.NewBalancer(builder, append([]lb.Option{lb.WithEndpoints(eps)}, balOpts...)...)
	require.NoError(t, err)
	tr, err := lb.NewTransport(bal, opts...)
	require.NoError(t, err)
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		_ = bal.Close()
	})
	return tr, bal
}

// get sends a GET for the logical service and returns the status and body.
func trGet(t *testing.T, c *http.Client, url string) (int, string, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, url, nil)
	require.NoError(t, err)
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

// trackedBody is a request body that records whether it was closed.
type trackedBody struct {
	io.Reader
	closed atomic.Int32
}

func (b *trackedBody) Close() error {
	b.closed.Add(1)
	return nil
}

// statsOf returns the balancer's stats for addr.
func statsOf(bal *lb.Balancer, addr string) lb.Stats {
	for _, s := range bal.Stats() {
		if s.Endpoint.Addr == addr {
			return s
		}
	}
	return lb.Stats{}
}
