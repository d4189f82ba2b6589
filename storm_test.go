package lb

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestStorm runs 32 goroutines picking and finishing calls (some failing,
// which ejects backends) while another replaces the endpoint set every
// millisecond, removing and re-adding backends, and a third flips health.
// Every backend a pick returns must belong to a set that was current at
// some moment during that pick. Run under -race.
func TestStorm(t *testing.T) {
	t.Parallel()
	builders := []Builder{RoundRobin{}, WeightedRoundRobin{}, WeightedRoundRobin{MaxSchedule: 4}, Random{}, WeightedRandom{}, P2C{}, Ring{Replicas: 64}, Ring{Replicas: 64, LoadFactor: 1.25}, Maglev{TableSize: 1009}}
	for i, b := range builders {
		b := b
		t.Run(fmt.Sprintf("%d-%T", i, b), func(t *testing.T) {
			t.Parallel()
			storm(t, b)
		})
	}
}

func storm(t *testing.T, builder Builder) {
	// sets[v] is the v-th set; applied is the highest v whose Update has
	// returned. A pick that starts after applied == lo and ends before
	// applied moves past hi+1 may see any set from lo to hi+1.
	const pool = 12
	set := func(v int) map[string]bool {
		m := map[string]bool{}
		for i := 0; i < pool; i++ {
			if (i+v)%3 != 0 || i == v%pool { // drop a third, rotating
				m[fmt.Sprintf("10.0.0.%d:80", i+1)] = true
			}
		}
		return m
	}
	var (
		mu      sync.RWMutex
		sets    = []map[string]bool{set(0)}
		applied atomic.Int64
	)
	toEndpoints := func(m map[string]bool) []Endpoint {
		var eps []Endpoint
		for a := range m {
			eps = append(eps, Endpoint{Addr: a, Weight: 1 + len(a)%3})
		}
		return eps
	}
	bal, err := NewBalancer(builder, WithEndpoints(toEndpoints(sets[0])),
		WithOutlierDetection(OutlierDetection{ConsecutiveFailures: 3, BaseEjectionTime: 2 * time.Millisecond, MaxEjectionTime: 10 * time.Millisecond}))
	require.NoError(t, err)
	defer bal.Close()

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
			m := set(v)
			mu.Lock()
			sets = append(sets, m)
			mu.Unlock()
			if err := bal.Update(toEndpoints(m)); err != nil {
				t.Error(err)
				return
			}
			applied.Store(int64(v))
		}
	}()
	wg.Add(1)
	go func() { // the health checker
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			addr := fmt.Sprintf("10.0.0.%d:80", i%pool+1)
			_ = bal.SetHealthy(addr, i%2 == 0) // may not be in the set now
			time.Sleep(100 * time.Microsecond)
		}
	}()
	var picks, bad atomic.Int64
	failure := errors.New("boom")
	for g := 0; g < 32; g++ {
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
				runtime.Gosched() // let the updater in: 32 spinning goroutines would starve it
				switch {
				case (i+g)%7 == 0:
					pk.Done(failure, time.Microsecond)
				case (i+g)%11 == 0: // finished twice, and by a copy: counts once
					cp := pk
					pk.Cancel()
					cp.Done(failure, time.Microsecond)
				case (i+g)%13 == 0:
					pk.Done(nil, time.Microsecond)
					pk.Done(nil, time.Microsecond)
				default:
					pk.Done(nil, time.Microsecond)
				}
			}
		}(g)
	}
	// The storm lasts until 100 updates and 20,000 picks have happened (or
	// 30 s on a very slow machine: then it checks what it saw).
	deadline := time.Now().Add(30 * time.Second)
	for (applied.Load() < 100 || picks.Load() < 20000) && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	close(stop)
	wg.Wait()
	t.Logf("%d picks during %d updates", picks.Load(), applied.Load())
	require.Zero(t, bad.Load(), "picks outside every set current during the pick")
	require.Positive(t, picks.Load())
	require.Positive(t, applied.Load())
	for _, s := range bal.Stats() {
		require.Zero(t, s.InFlight, "%s: every pick was finished", s.Endpoint.Addr)
	}
}
