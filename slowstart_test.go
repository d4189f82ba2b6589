package lb

import (
	"errors"
	"math"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSlowStartShare(t *testing.T) {
	t.Parallel()
	ss, err := SlowStart{Window: 10 * time.Second}.withDefaults()
	require.NoError(t, err)
	for _, tt := range []struct {
		at   time.Duration
		want float64
	}{{0, 0.1}, {500 * time.Millisecond, 0.1}, {time.Second, 0.1}, {2 * time.Second, 0.2}, {5 * time.Second, 0.5}, {9 * time.Second, 0.9}} {
		assert.InDelta(t, tt.want, float64(ss.rampShare(tt.at))/shareOne, 0.001, "at %v", tt.at)
	}
	assert.Zero(t, ss.rampShare(10*time.Second), "over")
	ss.Aggression = 2
	assert.InDelta(t, math.Sqrt(0.25), float64(ss.rampShare(2500*time.Millisecond))/shareOne, 0.001)
	for _, bad := range []SlowStart{{}, {Window: -1}, {Window: 2 * time.Hour}, {Window: time.Second, Aggression: 50}, {Window: time.Second, MinWeight: 2}, {Window: time.Second, Aggression: math.NaN()}} {
		_, err := bad.withDefaults()
		assert.ErrorIs(t, err, ErrInvalidConfig, "%+v", bad)
	}
	_, err = NewBalancer(RoundRobin{}, WithSlowStart(SlowStart{}))
	assert.ErrorIs(t, err, ErrInvalidConfig)
}

// A backend that joins ramps from MinWeight to a full share over the
// window, on the Balancer's clock, under every kind of strategy; one that
// is readmitted or marked healthy again ramps too.
func TestSlowStartRamps(t *testing.T) {
	t.Parallel()
	for _, b := range []Builder{RoundRobin{}, Random{}, P2C{}, WeightedRoundRobin{}} {
		clk := &fakeClock{now: time.Unix(100, 0)}
		eps := Addrs("a:1", "b:1", "c:1", "d:1")
		bal, err := NewBalancer(b, WithClock(clk), WithEndpoints(eps), WithSlowStart(SlowStart{Window: 10 * time.Second}),
			WithOutlierDetection(OutlierDetection{ConsecutiveFailures: 1, BaseEjectionTime: time.Second, MaxEjectionPercent: 100}))
		require.NoError(t, err)
		for _, be := range bal.Backends() {
			assert.Equal(t, 1.0, be.Stats().Share, "the first set starts at full share")
		}
		require.NoError(t, bal.Update(append(eps, Endpoint{Addr: "new:1"})))
		share := func() float64 {
			n := 0
			for i := 0; i < 20000; i++ {
				p, err := bal.Pick("")
				require.NoError(t, err)
				if p.Addr() == "new:1" {
					n++
				}
				p.Done(nil, time.Millisecond)
			}
			return float64(n) / 20000
		}
		at0 := share()
		clk.advance(5 * time.Second)
		at5 := share()
		clk.advance(5 * time.Second)
		at10 := share()
		t.Logf("%T: the new backend's share of picks at 0s %.3f, 5s %.3f, 10s %.3f", b, at0, at5, at10)
		assert.Less(t, at0, 0.06, "%T: starts small (10%% of a fifth)", b)
		assert.Greater(t, at5, at0)
		assert.InDelta(t, 0.2, at10, 0.04, "%T: a full fifth once the ramp is over", b)
		assert.Equal(t, 1.0, bal.Backends()[4].Stats().Share)

		// Readmitted after an ejection: ramps again.
		victim := bal.Backends()[0]
		bal.newPick(victim).Done(errors.New("x"), 0)
		require.True(t, victim.Ejected())
		clk.advance(time.Second)
		clk.advance(0)
		assert.False(t, victim.Ejected())
		assert.InDelta(t, 0.1, victim.Stats().Share, 0.02)
		require.NoError(t, bal.SetHealthy("b:1", false))
		require.NoError(t, bal.SetHealthy("b:1", true))
		assert.InDelta(t, 0.1, bal.Backends()[1].Stats().Share, 0.02, "marked up again: ramps")
		bal.Close()
	}
}

// On a ring, a ramping backend takes its keys by their hash: each key has
// one place at a time, and as the share grows keys only move onto the new
// backend.
func TestSlowStartHashKeys(t *testing.T) {
	t.Parallel()
	clk := &fakeClock{now: time.Unix(100, 0)}
	eps := benchEndpoints(10, false)
	bal, err := NewBalancer(Ring{}, WithClock(clk), WithEndpoints(eps), WithSlowStart(SlowStart{Window: 10 * time.Second, MinWeight: 0.01}))
	require.NoError(t, err)
	defer bal.Close()
	require.NoError(t, bal.Update(append(eps, Endpoint{Addr: "10.9.9.9:8080"})))
	clk.advance(0)
	place := func() map[string]string {
		m := map[string]string{}
		for i := 0; i < 5000; i++ {
			k := strconv.Itoa(i)
			p, _ := bal.Pick(k)
			again, _ := bal.Pick(k)
			require.Equal(t, p.Addr(), again.Addr(), "one place per key")
			m[k] = p.Addr()
			p.Cancel()
			again.Cancel()
		}
		return m
	}
	var last map[string]string
	counts := []int{}
	for step := 0; step <= 10; step++ {
		m := place()
		n := 0
		for k, a := range m {
			if a == "10.9.9.9:8080" {
				n++
			}
			if last != nil && last[k] != a {
				assert.Equal(t, "10.9.9.9:8080", a, "key %s moved from %s to %s, not onto the new backend", k, last[k], a)
			}
		}
		counts = append(counts, n)
		last = m
		clk.advance(time.Second)
	}
	t.Logf("keys on the new backend, second by second: %v", counts)
	assert.Less(t, counts[1], counts[5])
	assert.Less(t, counts[5], counts[10])
}

func TestRetryAfterParsing(t *testing.T) {
	t.Parallel()
	bal, err := NewBalancer(RoundRobin{}, WithEndpoints(Addrs("a:1", "b:1")))
	require.NoError(t, err)
	defer bal.Close()
	tr, err := NewTransport(bal, WithRetryAfter(5*time.Second))
	require.NoError(t, err)
	a := bal.Backends()[0]
	for _, tt := range []struct {
		code int
		hdr  string
		held bool
	}{
		{503, "2", true}, {429, "1", true}, {503, "0", false}, {503, "-3", false}, {503, "soon", false},
		{500, "2", false}, {503, "", false}, {503, time.Now().Add(3 * time.Second).UTC().Format(http.TimeFormat), true},
		{503, "999999999999", true}, // capped at 5 s
	} {
		resp := &http.Response{StatusCode: tt.code, Header: http.Header{}}
		if tt.hdr != "" {
			resp.Header.Set("Retry-After", tt.hdr)
		}
		tr.pol.HoldOff(Pick{Backend: a, bal: bal}, resp)
		bal.mu.Lock()
		held := a.ctl.holding
		if t := bal.holds[a]; t != nil {
			t.Stop()
			delete(bal.holds, a)
		}
		a.ctl.holding = false
		a.setOut()
		bal.mu.Unlock()
		assert.Equal(t, tt.held, held, "%d Retry-After %q", tt.code, tt.hdr)
	}
}

func TestHedgerPercentile(t *testing.T) {
	t.Parallel()
	h, err := newHedger(Hedging{})
	require.NoError(t, err)
	assert.Zero(t, h.delay(), "no hedge before enough samples")
	for i := 0; i < 1000; i++ {
		h.observe(time.Duration(1+i%100) * time.Millisecond) // uniform 1..100 ms
	}
	d := h.delay()
	assert.InDelta(t, float64(95*time.Millisecond), float64(d), float64(12*time.Millisecond), "about the 95th percentile: %v", d)
	for i := 0; i < latencyBuckets-1; i++ {
		assert.Less(t, bucketTop(i), bucketTop(i+1))
		assert.Equal(t, i+1, latencyBucket(bucketTop(i)), "bucket edges")
	}
	for _, bad := range []Hedging{{Delay: -1}, {Percentile: 0.1}, {Percentile: math.NaN()}, {MaxHedges: 11}, {MinDelay: -1}} {
		_, err := newHedger(bad)
		assert.ErrorIs(t, err, ErrInvalidConfig, "%+v", bad)
	}
}

// The interval's rules: success rate relative to the pool, failure
// percentage, latency, each with its volume and host minimums.
func TestIntervalOutliers(t *testing.T) {
	t.Parallel()
	clk := &fakeClock{now: time.Unix(100, 0)}
	build := func(od OutlierDetection) *Balancer {
		bal, err := NewBalancer(RoundRobin{}, WithClock(clk), WithEndpoints(benchEndpoints(6, false)), WithOutlierDetection(od))
		require.NoError(t, err)
		t.Cleanup(func() { bal.Close() })
		return bal
	}
	feed := func(bal *Balancer, i, ok, bad int, lat time.Duration) {
		be := bal.Backends()[i]
		for j := 0; j < ok+bad; j++ {
			var err error
			if j%(ok+bad) < bad { // spread: never many in a row
				err = errors.New("x")
			}
			if bad > 0 && ok > 0 {
				err = nil
				if j%2 == 0 && j/2 < bad {
					err = errors.New("x")
				}
			}
			bal.newPick(be).Done(err, lat)
		}
	}
	od := OutlierDetection{ConsecutiveFailures: 1000, Interval: time.Second, FailurePercentageThreshold: -1}
	bal := build(od)
	for i := 0; i < 6; i++ {
		feed(bal, i, 200, 0, time.Millisecond)
	}
	feed(bal, 2, 100, 100, time.Millisecond) // 50% failures: an outlier
	clk.advance(time.Second)
	clk.advance(0)
	for i, be := range bal.Backends() {
		assert.Equal(t, i == 2, be.Ejected(), "success rate: backend %d", i)
	}

	od = OutlierDetection{ConsecutiveFailures: 1000, Interval: time.Second, SuccessRateStdevFactor: -1}
	bal = build(od)
	feed(bal, 0, 10, 10, time.Millisecond) // 50%, volume 20: ejected
	feed(bal, 1, 30, 0, time.Millisecond)
	feed(bal, 2, 5, 5, time.Millisecond) // 50% but volume 10: too few
	clk.advance(time.Second)
	assert.True(t, bal.Backends()[0].Ejected(), "failure percentage")
	assert.False(t, bal.Backends()[2].Ejected(), "below the request volume")

	od = OutlierDetection{ConsecutiveFailures: 1000, Interval: time.Second, SuccessRateStdevFactor: -1, FailurePercentageThreshold: -1, LatencyFactor: 5}
	bal = build(od)
	for i := 0; i < 6; i++ {
		feed(bal, i, 10, 0, time.Millisecond)
	}
	feed(bal, 4, 10, 0, 100*time.Millisecond)
	clk.advance(time.Second)
	for i, be := range bal.Backends() {
		assert.Equal(t, i == 4, be.Ejected(), "latency: backend %d", i)
	}
	for _, bad := range []OutlierDetection{{LatencyFactor: 0.5}, {SuccessRateStdevFactor: math.Inf(1)}, {FailurePercentageThreshold: 101}, {Interval: time.Microsecond}} {
		_, err := bad.withDefaults()
		assert.ErrorIs(t, err, ErrInvalidConfig, "%+v", bad)
	}
}
