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
	const pool = 12
	runStorm(t, stormSpec{builder: builder, pool: pool, set: func(v int) []Endpoint {
		var eps []Endpoint
		for i := 0; i < pool; i++ {
			if (i+v)%3 != 0 || i == v%pool { // drop a third, rotating
				a := fmt.Sprintf("10.0.0.%d:80", i+1)
				eps = append(eps, Endpoint{Addr: a, Weight: 1 + len(a)%3})
			}
		}
		return eps
	}})
}

// stormSpec describes a storm (runStorm).
type stormSpec struct {
	builder Builder
	opts    []Option // more Balancer options
	// pool: the backends are among 10.0.0.1:80 to 10.0.0.<pool>:80, whose
	// health flips.
	pool int
	// set returns the v-th endpoint set.
	set func(v int) []Endpoint
	// kept, when not nil, returns the addresses of eps the Balancer keeps
	// (its subset); nil: all of them.
	kept func(bal *Balancer, eps []Endpoint) map[string]bool
	// refused, when not nil, reports that the v-th update must fail with
	// ErrInvalidEndpoint, and change nothing.
	refused func(v int) bool
	// check, when not nil, runs between health flips; an error fails the
	// storm.
	check func(bal *Balancer) error
}

// runStorm: 32 goroutines pick and finish calls through a Balancer (with
// outlier detection) while one replaces its endpoint set every
// millisecond and another flips health. Every backend a pick returns must
// be kept from a set that was current at some moment during that pick.
func runStorm(t *testing.T, spec stormSpec) {
	kept := func(bal *Balancer, eps []Endpoint) map[string]bool {
		if spec.kept != nil {
			return spec.kept(bal, eps)
		}
		m := map[string]bool{}
		for _, e := range eps {
			m[e.Addr] = true
		}
		return m
	}
	// sets[v] is what the v-th set keeps; applied is the highest v whose
	// Update has returned. A pick that starts after applied == lo and ends
	// before applied moves past hi+1 may see any set from lo to hi+1.
	bal, err := NewBalancer(spec.builder, append([]Option{WithEndpoints(spec.set(0)),
		WithOutlierDetection(OutlierDetection{ConsecutiveFailures: 3, BaseEjectionTime: 2 * time.Millisecond, MaxEjectionTime: 10 * time.Millisecond})},
		spec.opts...)...)
	require.NoError(t, err)
	defer bal.Close()
	var (
		mu      sync.RWMutex
		sets    = []map[string]bool{kept(bal, spec.set(0))}
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
			eps := spec.set(v)
			if spec.refused != nil && spec.refused(v) {
				if err := bal.Update(eps); !errors.Is(err, ErrInvalidEndpoint) {
					t.Errorf("update %d must be refused: %v", v, err)
					return
				}
				mu.Lock()
				sets = append(sets, sets[len(sets)-1]) // nothing changed
				mu.Unlock()
				applied.Store(int64(v))
				continue
			}
			m := kept(bal, eps)
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
	go func() { // the health checker
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			addr := fmt.Sprintf("10.0.0.%d:80", i%spec.pool+1)
			_ = bal.SetHealthy(addr, i%2 == 0) // may not be in the set now
			if spec.check != nil {
				if err := spec.check(bal); err != nil {
					t.Error(err)
					return
				}
			}
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
