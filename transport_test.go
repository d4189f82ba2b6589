package lb_test

import (
	"context"
	"errors"
	"io"
	"math"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/go-lb/lb"
)

func TestTransportSpreadsAndKeepsLogicalHost(t *testing.T) {
	t.Parallel()
	bs, eps := startTBackends(t, 3)
	tr, bal := newTestTransport(t, lb.RoundRobin{Stripes: 1}, eps, nil)
	c := &http.Client{Transport: tr}

	ctx, servedBy := lb.ServedBy(context.Background())
	assert.Empty(t, servedBy(), "nothing served yet")
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://users.internal:8080/v1/users?id=7", nil)
	require.NoError(t, err)
	before, host := *req.URL, req.Host
	for i := 0; i < 30; i++ {
		resp, err := c.Do(req)
		require.NoError(t, err)
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		require.NoError(t, resp.Body.Close())
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Equal(t, "users.internal:8080", resp.Header.Get("X-Seen-Host"), "the backend sees the logical Host")
		assert.Equal(t, resp.Header.Get("X-Backend"), string(body))
		// The response's request is the caller's; ServedBy names the backend.
		assert.Same(t, req, resp.Request)
		assert.Equal(t, eps[int(string(body)[0]-'a')].Addr, servedBy())
	}
	assert.Equal(t, before, *req.URL, "the caller's URL is untouched")
	assert.Equal(t, host, req.Host, "the caller's Host is untouched")
	for _, b := range bs {
		assert.EqualValues(t, 10, b.served.Load(), b.name)
	}
	for _, s := range bal.Stats() {
		assert.Zero(t, s.InFlight)
		assert.EqualValues(t, 10, s.Successes)
		assert.Positive(t, s.Latency, "time to first byte feeds the EWMA")
	}
	assert.Equal(t, lb.TransportStats{Requests: 30}, tr.Stats())
}

func TestTransportDoneOnBodyEnd(t *testing.T) {
	t.Parallel()
	b := startTBackend(t, "a")
	tr, bal := newTestTransport(t, lb.RoundRobin{}, []lb.Endpoint{{Addr: b.addr}}, nil)
	inflight := func() int64 { return bal.Backends()[0].InFlight() }

	tests := []struct {
		name   string
		method string
		end    func(t *testing.T, resp *http.Response)
	}{
		{"read to EOF", http.MethodGet, func(t *testing.T, resp *http.Response) {
			_, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			assert.Zero(t, inflight(), "EOF finishes the pick")
			require.NoError(t, resp.Body.Close())
		}},
		{"closed unread", http.MethodGet, func(t *testing.T, resp *http.Response) {
			require.NoError(t, resp.Body.Close())
		}},
		{"closed twice", http.MethodGet, func(t *testing.T, resp *http.Response) {
			require.NoError(t, resp.Body.Close())
			_ = resp.Body.Close()
		}},
		{"HEAD has no body", http.MethodHead, func(t *testing.T, resp *http.Response) {
			assert.Zero(t, inflight(), "a response without a body finishes at once")
			require.NoError(t, resp.Body.Close())
		}},
	}
	var want uint64
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, "http://svc/", nil)
			require.NoError(t, err)
			resp, err := tr.RoundTrip(req)
			require.NoError(t, err)
			if tt.method == http.MethodGet {
				assert.EqualValues(t, 1, inflight(), "an open body is in flight")
			}
			tt.end(t, resp)
			assert.Zero(t, inflight())
			want++
			s := bal.Stats()[0]
			assert.Equal(t, want, s.Successes, "Done once per pick")
			assert.Zero(t, s.Failures)
		})
	}
}

func TestTransportBadInput(t *testing.T) {
	t.Parallel()
	t.Run("construction", func(t *testing.T) {
		t.Parallel()
		bal, err := lb.NewBalancer(lb.RoundRobin{})
		require.NoError(t, err)
		defer bal.Close()
		tests := []struct {
			name string
			bal  *lb.Balancer
			opts []lb.TransportOption
			want string
		}{
			{"nil balancer", nil, nil, "needs a Balancer"},
			{"zero attempts", bal, []lb.TransportOption{lb.WithMaxAttempts(0)}, "WithMaxAttempts(0)"},
			{"NaN ratio", bal, []lb.TransportOption{lb.WithRetryBudget(lb.RetryBudget{Ratio: math.NaN()})}, "Ratio is NaN"},
			{"short window", bal, []lb.TransportOption{lb.WithRetryBudget(lb.RetryBudget{Window: time.Millisecond})}, "from 1s to 1h"},
			{"huge floor", bal, []lb.TransportOption{lb.WithRetryBudget(lb.RetryBudget{MinPerSecond: math.MaxInt})}, "MinPerSecond is"},
			{"zero idle", bal, []lb.TransportOption{lb.WithMaxIdleConnsPerBackend(0)}, "WithMaxIdleConnsPerBackend(0)"},
			{"base and TLS", bal, []lb.TransportOption{lb.WithBase(http.DefaultTransport), lb.WithTLSClientConfig(nil), lb.WithMaxIdleConnsPerBackend(4)}, "WithBase"},
		}
		for _, tt := range tests {
			tr, err := lb.NewTransport(tt.bal, tt.opts...)
			assert.Nil(t, tr, tt.name)
			assert.ErrorIs(t, err, lb.ErrInvalidConfig, tt.name)
			assert.ErrorContains(t, err, tt.want, tt.name)
		}
		tr, err := lb.NewTransport(bal, nil, lb.WithKey(nil))
		require.NoError(t, err, "nil options are ignored")
		require.NotNil(t, tr)
	})
	t.Run("requests", func(t *testing.T) {
		t.Parallel()
		b := startTBackend(t, "a")
		tr, _ := newTestTransport(t, lb.RoundRobin{}, []lb.Endpoint{{Addr: b.addr}}, nil)
		mk := func(mut func(r *http.Request)) *http.Request {
			r, err := http.NewRequest(http.MethodPost, "http://svc/", &trackedBody{Reader: strings.NewReader("x")})
			require.NoError(t, err)
			mut(r)
			return r
		}
		tests := []struct {
			name string
			req  *http.Request
			want string
		}{
			{"nil request", nil, "nil *http.Request"},
			{"nil URL", mk(func(r *http.Request) { r.URL = nil }), "no URL"},
			{"no scheme", mk(func(r *http.Request) { r.URL.Scheme = "" }), "no scheme"},
			{"nil header", mk(func(r *http.Request) { r.Header = nil }), "nil Header"},
		}
		for _, tt := range tests {
			resp, err := tr.RoundTrip(tt.req)
			assert.Nil(t, resp, tt.name)
			assert.ErrorIs(t, err, lb.ErrNotSent, tt.name)
			assert.ErrorContains(t, err, tt.want, tt.name)
			if tt.req != nil {
				assert.EqualValues(t, 1, tt.req.Body.(*trackedBody).closed.Load(), "%s: body closed", tt.name)
			}
		}
		assert.Zero(t, b.executed.Load())
	})
	t.Run("no endpoints", func(t *testing.T) {
		t.Parallel()
		bal, err := lb.NewBalancer(lb.Ring{})
		require.NoError(t, err)
		defer bal.Close()
		tr, err := lb.NewTransport(bal)
		require.NoError(t, err)
		body := &trackedBody{Reader: strings.NewReader("x")}
		req, err := http.NewRequest(http.MethodPut, "http://svc/", body)
		require.NoError(t, err)
		_, err = tr.RoundTrip(req)
		assert.ErrorIs(t, err, lb.ErrNoEndpoints)
		assert.ErrorIs(t, err, lb.ErrNotSent)
		assert.EqualValues(t, 1, body.closed.Load())
		var le *lb.Error
		require.ErrorAs(t, err, &le)
		assert.Empty(t, le.Attempts)
		assert.Equal(t, lb.TransportStats{Requests: 1, Errors: 1}, tr.Stats())

		require.NoError(t, bal.Close())
		_, err = tr.RoundTrip(mustRequest(t, http.MethodGet, "http://svc/"))
		assert.ErrorIs(t, err, lb.ErrClosed)
	})
	t.Run("malformed backend address", func(t *testing.T) {
		t.Parallel()
		for _, addr := range []string{"", "no-port", "::1:80", "host:99999", "a b:80", "[::1]"} {
			bal, err := lb.NewBalancer(lb.RoundRobin{}, lb.WithEndpoints(lb.Addrs(addr)))
			assert.Nil(t, bal, addr)
			assert.ErrorIs(t, err, lb.ErrInvalidEndpoint, addr)
		}
	})
	t.Run("every backend refuses", func(t *testing.T) {
		t.Parallel()
		eps := lb.Addrs(deadAddr(t), deadAddr(t))
		tr, _ := newTestTransport(t, lb.RoundRobin{}, eps, nil)
		_, err := tr.RoundTrip(mustRequest(t, http.MethodGet, "http://svc/"))
		require.Error(t, err)
		assert.ErrorIs(t, err, lb.ErrNotSent)
		assert.NotErrorIs(t, err, lb.ErrMaybeExecuted)
		assert.NotErrorIs(t, err, lb.ErrNoEndpoints, "running out of backends is not an empty balancer")
		var le *lb.Error
		require.ErrorAs(t, err, &le)
		require.Len(t, le.Attempts, 2)
		assert.ElementsMatch(t, []string{eps[0].Addr, eps[1].Addr}, []string{le.Attempts[0].Addr, le.Attempts[1].Addr})
		assert.Contains(t, le.Reason, "no backend left")
		assert.Contains(t, err.Error(), eps[0].Addr)
		assert.Contains(t, err.Error(), eps[1].Addr)
		assert.Contains(t, err.Error(), "connection refused")
		assert.Same(t, le.Attempts[1].Err, le.Err, "it wraps the last error")
	})
}

func mustRequest(t *testing.T, method, url string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	require.NoError(t, err)
	return req
}

// TestTransportContract checks the RoundTripper contract on every path:
// the caller's request is not modified, its body is closed exactly as the
// contract says, and no goroutine is left behind. Not parallel: goleak
// looks at the whole process.
func TestTransportContract(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())

	b := startTBackend(t, "a")
	b503 := startTBackend(t, "b")
	b503.mode.Store(mode503)
	bbreak := startTBackend(t, "c")
	bbreak.mode.Store(modeBreak)
	dead := deadAddr(t)
	empty, err := lb.NewBalancer(lb.RoundRobin{})
	require.NoError(t, err)
	defer empty.Close()

	tests := []struct {
		name      string
		addrs     []string
		bal       *lb.Balancer
		method    string
		noGetBody bool // a streaming body: resent only if unread
		wantErr   bool
	}{
		{name: "success", addrs: []string{b.addr}, method: http.MethodPost},
		{name: "streaming: success", addrs: []string{b.addr}, method: http.MethodPost, noGetBody: true},
		{name: "streaming: refused then success", addrs: []string{dead, b.addr}, method: http.MethodPost, noGetBody: true},
		{name: "streaming: all refused", addrs: []string{dead}, method: http.MethodPost, noGetBody: true, wantErr: true},
		{name: "streaming: broken PUT", addrs: []string{bbreak.addr}, method: http.MethodPut, noGetBody: true, wantErr: true},
		{name: "streaming: 503 returned", addrs: []string{b503.addr}, method: http.MethodPut, noGetBody: true},
		{name: "refused then success", addrs: []string{dead, b.addr}, method: http.MethodPost},
		{name: "all refused", addrs: []string{dead}, method: http.MethodPost, wantErr: true},
		{name: "503 retried", addrs: []string{b503.addr, b.addr}, method: http.MethodPut},
		{name: "503 returned", addrs: []string{b503.addr}, method: http.MethodPut},
		{name: "broken POST", addrs: []string{bbreak.addr}, method: http.MethodPost, wantErr: true},
		{name: "broken PUT retried", addrs: []string{bbreak.addr, b.addr}, method: http.MethodPut},
		{name: "no endpoints", bal: empty, method: http.MethodPost, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bal := tt.bal
			if bal == nil {
				bal, err = lb.NewBalancer(lb.RoundRobin{Stripes: 1}, lb.WithEndpoints(lb.Addrs(tt.addrs...)))
				require.NoError(t, err)
				defer bal.Close()
			}
			tr, err := lb.NewTransport(bal, lb.WithFailureStatus(lb.Is5xx))
			require.NoError(t, err)
			defer tr.CloseIdleConnections()
			// Twice, so that round robin starts once on each backend.
			for i := 0; i < len(tt.addrs)+1; i++ {
				body := &trackedBody{Reader: strings.NewReader("payload")}
				req, err := http.NewRequest(tt.method, "http://svc.internal/path?q=1", body)
				require.NoError(t, err)
				if tt.noGetBody {
					req.GetBody = nil
				} else {
					req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader("payload")), nil }
				}
				req.Header.Set("X-Test", "1")
				snapshot := *req
				snapURL := *req.URL
				snapHeader := req.Header.Clone()

				resp, err := tr.RoundTrip(req)
				if tt.wantErr {
					require.Error(t, err)
					require.Nil(t, resp)
				} else {
					require.NoError(t, err)
					_, _ = io.Copy(io.Discard, resp.Body)
					require.NoError(t, resp.Body.Close())
				}
				require.Eventually(t, func() bool { return body.closed.Load() > 0 }, 5*time.Second, time.Millisecond, "the request body is closed")
				if tt.noGetBody {
					assert.EqualValues(t, 1, body.closed.Load(), "closed once")
				}
				assert.Equal(t, snapURL, *req.URL, "URL untouched")
				assert.Same(t, snapshot.URL, req.URL)
				assert.Equal(t, snapHeader, req.Header, "header untouched")
				assert.Equal(t, snapshot.Host, req.Host)
				assert.Same(t, snapshot.Body, req.Body)
				assert.Equal(t, snapshot.Method, req.Method)
				for _, s := range bal.Stats() {
					assert.Zero(t, s.InFlight, "every pick is done")
				}
			}
		})
	}
	b.kill()
	b503.kill()
	bbreak.kill()
}

func TestTransportConcurrentUse(t *testing.T) {
	t.Parallel()
	bs, eps := startTBackends(t, 3)
	tr, bal := newTestTransport(t, lb.P2C{}, eps, nil)
	c := &http.Client{Transport: tr}
	var wg sync.WaitGroup
	var fails atomic.Int64
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				resp, err := c.Get("http://svc/")
				if err != nil {
					fails.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}()
	}
	wg.Wait()
	assert.Zero(t, fails.Load())
	var served int64
	for _, b := range bs {
		served += b.served.Load()
	}
	assert.EqualValues(t, 800, served)
	for _, s := range bal.Stats() {
		assert.Zero(t, s.InFlight)
	}
}

func TestTransportErrorMessage(t *testing.T) {
	t.Parallel()
	e := &lb.Error{
		Attempts: []lb.AttemptError{
			{Addr: "10.0.0.1:80", Err: errors.New("dial tcp: connection refused")},
			{Addr: "10.0.0.2:80", Err: io.EOF, MaybeExecuted: true},
		},
		Err:           io.EOF,
		MaybeExecuted: true,
		Reason:        "max attempts",
	}
	assert.Equal(t, "lb: request may have executed (max attempts): tried 2 backends: 10.0.0.1:80: dial tcp: connection refused; 10.0.0.2:80: EOF", e.Error())
	assert.ErrorIs(t, e, io.EOF)
	assert.ErrorIs(t, e, lb.ErrMaybeExecuted)
	e = &lb.Error{Err: lb.ErrNoEndpoints, Reason: "no backend"}
	assert.Equal(t, "lb: request not sent (no backend): lb: no endpoints", e.Error())
}

// The default base transport keeps enough idle connections per backend:
// at concurrency 32 over 5 backends, it opens at most as many connections
// as can be in use at once, and then reuses them.
func TestTransportReusesConnections(t *testing.T) {
	t.Parallel()
	bs, eps := startTBackends(t, 5)
	tr, _ := newTestTransport(t, lb.RoundRobin{}, eps, nil)
	const n, c = 4000, 32
	client := &http.Client{Transport: tr}
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < c; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= n {
				resp, err := client.Get("http://svc/")
				if !assert.NoError(t, err) {
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}()
	}
	wg.Wait()
	var conns int64
	for _, b := range bs {
		conns += b.conns.Load()
	}
	t.Logf("%d requests at concurrency %d over %d backends: %d TCP connections (%.1f per 1,000 requests)",
		n, c, len(bs), conns, float64(conns)*1000/n)
	assert.LessOrEqual(t, conns, int64(c*len(bs)), "no connection churn")
}

// rtFunc is an http.RoundTripper made of a function.
type rtFunc func(*http.Request) (*http.Response, error)

func (f rtFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// ServedBy names the backend whose response is returned: the one that
// succeeded after a retry, or, when every attempt got a failure status,
// the last one tried. With a base of one's own (which gets a copy whose
// URL names the backend) as with the default, the response's Request is
// the caller's.
func TestServedBy(t *testing.T) {
	t.Parallel()
	eps := []lb.Endpoint{{Addr: "10.0.0.1:80"}, {Addr: "10.0.0.2:80"}}
	var down atomic.Value // the address answering 503 ("*": all)
	var seen []string
	base := rtFunc(func(r *http.Request) (*http.Response, error) {
		seen = append(seen, r.URL.Host+" "+r.Host)
		code := http.StatusOK
		if d := down.Load(); d == "*" || d == r.URL.Host {
			code = http.StatusServiceUnavailable
		}
		return &http.Response{StatusCode: code, Body: io.NopCloser(strings.NewReader(r.URL.Host)), Request: r}, nil
	})
	tr, _ := newTestTransport(t, lb.RoundRobin{Stripes: 1}, eps, nil, lb.WithBase(base), lb.WithFailureStatus(lb.Is5xx))

	for _, d := range []string{"10.0.0.1:80", "10.0.0.2:80", "*"} {
		down.Store(d)
		for i := 0; i < 2; i++ { // the first pick is each backend in turn
			seen = nil
			ctx, servedBy := lb.ServedBy(context.Background())
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://svc.internal/x", nil)
			require.NoError(t, err)
			resp, err := tr.RoundTrip(req)
			require.NoError(t, err)
			body, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			require.NoError(t, resp.Body.Close())
			assert.Same(t, req, resp.Request, "the response's Request is the caller's")
			assert.Equal(t, string(body), servedBy(), "ServedBy names the backend whose response this is")
			last := seen[len(seen)-1]
			assert.Equal(t, last, servedBy()+" svc.internal", "the base got the backend's address and the logical Host")
			if d == "*" {
				assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
				assert.Len(t, seen, 2)
			} else {
				assert.Equal(t, http.StatusOK, resp.StatusCode)
				assert.NotEqual(t, d, servedBy())
			}
		}
	}
	ctx, servedBy := lb.ServedBy(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://svc.internal/x", nil)
	require.NoError(t, err)
	down.Store("")
	resp, err := tr.RoundTrip(req.WithContext(context.Background()))
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	assert.Empty(t, servedBy(), "a request on another context does not report")
}
