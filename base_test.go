package lb

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// countingServer is a loopback HTTP server that counts the connections it
// opened and closed, and whose handler blocks while hold is non-nil.
type countingServer struct {
	*httptest.Server
	opened, closed atomic.Int64
	hold           atomic.Pointer[chan struct{}]
}

func newCountingServer(t *testing.T) *countingServer {
	t.Helper()
	s := &countingServer{}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if h := s.hold.Load(); h != nil {
			<-*h
		}
		_, _ = io.WriteString(w, "ok")
	}))
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		switch st {
		case http.StateNew:
			s.opened.Add(1)
		case http.StateClosed, http.StateHijacked:
			s.closed.Add(1)
		}
	}
	s.Start()
	t.Cleanup(s.Close)
	return s
}

func (s *countingServer) addr() string { return s.Listener.Addr().String() }

// send GETs rawURL through rt and returns the request and the response's
// body, read to the end and closed.
func send(t *testing.T, rt http.RoundTripper, rawURL string) (*http.Request, *http.Response, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, rawURL, nil)
	require.NoError(t, err)
	resp, err := rt.RoundTrip(req)
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	return req, resp, string(body)
}

func baseGet(t *testing.T, tr *Transport) {
	t.Helper()
	send(t, tr, "http://svc.internal/")
}

// The default base keeps one http.Transport per backend, drops those of
// backends that leave the set (closing their idle connections at once),
// still reaches their connections in use with CloseIdleConnections, and
// forgets them once those connections must have closed themselves.
func TestBaseTransportFollowsTheSet(t *testing.T) {
	srvs := []*countingServer{newCountingServer(t), newCountingServer(t), newCountingServer(t)}
	var eps []Endpoint
	for _, s := range srvs {
		eps = append(eps, Endpoint{Addr: s.addr()})
	}
	bal, err := NewBalancer(RoundRobin{Stripes: 1}, WithEndpoints(eps))
	require.NoError(t, err)
	defer bal.Close()
	tr, err := NewTransport(bal)
	require.NoError(t, err)
	defer tr.CloseIdleConnections()
	base := tr.own
	require.NotNil(t, base)
	now := time.Now()
	base.now = func() time.Time { return now }

	for i := 0; i < 6; i++ {
		baseGet(t, tr)
	}
	assert.Equal(t, 3, poolCount(base), "one transport per backend")
	for i, s := range srvs {
		assert.EqualValues(t, 1, s.opened.Load(), "backend %d: one connection, reused", i)
	}

	// Backend 2 holds a request while it leaves the set; backend 1 leaves
	// with only an idle connection.
	release := make(chan struct{})
	srvs[2].hold.Store(&release)
	// With one stripe the picks go round in order: after a pick of
	// backend 1 comes backend 2.
	for i := 0; ; i++ {
		require.Less(t, i, 3)
		p, err := bal.Pick("")
		require.NoError(t, err)
		p.Cancel()
		if p.Addr() == srvs[1].addr() {
			break
		}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		baseGet(t, tr)
	}()
	require.Eventually(t, func() bool { return srvs[2].opened.Load() == 1 && srvs[2].closed.Load() == 0 }, 5*time.Second, time.Millisecond, "request in flight")
	time.Sleep(20 * time.Millisecond)
	select {
	case <-done:
		t.Fatal("the request to backend 2 did not wait")
	default:
	}
	require.NoError(t, bal.Update(eps[:1]))

	baseGet(t, tr)
	require. // the first request after the change starts a prune
			Eventually(t, func() bool { return poolCount(base) == 1 }, 5*time.Second, time.Millisecond, "the transports of the backends that left are dropped")
	require.Eventually(t, func() bool { return len(retiredOf(base)) == 2 }, 5*time.Second, time.Millisecond, "both retired")
	require.Eventually(t, func() bool { return srvs[1].closed.Load() == 1 }, 5*time.Second, time.Millisecond, "the idle connection of the backend that left is closed")
	assert.Zero(t, srvs[2].closed.Load(), "the connection in use stays open")

	close(release)
	<-done
	require.Eventually(t, func() bool { return srvs[2].closed.Load() == 1 }, 5*time.Second, time.Millisecond, "the connection in use closes when its response ends")

	// A connection a retired transport gains later (a request that took
	// the transport just before the drop) is closed by
	// CloseIdleConnections.
	retired := retiredOf(base)[0].t // backend 1's or 2's
	srvs[2].hold.Store(nil)
	send(t, retired, "http://svc.internal/")
	time.Sleep(20 * time.Millisecond)
	closedBefore := srvs[1].closed.Load() + srvs[2].closed.Load()
	tr.CloseIdleConnections()
	require.Eventually(t, func() bool { return srvs[1].closed.Load()+srvs[2].closed.Load() == closedBefore+1 }, 5*time.Second, time.Millisecond, "CloseIdleConnections reaches the retired transports")

	// Past the idle timeout the retired transports are forgotten at the
	// next change of the set.
	now = now.Add(idleConnTimeout + 2*time.Second)
	require.NoError(t, bal.Update(eps[:2]))
	baseGet(t, tr)
	require.Eventually(t, func() bool { return len(retiredOf(base)) == 0 }, 5*time.Second, time.Millisecond, "retired transports forgotten")
	baseGet(t, tr)
	assert.Equal(t, 2, poolCount(base), "a backend back in the set gets a new transport")
}

func poolCount(b *baseTransport) int {
	n := 0
	b.pools.Range(func(_, _ any) bool { n++; return true })
	return n
}

func retiredOf(b *baseTransport) []retiredTransport {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]retiredTransport(nil), b.retired...)
}

// A backend the environment's proxy settings route through a proxy is
// reached through the proxy. Over HTTPS the proxy is asked for a tunnel
// to the backend's address, and the certificate is checked against the
// service's name inside it. Over plain HTTP, as net/http does for any
// request with a Host header, the proxy is given the service's URL and
// chooses where it goes.
func TestBaseTransportProxy(t *testing.T) {
	var connects, plain atomic.Value
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodConnect {
			plain.Store(r.RequestURI + " Host " + r.Host)
			_, _ = io.WriteString(w, "from the proxy")
			return
		}
		connects.Store(r.Host)
		upstream, err := net.Dial("tcp", r.Host)
		if err != nil {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		w.WriteHeader(http.StatusOK)
		conn, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			upstream.Close()
			return
		}
		go func() {
			_, _ = io.Copy(upstream, rw)
			upstream.Close()
		}()
		_, _ = io.Copy(conn, upstream)
		conn.Close()
	}))
	defer proxy.Close()
	proxyURL, err := url.Parse(proxy.URL)
	require.NoError(t, err)

	// httptest's TLS certificate names example.com (and 127.0.0.1).
	backend := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "from the backend, Host "+r.Host+", SNI "+r.TLS.ServerName)
	}))
	backend.StartTLS()
	defer backend.Close()
	addr := backend.Listener.Addr().String()

	bal, err := NewBalancer(RoundRobin{}, WithEndpoints([]Endpoint{{Addr: addr}}))
	require.NoError(t, err)
	defer bal.Close()
	tr, err := NewTransport(bal, WithTLSClientConfig(backend.Client().Transport.(*http.Transport).TLSClientConfig))
	require.NoError(t, err)
	defer tr.CloseIdleConnections()
	tr.own.proxy = func(r *http.Request) (*url.URL, error) {
		if r.URL.Host == addr {
			return proxyURL, nil
		}
		return nil, nil
	}
	get := func(rawURL string) string {
		req, resp, body := send(t, tr, rawURL)
		assert.Same(t, req, resp.Request)
		return body
	}
	assert.Equal(t, "from the backend, Host example.com, SNI example.com", get("https://example.com/x"))
	assert.Equal(t, addr, connects.Load(), "the tunnel goes to the backend")
	assert.False(t, tr.own.poolFor(poolKey{addr: addr}).direct)

	assert.Equal(t, "from the proxy", get("http://svc.internal/x?y=1"))
	assert.Equal(t, "http://svc.internal/x?y=1 Host svc.internal", plain.Load())
}

// Two Transports over one Balancer each keep their own pools: the first
// caches its pool in the Backend, the second looks its own up.
func TestBaseTransportTwoTransports(t *testing.T) {
	srv := newCountingServer(t)
	bal, err := NewBalancer(RoundRobin{}, WithEndpoints([]Endpoint{{Addr: srv.addr()}}))
	require.NoError(t, err)
	defer bal.Close()
	var trs [2]*Transport
	for i := range trs {
		trs[i], err = NewTransport(bal)
		require.NoError(t, err)
		defer trs[i].CloseIdleConnections()
	}
	for i := 0; i < 4; i++ {
		baseGet(t, trs[i%2])
	}
	be := bal.Backends()[0]
	require.NotNil(t, be.conns.Load())
	assert.Same(t, trs[0].own, be.conns.Load().owner, "the first Transport's pool is cached")
	for _, tr := range trs {
		p, _ := tr.own.pools.Load(poolKey{addr: srv.addr()})
		assert.Same(t, p, tr.own.forBackend(be))
	}
	assert.EqualValues(t, 2, srv.opened.Load(), "one connection per Transport, each reused")
}
