package lb_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-lb/lb"
)

// Gray failures: backends that fail in ways harder than a refused port,
// each tested on loopback with the README's configuration (P2C, outlier
// detection with its defaults, an http.Client timeout), scaled to test
// time where the README's numbers are long.

// readmeBalancer returns the README's Balancer options.
func readmeBalancer(extra ...lb.Option) []lb.Option {
	return append([]lb.Option{lb.WithOutlierDetection(lb.OutlierDetection{})}, extra...)
}

// load is the outcome of a run of requests.
type load struct {
	requests, failed, status5xx atomic.Int64
	mu                          sync.Mutex
	errs                        []error
}

func (l *load) String() string {
	return fmt.Sprintf("%d requests, %d failed, %d 5xx", l.requests.Load(), l.failed.Load(), l.status5xx.Load())
}

// drive sends n requests from conc goroutines, each made by mk.
func drive(t *testing.T, c *http.Client, n, conc int, mk func(i int) *http.Request) *load {
	t.Helper()
	l := &load{}
	var next atomic.Int64
	var wg sync.WaitGroup
	for g := 0; g < conc; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				l.requests.Add(1)
				resp, err := c.Do(mk(i))
				if err != nil {
					l.failed.Add(1)
					l.mu.Lock()
					if len(l.errs) < 5 {
						l.errs = append(l.errs, err)
					}
					l.mu.Unlock()
					continue
				}
				if _, err := io.Copy(io.Discard, resp.Body); err != nil {
					l.failed.Add(1)
				}
				resp.Body.Close()
				if resp.StatusCode >= 500 {
					l.status5xx.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return l
}

func getReq(int) *http.Request {
	r, _ := http.NewRequest(http.MethodGet, "http://svc.internal/", nil)
	return r
}

func postReq(i int) *http.Request {
	r, _ := http.NewRequest(http.MethodPost, "http://svc.internal/orders", strings.NewReader(fmt.Sprint("order-", i)))
	return r
}

// A backend that answers 503 at once draws no traffic by looking fast
// and idle: callers see at most a few of its answers (GETs are retried
// elsewhere, POSTs go to it rarely), and it is ejected.
func TestGrayFastErrors(t *testing.T) {
	t.Parallel()
	for _, method := range []string{"GET", "POST"} {
		t.Run(method, func(t *testing.T) {
			t.Parallel()
			backs, eps := startTBackends(t, 5)
			bad := backs[0]
			bad.mode.Store(mode503)
			tr, bal := newTestTransport(t, lb.P2C{}, eps, readmeBalancer())
			c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
			mk := getReq
			if method == "POST" {
				mk = postReq
			}
			l := drive(t, c, 2000, 16, mk)
			s := statsOf(bal, bad.addr)
			var attempts uint64
			for _, st := range bal.Stats() {
				attempts += st.Picks
			}
			share := float64(s.Picks) / float64(attempts)
			t.Logf("%s: %v; the 503 backend had %.1f%% of %d attempts, %d ejections", method, l, 100*share, attempts, s.Ejections)
			assert.Zero(t, l.failed.Load())
			assert.LessOrEqual(t, l.status5xx.Load(), int64(200), "at most 10%% of requests see a 503")
			assert.Less(t, share, 0.10, "the failing backend draws little traffic")
			assert.Positive(t, s.Ejections, "and is ejected")
		})
	}
}

// Retry-After on a 503 keeps picks off the backend for as long as it asks.
func TestGrayRetryAfter(t *testing.T) {
	t.Parallel()
	backs, eps := startTBackends(t, 3)
	busy := backs[0]
	var asked atomic.Int64
	busy.mu.Lock()
	busy.handler = func(w http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		w.Header().Set("Retry-After", "1")
		http.Error(w, "busy", http.StatusServiceUnavailable)
	}
	busy.mu.Unlock()
	tr, _ := newTestTransport(t, lb.RoundRobin{}, eps, nil)
	c := &http.Client{Transport: tr}
	start := time.Now()
	l := drive(t, c, 300, 1, getReq) // one at a time: no request races the first answer
	secs := int64(time.Since(start)/time.Second) + 1
	assert.Zero(t, l.failed.Load())
	assert.Zero(t, l.status5xx.Load(), "retried elsewhere")
	assert.LessOrEqual(t, asked.Load(), secs, "held off for a second after each Retry-After (%d asked in %d s)", asked.Load(), secs)
}

// A backend that accepts connections and never answers: P2C sees its calls
// pile up and avoids it, so at most 3% of requests fail; with a per-try
// timeout or hedging none do, and the blackhole is charged and ejected.
func TestGrayBlackhole(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		opts    []lb.TransportOption
		maxFail float64
		charged bool
	}{
		{"README configuration", nil, 0.03, false},
		// Generous bounds: a loaded machine's healthy answers must not be
		// cut short by them.
		{"per-try timeout", []lb.TransportOption{lb.WithPerTryTimeout(time.Second)}, 0, true},
		{"hedging", []lb.TransportOption{lb.WithHedging(lb.Hedging{Delay: 200 * time.Millisecond})}, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			backs, eps := startTBackends(t, 5)
			hole := backs[0]
			hole.hold()
			tr, bal := newTestTransport(t, lb.P2C{}, eps, readmeBalancer(), tt.opts...)
			// The README's 10 s client timeout, scaled down for the test.
			c := &http.Client{Transport: tr, Timeout: 3 * time.Second}
			l := drive(t, c, 1500, 16, getReq)
			s := statsOf(bal, hole.addr)
			ts := tr.Stats()
			t.Logf("%s: %v; blackhole: %d picks, %d failures, %d ejections; %d retries, %d hedges (%d won), %d per-try timeouts",
				tt.name, l, s.Picks, s.Failures, s.Ejections, ts.Retries, ts.Hedges, ts.HedgeWins, ts.PerTryTimeouts)
			assert.LessOrEqual(t, float64(l.failed.Load()), tt.maxFail*1500, "%v: %v", l, l.errs)
			if tt.charged {
				assert.Positive(t, s.Failures, "the blackhole is charged")
				assert.Positive(t, s.Ejections, "and ejected")
			}
			for _, b := range backs[1:] {
				assert.Zero(t, statsOf(bal, b.addr).Failures, "healthy backends are not charged")
			}
			hole.release()
		})
	}
}

// A body that stalls after its headers is the backend's failure (with a
// body idle timeout): the read fails with ErrBodyStalled and the backend
// is ejected. Without one, a stall the caller's deadline ends is no
// success either.
func TestGrayStallAfterHeaders(t *testing.T) {
	t.Parallel()
	stalling := func(b *tbackend) chan struct{} {
		release := make(chan struct{})
		b.mu.Lock()
		b.handler = func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "100")
			_, _ = io.WriteString(w, "partial")
			w.(http.Flusher).Flush()
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
		b.mu.Unlock()
		return release
	}
	t.Run("body idle timeout", func(t *testing.T) {
		t.Parallel()
		b := startTBackend(t, "a")
		defer close(stalling(b))
		od := lb.OutlierDetection{ConsecutiveFailures: 3}
		tr, bal := newTestTransport(t, lb.RoundRobin{}, []lb.Endpoint{{Addr: b.addr}}, []lb.Option{lb.WithOutlierDetection(od)},
			lb.WithBodyIdleTimeout(100*time.Millisecond))
		for i := 0; i < 3; i++ {
			resp, err := tr.RoundTrip(getReq(i))
			require.NoError(t, err)
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
			require.ErrorIs(t, err, lb.ErrBodyStalled)
		}
		s := bal.Stats()[0]
		assert.EqualValues(t, 3, s.Failures)
		assert.Zero(t, s.Successes)
		assert.EqualValues(t, 1, s.Ejections)
		assert.EqualValues(t, 3, tr.Stats().BodyStalls)
	})
	t.Run("a slow reader is not a stall", func(t *testing.T) {
		t.Parallel()
		b := startTBackend(t, "a")
		b.mu.Lock()
		b.handler = func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, strings.Repeat("x", 1<<20)) }
		b.mu.Unlock()
		// The idle timeout is short next to the reader's pauses, long next
		// to a Read of bytes the backend has sent (a loaded machine's
		// scheduling included).
		tr, bal := newTestTransport(t, lb.RoundRobin{}, []lb.Endpoint{{Addr: b.addr}}, nil, lb.WithBodyIdleTimeout(time.Second))
		resp, err := tr.RoundTrip(getReq(0))
		require.NoError(t, err)
		buf := make([]byte, 1024)
		for i := 0; i < 3; i++ {
			_, err := io.ReadFull(resp.Body, buf)
			require.NoError(t, err)
			time.Sleep(1500 * time.Millisecond) // the caller is slow, not the backend (not waiting for a condition)
		}
		_, err = io.Copy(io.Discard, resp.Body)
		require.NoError(t, err)
		resp.Body.Close()
		assert.EqualValues(t, 1, bal.Stats()[0].Successes)
	})
	t.Run("no idle timeout: the caller's deadline is no success", func(t *testing.T) {
		t.Parallel()
		b := startTBackend(t, "a")
		defer close(stalling(b))
		tr, bal := newTestTransport(t, lb.RoundRobin{}, []lb.Endpoint{{Addr: b.addr}}, nil)
		c := &http.Client{Transport: tr, Timeout: 200 * time.Millisecond}
		resp, err := c.Get("http://svc.internal/")
		require.NoError(t, err)
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Error(t, err)
		s := bal.Stats()[0]
		assert.Zero(t, s.Successes, "a stall is never a success")
		assert.Zero(t, s.Failures, "nor, without an idle timeout, the backend's failure")
	})
}

// A connection reset in the middle of the body is the backend's failure.
func TestGrayResetMidBody(t *testing.T) {
	t.Parallel()
	b := startTBackend(t, "a")
	b.mu.Lock()
	b.handler = func(w http.ResponseWriter, r *http.Request) {
		conn, buf, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		_, _ = buf.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\npartial body")
		_ = buf.Flush()
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // close with a reset
		}
		conn.Close()
	}
	b.mu.Unlock()
	od := lb.OutlierDetection{ConsecutiveFailures: 3}
	tr, bal := newTestTransport(t, lb.RoundRobin{}, []lb.Endpoint{{Addr: b.addr}}, []lb.Option{lb.WithOutlierDetection(od)})
	for i := 0; i < 3; i++ {
		resp, err := tr.RoundTrip(getReq(i))
		require.NoError(t, err)
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Error(t, err)
	}
	s := bal.Stats()[0]
	assert.EqualValues(t, 3, s.Failures)
	assert.EqualValues(t, 1, s.Ejections)
}

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

// http.Client.Timeout is the caller's ending: never retried, never charged
// to a backend, and the error still says it was a deadline.
func TestGrayClientTimeout(t *testing.T) {
	t.Parallel()
	backs, eps := startTBackends(t, 3)
	for _, b := range backs {
		b.hold()
	}
	od := lb.OutlierDetection{ConsecutiveFailures: 1}
	tr, bal := newTestTransport(t, lb.RoundRobin{}, eps, []lb.Option{lb.WithOutlierDetection(od)})
	c := &http.Client{Transport: tr, Timeout: 100 * time.Millisecond}
	for i := 0; i < 12; i++ {
		_, err := c.Get("http://svc.internal/")
		require.Error(t, err)
		assert.ErrorIs(t, err, context.DeadlineExceeded, "net/http keeps this much of the chain")
		var ue interface{ Timeout() bool }
		require.True(t, errors.As(err, &ue) && ue.Timeout())
	}
	for _, s := range bal.Stats() {
		assert.Zero(t, s.Failures, "%s is not charged for the caller's timeout", s.Endpoint.Addr)
		assert.False(t, s.Ejected)
	}
	assert.Zero(t, tr.Stats().Retries, "a timed-out request is not retried")
	// Without http.Client (a context deadline), lb's own error is kept.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://svc.internal/", nil)
	_, err := tr.RoundTrip(req)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.ErrorIs(t, err, lb.ErrMaybeExecuted)
	for _, b := range backs {
		b.release()
	}
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

// Hedging: a slow backend's calls are answered by another backend; the
// losing attempt is cancelled and charged to nobody.
func TestGrayHedging(t *testing.T) {
	t.Parallel()
	backs, eps := startTBackends(t, 2)
	slow := backs[0]
	slow.mu.Lock()
	slow.handler = func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(2 * time.Second):
		case <-r.Context().Done():
			return
		}
		_, _ = io.WriteString(w, "slow")
	}
	slow.mu.Unlock()
	tr, bal := newTestTransport(t, lb.RoundRobin{Stripes: 1}, eps, nil, lb.WithHedging(lb.Hedging{Delay: 100 * time.Millisecond}))
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	var slowest time.Duration
	for i := 0; i < 10; i++ {
		start := time.Now()
		code, _, err := trGet(t, c, "http://svc.internal/")
		require.NoError(t, err)
		require.Equal(t, 200, code)
		slowest = max(slowest, time.Since(start))
	}
	ts := tr.Stats()
	t.Logf("hedging: 10 calls, the slowest %v; %d hedges, %d won", slowest.Round(time.Millisecond), ts.Hedges, ts.HedgeWins)
	assert.Less(t, slowest, 2*time.Second, "no call waited for the slow backend (it answers after 2 s)")
	assert.Positive(t, ts.HedgeWins, "the calls that started on the slow backend were answered by a hedge")
	// (A loaded machine may hedge a call of the fast backend too; the
	// slow one never answers first.)
	require.Eventually(t, func() bool { return statsOf(bal, slow.addr).InFlight == 0 }, 5*time.Second, time.Millisecond)
	s := statsOf(bal, slow.addr)
	assert.Zero(t, s.Failures, "the losing attempts are not charged")
	assert.Zero(t, s.Successes)

	// A POST is never hedged.
	resp, err := c.Post("http://svc.internal/", "text/plain", strings.NewReader("x"))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, ts.Hedges, tr.Stats().Hedges)
}

// A per-try timeout retries an idempotent request elsewhere, and fails a
// POST with an error that says it may have executed.
func TestGrayPerTryTimeout(t *testing.T) {
	t.Parallel()
	backs, eps := startTBackends(t, 2)
	hole := backs[0]
	hole.hold()
	defer hole.release()
	// A bound a loaded machine's healthy answers stay under.
	tr, bal := newTestTransport(t, lb.RoundRobin{Stripes: 1}, eps, nil, lb.WithPerTryTimeout(500*time.Millisecond))
	c := &http.Client{Transport: tr}
	var postErrs int
	for i := 0; i < 4; i++ {
		resp, err := c.Get("http://svc.internal/")
		require.NoError(t, err)
		resp.Body.Close()
		resp, err = c.Post("http://svc.internal/", "text/plain", strings.NewReader("x"))
		if err != nil {
			postErrs++
			assert.ErrorIs(t, err, lb.ErrPerTryTimeout)
			assert.ErrorIs(t, err, lb.ErrMaybeExecuted)
			continue
		}
		resp.Body.Close()
	}
	assert.Positive(t, postErrs)
	assert.Positive(t, statsOf(bal, hole.addr).Failures, "the hole is charged")
	assert.Positive(t, tr.Stats().PerTryTimeouts)
}

// The attempt observer sees every attempt, with whose failure it was.
func TestAttemptObserver(t *testing.T) {
	t.Parallel()
	backs, eps := startTBackends(t, 2)
	backs[0].mode.Store(mode503)
	var mu sync.Mutex
	var seen []lb.AttemptInfo
	tr, _ := newTestTransport(t, lb.RoundRobin{Stripes: 1}, eps, nil, lb.WithAttemptObserver(func(a lb.AttemptInfo) {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, a)
	}))
	c := &http.Client{Transport: tr}
	for i := 0; i < 4; i++ {
		code, _, err := trGet(t, c, "http://svc.internal/")
		require.NoError(t, err)
		require.Equal(t, 200, code)
	}
	mu.Lock()
	defer mu.Unlock()
	var failures, ok int
	for _, a := range seen {
		require.NotNil(t, a.Request)
		switch {
		case a.Backend == backs[0].addr:
			assert.Equal(t, 503, a.StatusCode)
			assert.True(t, a.Failure)
			assert.Equal(t, 1, a.Attempt)
			failures++
		default:
			assert.Equal(t, 200, a.StatusCode)
			assert.False(t, a.Failure)
			ok++
		}
	}
	assert.Equal(t, 4, ok)
	assert.Positive(t, failures, "the requests that started on the 503 backend")
	assert.Len(t, seen, ok+failures)
}
