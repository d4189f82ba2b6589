package main

import (
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// testScenario returns a validated scenario of n equal backends (8 slots,
// 10ms median) at about 40% of their capacity (Poisson), with one attempt
// per request (no retries).
func testScenario(t *testing.T, n int, mod func(*Scenario)) *Scenario {
	t.Helper()
	sc := &Scenario{
		Name:      "test",
		Seed:      7,
		Duration:  Duration(2 * time.Second),
		Load:      Load{Rate: 300 * float64(n)},
		Clients:   2,
		Transport: TransportConfig{MaxAttempts: 1},
		Keys:      Keys{Count: 10_000},
		Backends:  []BackendGroup{{Count: n, Median: Duration(10 * time.Millisecond), Sigma: 0.5, Slots: 8}},
	}
	if mod != nil {
		mod(sc)
	}
	require.NoError(t, sc.withDefaults())
	return sc
}

func TestWorkloadIsDeterministic(t *testing.T) {
	t.Parallel()
	for _, dist := range []string{"uniform", "zipf"} {
		t.Run(dist, func(t *testing.T) {
			t.Parallel()
			sc := testScenario(t, 3, func(sc *Scenario) { sc.Keys.Dist = dist })
			a, b := newWorkload(sc), newWorkload(sc)
			other := *sc
			other.Seed++
			c := newWorkload(&other)
			differ := 0
			for range 1000 {
				x, y, z := a.next(), b.next(), c.next()
				require.Equal(t, x, y, "same seed, same arrivals")
				if x != z {
					differ++
				}
			}
			assert.Equal(t, 1000, differ, "another seed gives other arrivals")
		})
	}
}

func TestWorkloadStatistics(t *testing.T) {
	t.Parallel()
	const n = 200_000
	sc := testScenario(t, 3, func(sc *Scenario) {
		sc.Load.Rate = 1000
		sc.Clients = 4
		sc.Keys = Keys{Count: 1000, Dist: "zipf", S: 1.5}
	})
	w := newWorkload(sc)
	var last arrival
	keys := make([]int, sc.Keys.Count)
	clients := make([]int, sc.Clients)
	var sumZ, sumZ2 float64
	for range n {
		last = w.next()
		keys[last.key]++
		clients[last.client]++
		sumZ += last.z
		sumZ2 += last.z * last.z
	}
	// Poisson at 1000/s: n arrivals take n ms, within 1% (sd is 0.22%).
	assert.InEpsilon(t, float64(n)*1e6, float64(last.at), 0.01)
	for c, k := range clients {
		assert.InEpsilon(t, n/4, k, 0.02, "client %d", c)
	}
	// z is standard normal.
	assert.InDelta(t, 0, sumZ/n, 0.01)
	assert.InDelta(t, 1, sumZ2/n, 0.02)
	// Zipf(1.5): P(k) ∝ (k+1)^-1.5 over 1000 keys.
	var h float64
	for k := 1; k <= sc.Keys.Count; k++ {
		h += math.Pow(float64(k), -1.5)
	}
	for _, k := range []int{0, 1, 9} {
		want := math.Pow(float64(k+1), -1.5) / h
		assert.InEpsilon(t, want*n, keys[k], 0.05, "key %d", k)
	}
}

// Paced releases are exactly 1/rate apart; a closed-loop worker's
// requests come from a stream of its own.
func TestPacedAndWorkerLoads(t *testing.T) {
	t.Parallel()
	sc := testScenario(t, 3, func(sc *Scenario) { sc.Load.Arrivals, sc.Load.Rate = arrivalsPaced, 250 })
	w := newWorkload(sc)
	for i := 1; i <= 1000; i++ {
		assert.Equal(t, time.Duration(i)*4*time.Millisecond, w.next().at)
	}
	a, b := newWorkerLoad(sc, 0), newWorkerLoad(sc, 1)
	ka, za := a.request()
	kb, zb := b.request()
	assert.False(t, ka == kb && za == zb, "two workers, two streams")
	again := newWorkerLoad(sc, 0)
	k, z := again.request()
	assert.Equal(t, ka, k)
	assert.Equal(t, za, z, "a worker's stream repeats from the seed")
}

func TestServiceTime(t *testing.T) {
	t.Parallel()
	tests := []struct {
		median        time.Duration
		factor, sigma float64
		z             float64
		want          time.Duration
	}{
		{10 * time.Millisecond, 1, 0.5, 0, 10 * time.Millisecond},
		{10 * time.Millisecond, 5, 0.5, 0, 50 * time.Millisecond},
		{10 * time.Millisecond, 1, 1, math.Ln2, 20 * time.Millisecond},
		{10 * time.Millisecond, 1, 0, 3, 10 * time.Millisecond},
		{time.Microsecond, 1, 1, -10, time.Microsecond}, // at least 1µs
	}
	for _, tt := range tests {
		assert.InDelta(t, float64(tt.want), float64(serviceTime(tt.median, tt.factor, tt.sigma, tt.z)), 1, "%+v", tt)
	}
}

func TestIdealMoved(t *testing.T) {
	t.Parallel()
	q := 1.0 / 4
	tests := []struct {
		name string
		a, b []float64
		want float64
	}{
		{"same", []float64{0.5, 0.5}, []float64{0.5, 0.5}, 0},
		{"add one to three", []float64{1.0 / 3, 1.0 / 3, 1.0 / 3, 0}, []float64{q, q, q, q}, 0.25},
		{"remove one of four", []float64{q, q, q, q}, []float64{1.0 / 3, 0, 1.0 / 3, 1.0 / 3}, 0.25},
		{"weights", []float64{0.5, 0.5, 0}, []float64{0.25, 0.25, 0.5}, 0.5},
		{"swap", []float64{1, 0}, []float64{0, 1}, 1},
	}
	for _, tt := range tests {
		assert.InDelta(t, tt.want, idealMoved(tt.a, tt.b), 1e-12, tt.name)
	}
}
