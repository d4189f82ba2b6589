package main

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func run1(t *testing.T, sc *Scenario, strategy string) *Result {
	t.Helper()
	r, err := Run(sc, strategy)
	require.NoError(t, err)
	return r
}

func msd(n int) Duration { return Duration(time.Duration(n) * time.Millisecond) }

// busyScenario has every kind of event, lb's outlier detection, slow
// start and health checks, retries, hedging, a per-try timeout and hot
// keys: the determinism test runs it twice.
func busyScenario(t *testing.T, seed uint64) *Scenario {
	return testScenario(t, 8, func(sc *Scenario) {
		sc.Seed = seed
		sc.Transport = TransportConfig{PerTryTimeout: msd(200), BodyIdleTimeout: msd(50), Hedging: &HedgingConfig{Percentile: 0.9}}
		sc.Load.Timeout = msd(1000)
		sc.Keys = Keys{Count: 5000, Dist: "zipf", S: 1.2}
		sc.OutlierDetection = &OutlierConfig{BaseEjectionTime: msd(300), Interval: msd(200)}
		sc.SlowStart = &SlowStartConfig{Window: msd(200)}
		sc.HealthCheck = &HealthConfig{Interval: msd(100), Timeout: msd(150)}
		sc.Backends = append(sc.Backends, BackendGroup{Median: msd(10), Slots: 8, Absent: true, MaxQueue: 4})
		sc.Backends[0].MaxQueue = 20
		sc.Backends[0].given.set("max_queue")
		sc.Backends[1].given.set("max_queue")
		sc.Events = []Event{
			{At: msd(200), Kind: evSlow, Backend: "b01", Factor: 5},
			{At: msd(300), Kind: evFail, Backend: "b02", ErrorRate: 0.5, RetryAfter: "1"},
			{At: msd(400), Kind: evFail, Backend: "b05", Mode: modeBlackhole},
			{At: msd(500), Kind: evFail, Backend: "b06", Mode: modeStall},
			{At: msd(600), Kind: evAdd, Backend: "b08"},
			{At: msd(800), Kind: evRestart, Backend: "b03", Down: msd(300)},
			{At: msd(900), Kind: evFlap, Backend: "b07", Down: msd(50), Up: msd(100), Until: msd(1500)},
			{At: msd(1200), Kind: evRemove, Backend: "b04"},
			{At: msd(1400), Kind: evRecover, Backend: "b02"},
		}
	})
}

// Every strategy is repeated exactly from its seed: the simulator's own
// draws, lb's pickers (their Rand), and lb's timers and health checks on
// the simulated Clock, run as coroutines one at a time.
func TestStrategiesAreDeterministic(t *testing.T) {
	t.Parallel()
	for _, name := range strategyNames {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			a := run1(t, busyScenario(t, 3), name)
			b := run1(t, busyScenario(t, 3), name)
			c := run1(t, busyScenario(t, 4), name)
			a.Wall, b.Wall = 0, 0
			require.NotEmpty(t, a.Moves)
			assert.Positive(t, a.Retries, "the scenario makes failures")
			assert.Positive(t, a.Ejections)
			assert.Positive(t, a.Hedges)
			if !hashes(name) {
				// Keys moved are NaN (not measured) for the strategies
				// that do not place keys, and NaN equals nothing.
				require.Equal(t, len(a.Moves), len(b.Moves))
				a.Moves, b.Moves = nil, nil
			}
			assert.Equal(t, a, b, "same seed, same result")
			assert.NotEqual(t, a.lat, c.lat, "another seed, other latencies")
			assert.NotEqual(t, a.Picks, c.Picks)
		})
	}
}

func TestAccountingAddsUp(t *testing.T) {
	t.Parallel()
	for _, name := range strategyNames {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			r := run1(t, busyScenario(t, 5), name)
			assert.InEpsilon(t, 300*8*2, r.Requests, 0.05)
			assert.Equal(t, r.Requests, int64(r.Successes())+r.Failed())
			assert.Zero(t, r.Unfinished, "every request ends within its deadline")
			var picks, overTime uint64
			for i, p := range r.Picks {
				picks += p
				for _, n := range r.PicksOver[i] {
					overTime += n
				}
			}
			assert.Equal(t, uint64(r.Attempts), picks)
			assert.Equal(t, picks, overTime)
			assert.LessOrEqual(t, r.Attempts, r.Requests+r.Retries+r.Hedges, "each attempt is a first one, a retry or a hedge")
			assert.LessOrEqual(t, r.HedgeWins, r.Hedges)
			assert.Positive(t, r.BodyFailures, "b06 stalls")
			assert.Positive(t, r.BodyStalls, "and its bodies are ended by the idle timeout")
			assert.Positive(t, r.PerTryTimeouts, "b05 blackholes")
			assert.LessOrEqual(t, r.P50, r.P99)
			assert.LessOrEqual(t, r.P99, r.P999)
			labels := make([]string, len(r.Moves))
			for i, m := range r.Moves {
				labels[i] = m.Label
			}
			assert.Equal(t, "add b08,remove b04", strings.Join(labels, ","))
			if !hashes(name) {
				assert.True(t, math.IsNaN(r.MeanMoved()))
			}
		})
	}
}

// Little's law: the mean number of calls at the backends is the arrival
// rate times the mean time a call spends there.
func TestLoadFollowsLittlesLaw(t *testing.T) {
	t.Parallel()
	sc := testScenario(t, 4, nil)
	r := run1(t, sc, "round-robin")
	var inSystem float64
	for _, v := range r.meanInflight {
		inSystem += v
	}
	rate := float64(r.Requests) / sc.Duration.D().Seconds()
	assert.InEpsilon(t, rate*r.Mean.Seconds(), inSystem, 0.05)
	// The samples average to the same.
	var sampled float64
	for _, row := range r.Load {
		for _, v := range row {
			sampled += v
		}
	}
	assert.InEpsilon(t, inSystem, sampled/float64(len(r.Load[0])), 0.05)
}

func TestServiceWithoutQueueing(t *testing.T) {
	t.Parallel()
	sc := testScenario(t, 1, func(sc *Scenario) {
		sc.Load.Rate = 10
		sc.Duration = Duration(20 * time.Second)
		sc.Backends[0].Sigma = 1e-9
		sc.Backends[0].Slots = 1
	})
	r := run1(t, sc, "round-robin")
	// A call that finds the slot free takes exactly the service time; one
	// in ten finds it busy (utilisation 10%) and waits.
	assert.InDelta(t, float64(10*time.Millisecond), float64(r.Quantile(0)), float64(time.Microsecond))
	assert.InDelta(t, float64(10*time.Millisecond), float64(r.P50), float64(time.Microsecond))
	assert.Greater(t, r.P999, 10*time.Millisecond)
	assert.Zero(t, r.Failed())
}

// A full queue sheds with a 503 at once; a 503 is a failure (lb's
// default) and, with one attempt, reaches the caller.
func TestFullQueueSheds(t *testing.T) {
	t.Parallel()
	sc := testScenario(t, 2, func(sc *Scenario) {
		sc.Backends[0].Slots = 1
		sc.Backends[0].MaxQueue = 2
		sc.Backends[0].given.set("max_queue")
		sc.Backends[0].Sigma = 1e-9 // 10ms, every time
		sc.Load.Rate = 1000         // 5 times what two slots serve
	})
	r := run1(t, sc, "round-robin")
	assert.Positive(t, r.Shed)
	assert.Equal(t, r.Shed, r.StatusFailures, "one attempt: every shed call is a 503 to its caller")
	assert.Equal(t, r.Shed, r.Statuses[503])
	assert.LessOrEqual(t, r.Quantile(1), 30*time.Millisecond+time.Microsecond, "a queue of 2 bounds the wait to 2 service times")
}

func TestP2CBeatsRoundRobinWithASlowBackend(t *testing.T) {
	t.Parallel()
	sc := testScenario(t, 9, func(sc *Scenario) {
		sc.Load.Rate = 3000 // about half the fleet's capacity, six times the slow backend's share
		sc.Backends = append(sc.Backends, BackendGroup{Median: msd(100), Slots: 8})
	})
	rr := run1(t, sc, "round-robin")
	p2c := run1(t, sc, "p2c")
	assert.Greater(t, rr.P99, 5*p2c.P99, "round robin p99 %v, P2C p99 %v", rr.P99, p2c.P99)
	assert.Greater(t, rr.MaxMeanInflight, 3*p2c.MaxMeanInflight)
}

func TestBoundedLoadsSpreadHotKeys(t *testing.T) {
	t.Parallel()
	sc := testScenario(t, 10, func(sc *Scenario) {
		sc.Keys = Keys{Count: 1000, Dist: "zipf", S: 1.5}
		sc.Clients = 1
	})
	ring := run1(t, sc, "ring")
	bounded := run1(t, sc, "ring-bounded")
	assert.Greater(t, ring.MaxMeanInflight, 2*bounded.MaxMeanInflight)
	assert.Greater(t, ring.P99, 2*bounded.P99)
	assert.Greater(t, ring.SameBackend, 0.99, "no change, no failure: a key keeps its backend")
	assert.Less(t, bounded.SameBackend, ring.SameBackend, "bounded loads trade affinity for balance")
}

func TestKeysMoved(t *testing.T) {
	t.Parallel()
	sc := testScenario(t, 10, func(sc *Scenario) {
		sc.Duration = Duration(time.Second)
		sc.Backends = append(sc.Backends, BackendGroup{Median: msd(10), Absent: true})
		sc.Events = []Event{
			{At: msd(300), Kind: evAdd, Backend: "b10"},
			{At: msd(600), Kind: evRemove, Backend: "b10"},
		}
	})
	for _, name := range []string{"ring", "maglev", "p2c"} {
		r := run1(t, sc, name)
		require.Len(t, r.Moves, 2, name)
		for _, m := range r.Moves {
			assert.InDelta(t, 1.0/11, m.Ideal, 1e-12, name)
		}
		if name == "p2c" {
			assert.True(t, math.IsNaN(r.Moves[0].Moved), "P2C places no key")
			continue
		}
		add, remove := r.Moves[0].Moved, r.Moves[1].Moved
		assert.Equal(t, add, remove, "%s: removing what was added moves the same keys back", name)
		assert.InDelta(t, 1.0/11, add, 0.3/11, name)
	}
}

// A killed backend: its calls in flight are reset, its dials refused;
// lb's retries take them elsewhere, lb's outlier detection ejects it, and
// lb's health checks readmit it once it is back.
func TestKilledBackend(t *testing.T) {
	t.Parallel()
	kill := func(mod func(*Scenario)) *Scenario {
		return testScenario(t, 5, func(sc *Scenario) {
			sc.Events = []Event{{At: msd(500), Kind: evRestart, Backend: "b00", Down: Duration(time.Second)}}
			if mod != nil {
				mod(sc)
			}
		})
	}
	bare := run1(t, kill(nil), "round-robin")
	// One second of a fifth of 1500/s fails (and the few calls in flight
	// at the kill).
	assert.InEpsilon(t, 300, bare.Errors, 0.15)
	assert.Zero(t, bare.Ejections)

	retried := run1(t, kill(func(sc *Scenario) { sc.Transport = TransportConfig{} }), "round-robin")
	assert.Zero(t, retried.Failed(), "lb's 3 attempts: a retry goes to another backend")
	assert.InEpsilon(t, 300, retried.Retries, 0.3, "no ejection: b00 keeps its fifth of the calls")

	ejected := run1(t, kill(func(sc *Scenario) {
		sc.Transport = TransportConfig{}
		sc.OutlierDetection = &OutlierConfig{BaseEjectionTime: Duration(10 * time.Second)}
	}), "round-robin")
	assert.Zero(t, ejected.Failed())
	assert.Equal(t, int64(2), ejected.Ejections, "each client ejects b00 once, for 10 s")
	assert.LessOrEqual(t, ejected.Retries, int64(2*5+4), "5 failures in a row per client eject it (and the calls in flight at the kill)")
	assert.Less(t, ejected.Share(0), 0.2/2, "out from the kill to the end")

	checked := run1(t, kill(func(sc *Scenario) {
		sc.Transport = TransportConfig{}
		sc.OutlierDetection = &OutlierConfig{BaseEjectionTime: Duration(10 * time.Second)}
		sc.HealthCheck = &HealthConfig{Interval: msd(100)}
	}), "round-robin")
	assert.Zero(t, checked.Failed())
	// Readmitted by the first passing check after the restart at 1.5 s:
	// b00 serves its fifth again for the last half second.
	last := checked.PicksOver[0]
	perBucket := float64(checked.Requests) / float64(len(last)) / 5
	var tail uint64
	for _, n := range last[len(last)-20:] {
		tail += n
	}
	assert.InEpsilon(t, perBucket, float64(tail)/20, 0.2, "b00 is back: %v", last)
	assert.Zero(t, last[len(last)*3/4-10], "out until the restart: %v", last)
}

// With the whole fleet down, lb's retry budget bounds the retries: per
// client, MinPerSecond over the window plus Ratio of the requests.
func TestRetryBudgetWhenTheFleetIsDown(t *testing.T) {
	t.Parallel()
	sc := testScenario(t, 3, func(sc *Scenario) {
		sc.Duration = Duration(3 * time.Second)
		sc.Transport = TransportConfig{RetryBudget: &RetryBudgetConfig{Ratio: 0.1, MinPerSecond: 5, Window: Duration(10 * time.Second)}}
		for _, b := range []string{"b00", "b01", "b02"} {
			sc.Events = append(sc.Events, Event{At: msd(1000), Kind: evRestart, Backend: b, Down: Duration(time.Second)})
		}
	})
	r := run1(t, sc, "round-robin")
	// By the end of the outage (2 s of 3), each client made a third of its
	// requests less; the floor is 5/s over the 10 s window.
	perClient := float64(r.Requests) * 2 / 3 / float64(sc.Clients)
	budget := 5*10 + 0.1*perClient
	assert.InDelta(t, float64(sc.Clients)*budget, float64(r.Retries), 12, "every retry the budget allows, and no more")
	assert.Positive(t, r.RetriesDenied)
	assert.InEpsilon(t, float64(r.Requests)/3, r.Failed(), 0.1, "the requests of the outage fail")
}

// A blackhole: with a per-try timeout its attempts are abandoned, charged
// and retried, and it is ejected; with hedging, hedges answer and it is
// never charged; with neither, its calls take the caller's deadline.
func TestBlackhole(t *testing.T) {
	t.Parallel()
	hole := func(tr TransportConfig) *Scenario {
		return testScenario(t, 4, func(sc *Scenario) {
			sc.Transport = tr
			sc.Load.Timeout = msd(500)
			sc.OutlierDetection = &OutlierConfig{}
			sc.Events = []Event{{At: msd(200), Kind: evFail, Backend: "b01", Mode: modeBlackhole}}
		})
	}
	bare := run1(t, hole(TransportConfig{}), "round-robin")
	assert.InEpsilon(t, float64(bare.Requests)*0.9/4, bare.Failed(), 0.15, "a quarter of the calls after 0.2 s hang until the deadline")
	assert.Zero(t, bare.Ejections, "the caller's deadline is not the backend's failure")

	perTry := run1(t, hole(TransportConfig{PerTryTimeout: msd(50)}), "round-robin")
	assert.Zero(t, perTry.Failed())
	assert.Equal(t, int64(2), perTry.Ejections)
	assert.Equal(t, perTry.PerTryTimeouts, perTry.Retries)
	// Per client: the attempts sent there during the first timeout
	// (600/s × 1/4 × 50 ms), and the 5 in a row that eject it.
	assert.LessOrEqual(t, perTry.Retries, int64(2*(8+5+3)))

	hedged := run1(t, hole(TransportConfig{Hedging: &HedgingConfig{Delay: msd(40)}}), "round-robin")
	assert.Zero(t, hedged.Failed())
	assert.Zero(t, hedged.Ejections, "a lost attempt is charged to nobody")
	assert.Positive(t, hedged.HedgeWins)
	assert.GreaterOrEqual(t, hedged.Quantile(0.99), 40*time.Millisecond)
}

// A stall after the headers: the body idle timeout ends it and charges
// the backend, which is ejected; without it, the caller's deadline ends
// it, which charges nobody.
func TestStallAfterHeaders(t *testing.T) {
	t.Parallel()
	stall := func(idle Duration) *Scenario {
		return testScenario(t, 4, func(sc *Scenario) {
			sc.Transport = TransportConfig{BodyIdleTimeout: idle}
			sc.Load.Timeout = msd(500)
			sc.OutlierDetection = &OutlierConfig{}
			sc.Events = []Event{{At: msd(200), Kind: evFail, Backend: "b01", Mode: modeStall}}
		})
	}
	idle := run1(t, stall(msd(50)), "round-robin")
	assert.Equal(t, int64(2), idle.Ejections)
	assert.Equal(t, idle.BodyFailures, idle.BodyStalls)
	// Per client: the calls sent there during the first idle timeout
	// (600/s × 1/4 × 50 ms), and the 5 in a row that eject it.
	assert.LessOrEqual(t, idle.BodyFailures, int64(2*(8+5+3)), "not retried: the caller had the response")
	assert.Zero(t, idle.Retries)

	none := run1(t, stall(0), "round-robin")
	assert.Zero(t, none.Ejections, "never charged")
	assert.InEpsilon(t, float64(none.Requests)*0.9/4, none.BodyFailures, 0.15)
}

// Retry-After on a 503 holds the backend off for as long as it asks.
func TestRetryAfterHoldsOff(t *testing.T) {
	t.Parallel()
	sc := testScenario(t, 3, func(sc *Scenario) {
		sc.Duration = Duration(3 * time.Second)
		sc.Transport = TransportConfig{}
		sc.Events = []Event{
			{At: msd(1000), Kind: evFail, Backend: "b00", RetryAfter: "1"},
			{At: msd(1050), Kind: evRecover, Backend: "b00"},
		}
	})
	r := run1(t, sc, "round-robin")
	row := r.PicksOver[0]
	perBucket := float64(r.Requests) / float64(len(row)) / 3
	// Buckets of 25 ms: b00 gets nothing from its first 503 at 1 s until
	// 2 s.
	for i := 42; i < 79; i++ {
		assert.Zero(t, row[i], "bucket %d", i)
	}
	assert.InEpsilon(t, perBucket, float64(row[90]+row[91]+row[92])/3, 0.5)
	assert.Zero(t, r.Failed())
}

// A closed loop: each worker has one request in flight, so the throughput
// is the workers over the time per request (Little's law), whatever the
// strategy.
func TestClosedLoop(t *testing.T) {
	t.Parallel()
	sc := testScenario(t, 4, func(sc *Scenario) {
		sc.Load = Load{Arrivals: arrivalsClosed, Workers: 5, Think: msd(5)}
		sc.Backends[0].Sigma = 0
		sc.Backends[0].given.set("sigma")
	})
	r := run1(t, sc, "round-robin")
	perRequest := 10*time.Millisecond + 5*time.Millisecond
	want := float64(sc.Clients*5) * sc.Duration.D().Seconds() / perRequest.Seconds()
	assert.InEpsilon(t, want, r.Requests, 0.02)
	assert.Equal(t, 10*time.Millisecond, r.P99, "no queueing at 20 calls over 32 slots")
}

// Worker pools behind a slow backend: round robin's share of slow calls
// fills the pools, and released requests wait for a worker (their latency
// counts from the release); P2C keeps the pools free.
func TestWorkerPoolSaturates(t *testing.T) {
	t.Parallel()
	sc := testScenario(t, 3, func(sc *Scenario) {
		sc.Load = Load{Arrivals: arrivalsPaced, Rate: 500, Workers: 8}
		sc.Backends = append(sc.Backends, BackendGroup{Median: msd(100), Slots: 8})
	})
	rr := run1(t, sc, "round-robin")
	p2c := run1(t, sc, "p2c")
	assert.Greater(t, rr.P50, 200*time.Millisecond, "queued for a worker")
	assert.Less(t, p2c.P99, 60*time.Millisecond)
}

// A fast 503 costs the overhead and its latency; a refused dial costs the
// overhead alone.
func TestFailureLatencies(t *testing.T) {
	t.Parallel()
	sc := testScenario(t, 1, func(sc *Scenario) {
		sc.Load.Rate = 100
		sc.Load.Overhead = Duration(300 * time.Microsecond)
		sc.Events = []Event{
			{At: msd(500), Kind: evFail, Backend: "b00", Latency: msd(3)},
			{At: msd(1000), Kind: evKill, Backend: "b00"},
		}
	})
	r := run1(t, sc, "round-robin")
	assert.Equal(t, r.Statuses[503]+r.Errors, r.Failed())
	assert.InEpsilon(t, 50, r.Statuses[503], 0.3)
	assert.InEpsilon(t, 100, r.Errors, 0.3)
	seen := map[time.Duration]int{}
	for _, d := range r.failLat {
		seen[time.Duration(d)]++
	}
	assert.Equal(t, map[time.Duration]int{3300 * time.Microsecond: int(r.Statuses[503]), 300 * time.Microsecond: int(r.Errors)}, seen)
}

func TestRunRejectsUnknownStrategy(t *testing.T) {
	t.Parallel()
	_, err := Run(testScenario(t, 2, nil), "least-conn")
	require.ErrorContains(t, err, `unknown strategy "least-conn"`)
}
