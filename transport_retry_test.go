package lb_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-lb/lb"
)

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
