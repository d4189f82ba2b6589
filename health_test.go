package lb_test

import (
	"context"
	"log/slog"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/go-lb/lb"
)

// Active checks mark a backend whose /healthz fails down, keep traffic off
// it, and mark it up when it passes again.
func TestHealthChecksMarkDownAndUp(t *testing.T) {
	t.Parallel()
	bs, eps := startTBackends(t, 3)
	sick := bs[1]
	var checks atomic.Int64
	sick.mode.Store(modeUnhealthy)
	tr, bal := newTestTransport(t, lb.RoundRobin{}, eps, nil)
	hc, err := lb.StartHealthChecks(context.Background(), bal, lb.HealthCheck{
		Interval:           10 * time.Millisecond,
		UnhealthyThreshold: 2,
		HealthyThreshold:   2,
		Host:               "svc.internal",
		Healthy: func(r *http.Response) bool {
			checks.Add(1)
			return r.StatusCode == http.StatusOK && r.Request.Host == "svc.internal"
		},
		Transport: tr.Base(),
	})
	require.NoError(t, err)
	defer hc.Close()
	require.Eventually(t, func() bool { return statsOf(bal, sick.addr).Unhealthy }, 10*time.Second, time.Millisecond, "the sick backend is marked down")
	assert.False(t, bal.Backends()[1].Healthy())
	before := sick.executed.Load()
	c := &http.Client{Transport: tr}
	for i := 0; i < 30; i++ {
		code, _, err := trGet(t, c, "http://svc.internal/")
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, code)
	}
	// The sick backend saw only health checks since it was marked down.
	assert.Zero(t, sick.served.Load(), "no traffic to a backend marked down")
	assert.GreaterOrEqual(t, sick.executed.Load(), before)

	sick.mode.Store(modeOK)
	require.Eventually(t, func() bool { return !statsOf(bal, sick.addr).Unhealthy }, 10*time.Second, time.Millisecond, "the backend is marked up again")
	for i := 0; i < 30; i++ {
		_, _, err := trGet(t, c, "http://svc.internal/")
		require.NoError(t, err)
	}
	assert.Positive(t, sick.served.Load(), "it gets traffic again")
	assert.Positive(t, checks.Load())
}

// Health checks follow the set as it changes, and stop with the balancer.
func TestHealthChecksFollowUpdates(t *testing.T) {
	t.Parallel()
	bs, eps := startTBackends(t, 2)
	bal, err := lb.NewBalancer(lb.RoundRobin{}, lb.WithEndpoints(eps[:1]))
	require.NoError(t, err)
	hc, err := lb.StartHealthChecks(context.Background(), bal, lb.HealthCheck{Interval: 5 * time.Millisecond, UnhealthyThreshold: 1})
	require.NoError(t, err)
	defer hc.Close()
	bs[1].mode.Store(modeUnhealthy)
	require.NoError(t, bal.Update(eps))
	require.Eventually(t, func() bool { return statsOf(bal, bs[1].addr).Unhealthy }, 10*time.Second, time.Millisecond, "the new backend is checked")
	require.NoError(t, bal.Close())
	// A closed balancer stops the checks: Close returns.
	require.NoError(t, hc.Close())
}

// Close, or the end of the context, stops the checks and leaves no
// goroutine behind. Not parallel: goleak looks at the whole process.
func TestHealthChecksStop(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	b := startTBackend(t, "a")
	b.mode.Store(modeHold) // checks hang until their timeout or the stop
	for _, byContext := range []bool{false, true} {
		bal, err := lb.NewBalancer(lb.RoundRobin{}, lb.WithEndpoints(lb.Addrs(b.addr, deadAddr(t))))
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(context.Background())
		hc, err := lb.StartHealthChecks(ctx, bal, lb.HealthCheck{Interval: time.Millisecond, Timeout: time.Minute})
		require.NoError(t, err)
		require.Eventually(t, func() bool { return b.active.Load() > 0 }, 10*time.Second, time.Millisecond, "a check is in flight")
		if byContext {
			cancel()
		}
		done := make(chan struct{})
		go func() {
			_ = hc.Close()
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("Close did not stop the checks")
		}
		require.NoError(t, hc.Close(), "Close twice")
		cancel()
		require.NoError(t, bal.Close())
	}
	b.release()
	b.kill()
}

func TestHealthChecksBadConfig(t *testing.T) {
	t.Parallel()
	bal, err := lb.NewBalancer(lb.RoundRobin{})
	require.NoError(t, err)
	defer bal.Close()
	tests := []struct {
		name string
		bal  *lb.Balancer
		ctx  context.Context
		hc   lb.HealthCheck
		want string
	}{
		{"nil balancer", nil, context.Background(), lb.HealthCheck{}, "needs a Balancer"},
		{"nil context", bal, nil, lb.HealthCheck{}, "needs a context"},
		{"path", bal, context.Background(), lb.HealthCheck{Path: "healthz"}, "must start with '/'"},
		{"scheme", bal, context.Background(), lb.HealthCheck{Scheme: "ftp"}, "http or https"},
		{"interval", bal, context.Background(), lb.HealthCheck{Interval: -1}, "Interval"},
		{"timeout", bal, context.Background(), lb.HealthCheck{Timeout: -1}, "Timeout"},
		{"unhealthy", bal, context.Background(), lb.HealthCheck{UnhealthyThreshold: -1}, "UnhealthyThreshold"},
		{"healthy", bal, context.Background(), lb.HealthCheck{HealthyThreshold: -2}, "HealthyThreshold"},
	}
	for _, tt := range tests {
		hc, err := lb.StartHealthChecks(tt.ctx, tt.bal, tt.hc)
		assert.Nil(t, hc, tt.name)
		assert.ErrorIs(t, err, lb.ErrInvalidConfig, tt.name)
		assert.ErrorContains(t, err, tt.want, tt.name)
	}
}

// Passive outlier ejection, end to end through the Transport: a backend
// answering 500 is ejected after ConsecutiveFailures failures, for a time
// that doubles at each ejection; it shows in Stats and in the log, is
// readmitted with a clean streak, and gets traffic again once it answers.
func TestPassiveEjectionEndToEnd(t *testing.T) {
	t.Parallel()
	bs, eps := startTBackends(t, 3)
	bad := bs[0]
	bad.mode.Store(mode503)
	logs := &recordHandler{}
	od := lb.OutlierDetection{ConsecutiveFailures: 2, BaseEjectionTime: 100 * time.Millisecond, MaxEjectionTime: 10 * time.Second}
	tr, bal := newTestTransport(t, lb.RoundRobin{}, eps,
		[]lb.Option{lb.WithOutlierDetection(od), lb.WithLogger(slog.New(logs))},
		lb.WithFailureStatus(lb.Is5xx), lb.WithRetryBudget(lb.RetryBudget{Ratio: 1}))
	c := &http.Client{Transport: tr}
	send := func(n int) {
		for i := 0; i < n; i++ {
			code, _, err := trGet(t, c, "http://svc.internal/")
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, code, "retried on a good backend")
		}
	}

	send(20)
	s := statsOf(bal, bad.addr)
	require.GreaterOrEqual(t, s.Ejections, uint32(1), "ejected after 2 failures in a row")
	// Each ejection took 2 failures; failures after a readmission (on a
	// slow machine the 100 ms ejection may end within the 20 requests)
	// are in the current streak.
	assert.EqualValues(t, s.Failures, 2*uint64(s.Ejections)+uint64(s.Streak), "each ejection took 2 failures")
	require.
		// While ejected, no traffic: measured over a stretch where the backend
		// stayed ejected (ejected at both ends, no ejection in between), tried
		// again if the machine was too slow to fit in one ejection.
		Eventually(t, func() bool {
			before := statsOf(bal, bad.addr)
			executed := bad.executed.Load()
			send(10)
			after := statsOf(bal, bad.addr)
			if !before.Ejected || !after.Ejected || before.Ejections != after.Ejections {
				return false
			}
			assert.Equal(t, executed, bad.executed.Load(), "no traffic while ejected")
			assert.True(t, after.EjectedUntil.After(time.Now().Add(-time.Second)))
			return true
		}, 10*time.Second, time.Millisecond, "a stretch of ejection")
	require.

		// Readmitted after the ejection time; still failing, so ejected again,
		// for twice as long.
		Eventually(t, func() bool { return !statsOf(bal, bad.addr).Ejected }, 10*time.Second, time.Millisecond, "readmission")
	n := statsOf(bal, bad.addr).Ejections
	require.Eventually(t, func() bool {
		send(1)
		return statsOf(bal, bad.addr).Ejections == n+1
	}, 10*time.Second, time.Millisecond, "another ejection")
	ej, readmitted := logs.ejections(bad.addr)
	require.Len(t, ej, int(n+1))
	require.NotEmpty(t, readmitted)
	for i, e := range ej {
		assert.Equal(t, od.BaseEjectionTime<<i, e.dur, "each ejection is twice as long as the one before")
	}

	// Fixed: after the next readmission it serves again, with a clean
	// streak.
	bad.mode.Store(modeOK)
	require.Eventually(t, func() bool { return !statsOf(bal, bad.addr).Ejected }, 10*time.Second, time.Millisecond, "readmission")
	assert.Zero(t, statsOf(bal, bad.addr).Streak)
	send(30)
	assert.Positive(t, bad.served.Load(), "traffic again")
	assert.False(t, statsOf(bal, bad.addr).Ejected)
	assert.Zero(t, tr.Stats().Errors)
}
