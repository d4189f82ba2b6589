package lb_test

import (
	"context"
	"io"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-lb/lb"
)

// A backend that flaps (200 ms up, 200 ms down): callers see no failure,
// and it is ejected and readmitted as it goes.
func TestGrayFlapping(t *testing.T) {
	t.Parallel()
	backs, eps := startTBackends(t, 3)
	flap := backs[0]
	od := lb.OutlierDetection{BaseEjectionTime: 150 * time.Millisecond, MaxEjectionTime: 300 * time.Millisecond}
	tr, bal := newTestTransport(t, lb.P2C{}, eps, []lb.Option{lb.WithOutlierDetection(od)})
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	stop := make(chan struct{})
	flapped := make(chan struct{})
	go func() {
		defer close(flapped)
		for i := 0; i < 4; i++ {
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Millisecond):
			}
			flap.kill()
			select {
			case <-stop:
				flap.restart()
				return
			case <-time.After(200 * time.Millisecond):
			}
			flap.restart()
		}
	}()
	var total load
	deadline := time.Now().Add(1700 * time.Millisecond)
	for time.Now().Before(deadline) {
		l := drive(t, c, 100, 4, getReq)
		total.requests.Add(l.requests.Load())
		total.failed.Add(l.failed.Load())
		total.status5xx.Add(l.status5xx.Load())
	}
	close(stop)
	<-flapped
	s := statsOf(bal, flap.addr)
	t.Logf("flapping: %v; the flapping backend: %d picks, %d failures, %d ejections", &total, s.Picks, s.Failures, s.Ejections)
	assert.Zero(t, total.failed.Load(), "refused dials are retried elsewhere")
	var attempts uint64
	for _, st := range bal.Stats() {
		attempts += st.Picks
	}
	// Down half the time, it is not given a full third of the attempts:
	// ejected, or kept light by its failure score (which of the two
	// depends on how its failures fall between its successes).
	assert.Less(t, float64(s.Picks)/float64(attempts), 0.30, "%d of %d attempts", s.Picks, attempts)
	assert.Positive(t, flap.served.Load(), "it serves while up")
}

// The whole fleet down for a second, then back: attempts during the outage
// stay within the retry budget, and every backend gets traffic again soon
// after (active checks readmit the ejected ones).
func TestGrayWholeFleetDown(t *testing.T) {
	t.Parallel()
	backs, eps := startTBackends(t, 4)
	tr, bal := newTestTransport(t, lb.P2C{}, eps, readmeBalancer())
	hc, err := lb.StartHealthChecks(context.Background(), bal, lb.HealthCheck{Path: "/", Interval: time.Second})
	require.NoError(t, err)
	defer hc.Close()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	require.Zero(t, drive(t, c, 200, 4, getReq).failed.Load())

	for _, b := range backs {
		b.kill()
	}
	before := tr.Stats()
	var during load
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		l := drive(t, c, 50, 4, getReq)
		during.requests.Add(l.requests.Load())
		during.failed.Add(l.failed.Load())
	}
	after := tr.Stats()
	retries := after.Retries - before.Retries
	requests := after.Requests - before.Requests
	// RetryBudget defaults: 20% of requests, plus 10 a second over the 10 s
	// window.
	allowed := 0.2*float64(after.Requests) + 100
	t.Logf("outage: %v; %d retries for %d requests (%d denied by the budget; allowed %.0f)",
		&during, retries, requests, after.RetriesDenied-before.RetriesDenied, allowed)
	assert.LessOrEqual(t, float64(retries), allowed)
	assert.Positive(t, after.RetriesDenied-before.RetriesDenied, "the budget turned retries down")

	restarted := time.Now()
	for _, b := range backs {
		b.restart()
	}
	require.Eventually(t, func() bool {
		drive(t, c, 40, 4, getReq)
		for _, s := range bal.Stats() {
			if s.Ejected || s.Unhealthy {
				return false
			}
		}
		return true
	}, 10*time.Second, 10*time.Millisecond, "the fleet is back")
	served := make([]int64, len(backs))
	for i, b := range backs {
		served[i] = b.served.Load()
	}
	l := drive(t, c, 400, 8, getReq)
	t.Logf("back after %v: %v", time.Since(restarted).Round(time.Millisecond), l)
	assert.Zero(t, l.failed.Load())
	for i, b := range backs {
		assert.Greater(t, b.served.Load(), served[i], "%s serves again", b.name)
	}
}

// A backend that comes back and passes its active checks gets traffic
// within a second, though its ejection had 30 s to run.
func TestGrayRecoveryUnderActiveChecks(t *testing.T) {
	t.Parallel()
	backs, eps := startTBackends(t, 3)
	sick := backs[0]
	tr, bal := newTestTransport(t, lb.P2C{}, eps, readmeBalancer(lb.WithSlowStart(lb.SlowStart{Window: 500 * time.Millisecond})))
	hc, err := lb.StartHealthChecks(context.Background(), bal, lb.HealthCheck{Path: "/"})
	require.NoError(t, err)
	defer hc.Close()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	sick.kill()
	require.Eventually(t, func() bool {
		drive(t, c, 20, 2, getReq)
		s := statsOf(bal, sick.addr)
		return s.Ejected || s.Unhealthy
	}, 10*time.Second, time.Millisecond)
	s := statsOf(bal, sick.addr)
	require.True(t, s.Ejected || s.Unhealthy)

	sick.restart()
	back := time.Now()
	servedBefore := sick.served.Load()
	require.Eventually(t, func() bool {
		drive(t, c, 20, 2, getReq)
		return sick.served.Load() > servedBefore
	}, 10*time.Second, time.Millisecond, "traffic again")
	took := time.Since(back)
	t.Logf("traffic %v after the backend came back (ejection had %v left)", took.Round(time.Millisecond), time.Until(s.EjectedUntil).Round(time.Second))
	assert.Less(t, took, 3*time.Second, "readmitted by its checks, not by the end of its ejection")
}

// One hanging health probe delays no other backend's checks; and checks
// never take more than the cap out at once.
func TestGrayHealthChecks(t *testing.T) {
	t.Parallel()
	t.Run("a hanging probe", func(t *testing.T) {
		t.Parallel()
		backs, eps := startTBackends(t, 5)
		var checks [5]atomic.Int64
		for i, b := range backs {
			i, b := i, b
			release := make(chan struct{})
			t.Cleanup(func() { close(release) })
			b.mu.Lock()
			b.handler = func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/healthz" {
					checks[i].Add(1)
					if i == 0 {
						select { // hangs past the check's timeout
						case <-release:
						case <-r.Context().Done():
						}
						return
					}
				}
				_, _ = io.WriteString(w, "ok")
			}
			b.mu.Unlock()
		}
		bal, err := lb.NewBalancer(lb.RoundRobin{}, lb.WithEndpoints(eps))
		require.NoError(t, err)
		defer bal.Close()
		hc, err := lb.StartHealthChecks(context.Background(), bal, lb.HealthCheck{Interval: 50 * time.Millisecond, Timeout: 2 * time.Second})
		require.NoError(t, err)
		defer hc.Close()
		require.Eventually(t, func() bool {
			for i := 1; i < 5; i++ {
				if checks[i].Load() < 8 {
					return false
				}
			}
			return true
		}, 5*time.Second, 5*time.Millisecond, "the others are checked on their own schedule")
		assert.LessOrEqual(t, checks[0].Load(), int64(1), "the hanging one is still on its first check")
	})
	t.Run("the cap", func(t *testing.T) {
		t.Parallel()
		backs, eps := startTBackends(t, 5)
		for _, b := range backs {
			b.mode.Store(modeUnhealthy)
		}
		bal, err := lb.NewBalancer(lb.RoundRobin{}, lb.WithEndpoints(eps))
		require.NoError(t, err)
		defer bal.Close()
		hc, err := lb.StartHealthChecks(context.Background(), bal, lb.HealthCheck{Interval: 20 * time.Millisecond, UnhealthyThreshold: 1})
		require.NoError(t, err)
		defer hc.Close()
		down := func() int {
			n := 0
			for _, s := range bal.Stats() {
				if s.Unhealthy {
					n++
				}
			}
			return n
		}
		require.Eventually(t, func() bool { return down() == 2 }, 5*time.Second, 5*time.Millisecond)
		for i := 0; i < 20; i++ { // it stays at the cap: 50% of 5
			time.Sleep(10 * time.Millisecond) // sampling over time, not waiting for a condition
			require.LessOrEqual(t, down(), 2)
		}
	})
}

// A backend that fails every second call never fails 5 in a row, but its
// failure percentage gets it ejected.
func TestGrayHalfFailing(t *testing.T) {
	t.Parallel()
	backs, eps := startTBackends(t, 4)
	half := backs[0]
	var n atomic.Int64
	half.mu.Lock()
	half.handler = func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1)%2 == 0 {
			http.Error(w, "flaky", http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ok")
	}
	half.mu.Unlock()
	od := lb.OutlierDetection{Interval: 100 * time.Millisecond, FailurePercentageRequestVolume: 10}
	tr, bal := newTestTransport(t, lb.RoundRobin{}, eps, []lb.Option{lb.WithOutlierDetection(od)})
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	require.Eventually(t, func() bool {
		drive(t, c, 50, 4, getReq)
		return statsOf(bal, half.addr).Ejections > 0
	}, 10*time.Second, time.Millisecond)
	s := statsOf(bal, half.addr)
	assert.Less(t, s.Streak, int64(5), "it never failed 5 in a row")
	t.Logf("half-failing backend ejected after %d calls (%d failed)", s.Picks, s.Failures)
}
