package lb_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
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

func TestTransportRetriesWhatWasNeverSent(t *testing.T) {
	t.Parallel()
	bs, eps := startTBackends(t, 2)
	dead := deadAddr(t)
	eps = append(eps, lb.Endpoint{Addr: dead})
	tr, bal := newTestTransport(t, lb.RoundRobin{Stripes: 1}, eps, nil)
	c := &http.Client{Transport: tr}

	// POST is not idempotent, but a refused dial never reached a backend.
	for i := 0; i < 30; i++ {
		resp, err := c.Post("http://svc/orders", "text/plain", strings.NewReader("order"))
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, resp.Body)
		require.NoError(t, resp.Body.Close())
		require.Equal(t, http.StatusOK, resp.StatusCode)
	}
	assert.EqualValues(t, 30, bs[0].executed.Load()+bs[1].executed.Load(), "each POST executed once")
	assert.Positive(t, tr.Stats().Retries)
	assert.EqualValues(t, tr.Stats().Retries, statsOf(bal, dead).Failures, "every pick of the dead backend was retried")
}

// A body without GetBody (a stream) is sent again when no attempt read
// it: a refused dial did not.
func TestTransportResendsUnreadBody(t *testing.T) {
	t.Parallel()
	b := startTBackend(t, "a")
	b.bodies = make(chan []byte, 16)
	eps := []lb.Endpoint{{Addr: deadAddr(t)}, {Addr: b.addr}}
	tr, _ := newTestTransport(t, lb.RoundRobin{Stripes: 1}, eps, nil)
	payload := strings.Repeat("stream ", 10000)
	for i := 0; i < 4; i++ {
		body := &trackedBody{Reader: io.MultiReader(strings.NewReader(payload))}
		req, err := http.NewRequest(http.MethodPost, "http://svc/upload", body)
		require.NoError(t, err)
		require.Nil(t, req.GetBody)
		resp, err := tr.RoundTrip(req)
		require.NoError(t, err)
		require.NoError(t, resp.Body.Close())
		assert.Equal(t, payload, string(<-b.bodies), "the whole body arrived")
		require.Eventually(t, func() bool { return body.closed.Load() > 0 }, 5*time.Second, time.Millisecond, "the body is closed")
		assert.EqualValues(t, 1, body.closed.Load(), "once")
	}
	assert.Positive(t, tr.Stats().Retries, "requests picked on the dead backend were resent")
}

func TestTransportSideEffectsAreNotDuplicated(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		retryAll      bool
		header        string // an idempotency key header, if set
		wantDuplicate bool
	}{
		{name: "POST not retried after write"},
		{name: "POST retried when opted in", retryAll: true, wantDuplicate: true},
		{name: "POST with an idempotency key retried", header: "Idempotency-Key", wantDuplicate: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			bs, eps := startTBackends(t, 3)
			bs[0].mode.Store(modeBreak) // executes, then the connection breaks
			tr, _ := newTestTransport(t, lb.RoundRobin{Stripes: 1}, eps, nil, lb.WithRetryNonIdempotent(tt.retryAll))
			c := &http.Client{Transport: tr}

			const n = 60
			var ok, maybe int
			for i := 0; i < n; i++ {
				req, err := http.NewRequest(http.MethodPost, "http://svc/pay", strings.NewReader("pay 10"))
				require.NoError(t, err)
				if tt.header != "" {
					req.Header.Set(tt.header, "k"+string(rune('0'+i%10)))
				}
				resp, err := c.Do(req)
				if err != nil {
					assert.ErrorIs(t, err, lb.ErrMaybeExecuted)
					assert.NotErrorIs(t, err, lb.ErrNotSent)
					var le *lb.Error
					require.ErrorAs(t, err, &le)
					assert.True(t, le.MaybeExecuted)
					assert.Equal(t, "not idempotent", le.Reason)
					require.Len(t, le.Attempts, 1)
					assert.Equal(t, bs[0].addr, le.Attempts[0].Addr)
					maybe++
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				require.NoError(t, resp.Body.Close())
				require.Equal(t, http.StatusOK, resp.StatusCode)
				ok++
			}
			var executed int64
			for _, b := range bs {
				executed += b.executed.Load()
			}
			broken := bs[0].executed.Load()
			assert.Positive(t, broken)
			if tt.wantDuplicate {
				assert.Equal(t, n, ok, "retried on another backend, all succeed")
				assert.EqualValues(t, n+broken, executed, "and the broken ones executed twice")
				assert.EqualValues(t, broken, tr.Stats().Retries)
			} else {
				assert.EqualValues(t, n/3, broken, "round robin sent a third to the breaking backend")
				assert.EqualValues(t, broken, maybe, "the broken POSTs fail, saying they may have executed")
				assert.EqualValues(t, ok+maybe, executed, "every execution is a request the client sent once")
				assert.EqualValues(t, ok, bs[1].served.Load()+bs[2].served.Load(), "successes = executions that answered")
				assert.Zero(t, tr.Stats().Retries)
			}
		})
	}
}

func TestTransportReplaysBody(t *testing.T) {
	t.Parallel()
	bs, eps := startTBackends(t, 2)
	bs[0].mode.Store(modeBreak)
	for _, b := range bs {
		b.bodies = make(chan []byte, 4)
	}
	tr, _ := newTestTransport(t, lb.RoundRobin{Stripes: 1}, eps, nil)
	payload := bytes.Repeat([]byte("0123456789abcdef"), 4096) // 64 KiB

	// Round robin starts at random: send PUTs until one went to the
	// breaking backend first and was replayed on the other.
	for i := 0; i < 4 && tr.Stats().Retries == 0; i++ {
		req, err := http.NewRequest(http.MethodPut, "http://svc/blob", bytes.NewReader(payload))
		require.NoError(t, err)
		resp, err := tr.RoundTrip(req)
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, resp.Body)
		require.NoError(t, resp.Body.Close())
		require.Equal(t, http.StatusOK, resp.StatusCode)
	}
	require.EqualValues(t, 1, tr.Stats().Retries)
	require.Len(t, bs[0].bodies, 1, "one attempt on the breaking backend")
	assert.Equal(t, payload, <-bs[0].bodies, "the broken attempt got the body")
	require.NotEmpty(t, bs[1].bodies)
	for len(bs[1].bodies) > 0 {
		assert.Equal(t, payload, <-bs[1].bodies, "the replay delivered the same bytes")
	}

	// A body without GetBody cannot be replayed: no retry.
	bs[1].mode.Store(modeBreak)
	body := &trackedBody{Reader: bytes.NewReader(payload)}
	req, err := http.NewRequest(http.MethodPut, "http://svc/blob", body)
	require.NoError(t, err)
	require.Nil(t, req.GetBody)
	_, err = tr.RoundTrip(req)
	require.Error(t, err)
	assert.ErrorIs(t, err, lb.ErrMaybeExecuted)
	assert.Contains(t, err.Error(), "not replayable")
	assert.EqualValues(t, 1, tr.Stats().Retries)
	require.Eventually(t, func() bool { return body.closed.Load() > 0 }, 5*time.Second, time.Millisecond, "the body is closed")
}

func TestTransportFailureStatus(t *testing.T) {
	t.Parallel()
	t.Run("retried, then the good answer", func(t *testing.T) {
		t.Parallel()
		bs, eps := startTBackends(t, 2)
		bs[0].mode.Store(mode503)
		tr, bal := newTestTransport(t, lb.RoundRobin{Stripes: 1}, eps, nil, lb.WithFailureStatus(lb.Is5xx))
		c := &http.Client{Transport: tr}
		for i := 0; i < 10; i++ {
			code, body, err := trGet(t, c, "http://svc/")
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, code)
			require.Equal(t, "b", body)
		}
		assert.GreaterOrEqual(t, tr.Stats().Retries, uint64(5))
		assert.EqualValues(t, tr.Stats().Retries, statsOf(bal, bs[0].addr).Failures, "a 503 is a failure, retried")
	})
	t.Run("all fail: the last response is returned", func(t *testing.T) {
		t.Parallel()
		bs, eps := startTBackends(t, 3)
		for _, b := range bs {
			b.mode.Store(mode503)
		}
		tr, bal := newTestTransport(t, lb.RoundRobin{Stripes: 1}, eps, nil, lb.WithFailureStatus(lb.Is5xx))
		c := &http.Client{Transport: tr}
		code, body, err := trGet(t, c, "http://svc/")
		require.NoError(t, err, "an error only when there is no response")
		assert.Equal(t, http.StatusServiceUnavailable, code)
		assert.True(t, strings.HasPrefix(body, "unavailable: "), "the body is intact: %q", body)
		assert.EqualValues(t, 2, tr.Stats().Retries)
		for _, s := range bal.Stats() {
			assert.EqualValues(t, 1, s.Failures)
			assert.Zero(t, s.InFlight)
		}
	})
	t.Run("a 503 then a refused dial: the 503 is returned", func(t *testing.T) {
		t.Parallel()
		b := startTBackend(t, "a")
		b.mode.Store(mode503)
		eps := []lb.Endpoint{{Addr: b.addr}, {Addr: deadAddr(t)}}
		tr, _ := newTestTransport(t, lb.RoundRobin{Stripes: 1}, eps, nil, lb.WithFailureStatus(lb.Is5xx))
		c := &http.Client{Transport: tr}
		for i := 0; i < 4; i++ {
			code, _, err := trGet(t, c, "http://svc/")
			require.NoError(t, err)
			assert.Equal(t, http.StatusServiceUnavailable, code)
		}
	})
	t.Run("POST 503 not retried", func(t *testing.T) {
		t.Parallel()
		bs, eps := startTBackends(t, 2)
		bs[0].mode.Store(mode503)
		bs[1].mode.Store(mode503)
		tr, _ := newTestTransport(t, lb.RoundRobin{}, eps, nil, lb.WithFailureStatus(lb.Is5xx))
		resp, err := (&http.Client{Transport: tr}).Post("http://svc/", "text/plain", strings.NewReader("x"))
		require.NoError(t, err)
		require.NoError(t, resp.Body.Close())
		assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
		assert.EqualValues(t, 1, bs[0].executed.Load()+bs[1].executed.Load())
		assert.Zero(t, tr.Stats().Retries)
	})
	t.Run("turned off: a 503 is an answer", func(t *testing.T) {
		t.Parallel()
		b := startTBackend(t, "a")
		b.mode.Store(mode503)
		tr, bal := newTestTransport(t, lb.RoundRobin{}, []lb.Endpoint{{Addr: b.addr}}, nil, lb.WithFailureStatus(nil))
		code, _, err := trGet(t, &http.Client{Transport: tr}, "http://svc/")
		require.NoError(t, err)
		assert.Equal(t, http.StatusServiceUnavailable, code)
		assert.Zero(t, bal.Stats()[0].Failures)
	})
	t.Run("by default 502, 503 and 504 are failures, 500 is an answer", func(t *testing.T) {
		t.Parallel()
		for _, code := range []int{500, 502, 503, 504, 429} {
			b := startTBackend(t, "a")
			b.mu.Lock()
			b.handler = func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(code) }
			b.mu.Unlock()
			tr, bal := newTestTransport(t, lb.RoundRobin{}, []lb.Endpoint{{Addr: b.addr}}, nil)
			got, _, err := trGet(t, &http.Client{Transport: tr}, "http://svc/")
			require.NoError(t, err, "the last failure response is returned")
			assert.Equal(t, code, got)
			want := uint64(0)
			if lb.IsUnavailable(code) {
				want = 1
			}
			assert.Equal(t, want, bal.Stats()[0].Failures, "status %d", code)
		}
	})
}

func TestTransportContextEndsRetries(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		ctx    func() (context.Context, context.CancelFunc)
		cancel bool // cancel by hand once the request is on a backend
		want   error
	}{
		{"cancel", func() (context.Context, context.CancelFunc) { return context.WithCancel(context.Background()) }, true, context.Canceled},
		{"deadline", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 100*time.Millisecond)
		}, false, context.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			bs, eps := startTBackends(t, 3)
			for _, b := range bs {
				b.hold()
			}
			tr, bal := newTestTransport(t, lb.RoundRobin{}, eps, nil)
			ctx, cancel := tt.ctx()
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://svc/", nil)
			require.NoError(t, err)
			done := make(chan error, 1)
			go func() {
				resp, err := tr.RoundTrip(req)
				if resp != nil {
					resp.Body.Close()
				}
				done <- err
			}()
			if tt.cancel {
				require.Eventually(t, func() bool {
					return bs[0].active.Load()+bs[1].active.Load()+bs[2].active.Load() == 1
				}, 5*time.Second, time.Millisecond, "the request reaches a backend")
				cancel()
			}
			var rerr error
			select {
			case rerr = <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("RoundTrip did not return after the context ended")
			}
			require.Error(t, rerr)
			assert.ErrorIs(t, rerr, tt.want)
			var le *lb.Error
			require.ErrorAs(t, rerr, &le)
			assert.Equal(t, "context done", le.Reason)
			assert.Zero(t, tr.Stats().Retries, "no retry once the context ended")
			for _, s := range bal.Stats() {
				assert.Zero(t, s.Failures, "the caller's cancellation is not the backend's failure")
				assert.Zero(t, s.InFlight)
			}
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

func TestTransportKeys(t *testing.T) {
	t.Parallel()
	_, eps := startTBackends(t, 5)
	mk := func(mut func(r *http.Request, user string)) func(user string) *http.Request {
		return func(user string) *http.Request {
			r, err := http.NewRequest(http.MethodGet, "http://svc/", nil)
			require.NoError(t, err)
			mut(r, user)
			return r
		}
	}
	tests := []struct {
		name string
		key  lb.KeyFunc
		req  func(user string) *http.Request
	}{
		{"header", lb.HeaderKey("x-user"), mk(func(r *http.Request, u string) { r.Header.Set("X-User", u) })},
		{"cookie", lb.CookieKey("session"), mk(func(r *http.Request, u string) { r.AddCookie(&http.Cookie{Name: "session", Value: u}) })},
		{"query", lb.QueryKey("user"), mk(func(r *http.Request, u string) { r.URL.RawQuery = url.Values{"user": {u}}.Encode() })},
		{"path", lb.PathKey(), mk(func(r *http.Request, u string) { r.URL.Path = "/users/" + u })},
		{"func", func(r *http.Request) string { return r.Header.Get("X-Tenant") }, mk(func(r *http.Request, u string) { r.Header.Set("X-Tenant", u) })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tr, _ := newTestTransport(t, lb.Ring{}, eps, nil, lb.WithKey(tt.key))
			seen := map[string]bool{}
			for u := 0; u < 40; u++ {
				user := "user-" + strconv.Itoa(u)
				var first string
				for i := 0; i < 3; i++ {
					ctx, servedBy := lb.ServedBy(context.Background())
					resp, err := tr.RoundTrip(tt.req(user).WithContext(ctx))
					require.NoError(t, err)
					require.NoError(t, resp.Body.Close())
					if i == 0 {
						first = servedBy()
					}
					require.NotEmpty(t, first)
					require.Equal(t, first, servedBy(), "%s sticks to one backend", user)
				}
				seen[first] = true
			}
			assert.Greater(t, len(seen), 2, "keys spread over the backends")
		})
	}
}

func TestKeyFuncs(t *testing.T) {
	mk := func(raw string, h http.Header) *http.Request {
		u, err := url.Parse(raw)
		require.NoError(t, err)
		if h == nil {
			h = http.Header{}
		}
		return &http.Request{URL: u, Header: h}
	}
	tests := []struct {
		name string
		key  lb.KeyFunc
		req  *http.Request
		want string
	}{
		{"header", lb.HeaderKey("x-user-id"), mk("/", http.Header{"X-User-Id": {"u1", "u2"}}), "u1"},
		{"header missing", lb.HeaderKey("X-User-Id"), mk("/", nil), ""},
		{"cookie", lb.CookieKey("sid"), mk("/", http.Header{"Cookie": {"a=1; sid=abc; b=2"}}), "abc"},
		{"cookie quoted", lb.CookieKey("sid"), mk("/", http.Header{"Cookie": {`sid="abc"`}}), "abc"},
		{"cookie second line", lb.CookieKey("sid"), mk("/", http.Header{"Cookie": {"a=1", " sid =x "}}), "x"},
		{"cookie invalid first", lb.CookieKey("sid"), mk("/", http.Header{"Cookie": {`sid=a\b; sid=ok`}}), "ok"},
		{"cookie prefix name", lb.CookieKey("sid"), mk("/", http.Header{"Cookie": {"xsid=1; sid2=2"}}), ""},
		{"cookie empty name", lb.CookieKey(""), mk("/", http.Header{"Cookie": {"=1"}}), ""},
		{"query", lb.QueryKey("u"), mk("/?a=1&u=bob&u=eve", nil), "bob"},
		{"query escaped", lb.QueryKey("u s"), mk("/?u+s=a%20b", nil), "a b"},
		{"query semicolon skipped", lb.QueryKey("u"), mk("/?u=1;x&u=2", nil), "2"},
		{"query bad escape skipped", lb.QueryKey("u"), mk("/?u=%zz&u=3", nil), "3"},
		{"query missing", lb.QueryKey("u"), mk("/?user=1", nil), ""},
		{"path", lb.PathKey(), mk("/a/b%20c", nil), "/a/b c"},
		{"query nil URL", lb.QueryKey("u"), &http.Request{Header: http.Header{}}, ""},
		{"path nil URL", lb.PathKey(), &http.Request{Header: http.Header{}}, ""},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, tt.key(tt.req), tt.name)
	}
	// The cookie and query keys agree with net/http where both apply, and
	// allocate nothing for plain values.
	r := mk("/?a=1&user=bob", http.Header{"Cookie": {"a=1; session=xyz"}})
	ck, qk := lb.CookieKey("session"), lb.QueryKey("user")
	c, err := r.Cookie("session")
	require.NoError(t, err)
	assert.Equal(t, c.Value, ck(r))
	assert.Equal(t, r.URL.Query().Get("user"), qk(r))
	assert.Zero(t, testing.AllocsPerRun(100, func() { _ = ck(r); _ = qk(r) }))
}

// FuzzKeyFuncs checks that CookieKey and QueryKey agree with net/http on
// any input, and never panic.
func FuzzKeyFuncs(f *testing.F) {
	f.Add("a=1; sid=abc", "sid", "u=1&v=%20", "u")
	f.Add(`sid="q"; sid=2`, "sid", "u=1;2&u=3", "u")
	f.Add(" ;;= ; sid = x ", "sid", "%zz=1&u+v=2", "u v")
	f.Fuzz(func(t *testing.T, cookie, cname, query, qname string) {
		r := &http.Request{Header: http.Header{"Cookie": {cookie}}, URL: &url.URL{RawQuery: query}}
		want := ""
		if c, err := r.Cookie(cname); err == nil && cname != "" {
			want = c.Value
		}
		if strings.Count(cookie, ";") < 3000 { // net/http caps the cookie count
			assert.Equal(t, want, lb.CookieKey(cname)(r), "cookie %q in %q", cname, cookie)
		}
		q, _ := url.ParseQuery(query)
		assert.Equal(t, q.Get(qname), lb.QueryKey(qname)(r), "param %q in %q", qname, query)
	})
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

// With every backend failing, retries stay within the budget: Ratio times
// the requests plus the floor, instead of (attempts-1) times the requests.
func TestTransportRetryBudgetHolds(t *testing.T) {
	t.Parallel()
	eps := lb.Addrs(deadAddr(t), deadAddr(t), deadAddr(t), deadAddr(t), deadAddr(t))
	rb := lb.RetryBudget{Ratio: 0.1, MinPerSecond: 2, Window: time.Second}
	tr, _ := newTestTransport(t, lb.RoundRobin{}, eps, nil, lb.WithMaxAttempts(5), lb.WithRetryBudget(rb))
	const n = 400
	start := time.Now()
	var notSent, denied int
	for i := 0; i < n; i++ {
		_, err := tr.RoundTrip(mustRequest(t, http.MethodGet, "http://svc/"))
		require.Error(t, err)
		if errors.Is(err, lb.ErrNotSent) {
			notSent++
		}
		var le *lb.Error
		require.ErrorAs(t, err, &le)
		if le.Reason == "retry budget exhausted" {
			denied++
		}
	}
	elapsed := time.Since(start)
	st := tr.Stats()
	// Requests older than the window stop counting, and the floor accrues
	// per second of the window: over the run, at most ratio*n plus the
	// floor for every second the run touched.
	limit := rb.Ratio*n + float64(rb.MinPerSecond)*(rb.Window.Seconds()+elapsed.Seconds()+1)
	t.Logf("%d requests in %v: %d retries (limit %.0f; %d without a budget), %d refused", n, elapsed, st.Retries, limit, 4*n, st.RetriesDenied)
	assert.Equal(t, n, notSent)
	assert.LessOrEqual(t, float64(st.Retries), limit)
	assert.GreaterOrEqual(t, st.Retries, uint64(rb.Ratio*n), "the budget is spent")
	assert.Positive(t, st.RetriesDenied)
	assert.EqualValues(t, denied, st.RetriesDenied)
	assert.EqualValues(t, n, st.Errors)
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
