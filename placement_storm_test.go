package lb

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestPlacementStorm is TestStorm's storm with subsetting and locality on:
// 16 goroutines pick and finish calls (some failing, which ejects
// backends) while one goroutine replaces the endpoint set every
// millisecond (zones, priorities and ordinals change; every tenth update
// has a malformed priority and must fail, changing nothing), and another
// flips health. Every pick must return a backend of the subset of a set
// that was current during the pick, and the tiers' shares always add up to
// 1. Run under -race.
func TestPlacementStorm(t *testing.T) {
	t.Parallel()
	for i, b := range []Builder{RoundRobin{}, P2C{}, Ring{Replicas: 64}, Maglev{TableSize: 1009}} {
		b := b
		t.Run(fmt.Sprintf("%d-%T", i, b), func(t *testing.T) {
			t.Parallel()
			placementStorm(t, b)
		})
	}
}

func placementStorm(t *testing.T, builder Builder) {
	const pool = 24
	zones := []string{"a", "b", "c"}
	set := func(v int) []Endpoint {
		var eps []Endpoint
		for i := 0; i < pool; i++ {
			if (i+v)%4 == 0 {
				continue // a quarter is away, rotating
			}
			z := zones[(i+v/7)%3]
			prio := strconv.Itoa((i + v/5) % 5 / 4) // mostly 0, some 1
			eps = append(eps, Endpoint{Addr: fmt.Sprintf("10.0.0.%d:80", i+1), Weight: 1 + i%2, Labels: map[string]string{
				LabelRegion: "r1", LabelZone: z, LabelPriority: prio, "ordinal": strconv.Itoa(i)}})
		}
		return eps
	}
	bal, err := NewBalancer(builder, WithEndpoints(set(0)),
		WithSubset(Subset{Size: 3, ClientIndex: 1, OrdinalLabel: "ordinal"}),
		WithLocality(Locality{Region: "r1", Zone: "a"}),
		WithSlowStart(SlowStart{Window: 20 * time.Millisecond}),
		WithOutlierDetection(OutlierDetection{ConsecutiveFailures: 3, BaseEjectionTime: 2 * time.Millisecond, MaxEjectionTime: 10 * time.Millisecond}))
	require.NoError(t, err)
	defer bal.Close()
	kept := func(eps []Endpoint) map[string]bool {
		sub, err := bal.placement(eps)
		require.NoError(t, err)
		m := map[string]bool{}
		for _, e := range sub {
			m[e.Addr] = true
		}
		return m
	}
	var (
		mu      sync.RWMutex
		sets    = []map[string]bool{kept(set(0))}
		applied atomic.Int64
	)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the updater
		defer wg.Done()
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for v := 1; ; v++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			eps := set(v)
			if v%10 == 0 {
				eps[v%len(eps)].Labels[LabelPriority] = "first"
				if err := bal.Update(eps); !errors.Is(err, ErrInvalidEndpoint) {
					t.Errorf("update %d with a bad priority: %v", v, err)
					return
				}
				mu.Lock()
				sets = append(sets, sets[len(sets)-1]) // nothing changed
				mu.Unlock()
				applied.Store(int64(v))
				continue
			}
			m := kept(eps)
			mu.Lock()
			sets = append(sets, m)
			mu.Unlock()
			if err := bal.Update(eps); err != nil {
				t.Error(err)
				return
			}
			applied.Store(int64(v))
		}
	}()
	wg.Add(1)
	go func() { // the health checker, and a reader of the tiers
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			_ = bal.SetHealthy(fmt.Sprintf("10.0.0.%d:80", i%pool+1), i%3 != 0) // may not be in the set now
			var sum float64
			for _, l := range bal.Localities() {
				sum += l.Share
			}
			if math.Abs(sum-1) > 1e-9 {
				t.Errorf("the tiers' shares add up to %v", sum)
				return
			}
			time.Sleep(100 * time.Microsecond) // pacing, not waiting for a condition
		}
	}()
	var picks, bad atomic.Int64
	failure := errors.New("boom")
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			var tried []*Backend
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				lo := applied.Load()
				var pk Pick
				var err error
				if i%5 == 4 {
					pk, err = bal.PickNext(fmt.Sprint("key", i), tried)
				} else {
					pk, err = bal.Pick(fmt.Sprint("key", i%100))
				}
				hi := applied.Load() + 1
				if err != nil {
					t.Errorf("pick: %v", err)
					return
				}
				mu.RLock()
				ok := false
				for v := lo; v <= hi && int(v) < len(sets); v++ {
					ok = ok || sets[v][pk.Addr()]
				}
				mu.RUnlock()
				if !ok {
					bad.Add(1)
				}
				picks.Add(1)
				tried = append(tried[:0], pk.Backend)
				runtime.Gosched()
				if (i+g)%7 == 0 {
					pk.Done(failure, time.Microsecond)
				} else {
					pk.Done(nil, time.Microsecond)
				}
			}
		}(g)
	}
	deadline := time.Now().Add(30 * time.Second)
	for (applied.Load() < 100 || picks.Load() < 20000) && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond) // pacing the check of the counts
	}
	close(stop)
	wg.Wait()
	t.Logf("%d picks during %d updates", picks.Load(), applied.Load())
	require.Zero(t, bad.Load(), "picks outside every subset current during the pick")
	require.Positive(t, picks.Load())
	require.Positive(t, applied.Load())
	for _, s := range bal.Stats() {
		require.Zero(t, s.InFlight, "%s: every pick was finished", s.Endpoint.Addr)
	}
}
