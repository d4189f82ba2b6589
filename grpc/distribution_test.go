package lbgrpc_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/resolver"
)

// TestDistribution: each strategy, run by the policy over three real
// servers of weights 1, 2 and 3, spreads calls as lb's strategy does:
// evenly for those that ignore weights, by weight for the others. The
// hash strategies spread distinct keys.
func TestDistribution(t *testing.T) {
	t.Parallel()
	even := []float64{1. / 3, 1. / 3, 1. / 3}
	weighted := []float64{1. / 6, 2. / 6, 3. / 6}
	tests := []struct {
		give  string
		keyed bool
		calls int
		want  []float64 // each server's share of the calls
		tol   float64
	}{
		// Round robin: calls from one goroutine keep to one of lb's
		// stripes, whose cycle is exact (a stripe change costs a call).
		{give: "round_robin", calls: 300, want: even, tol: 0.03},
		{give: "weighted_round_robin", calls: 300, want: weighted, tol: 0.03},
		// Random: over 600 calls a share's standard deviation is at most
		// 2.1%; 9% is more than four of them.
		{give: "random", calls: 600, want: even, tol: 0.09},
		{give: "weighted_random", calls: 600, want: weighted, tol: 0.09},
		// 300 keys: lb's ring and Maglev place backends by address, so
		// placements change with the servers' ports, and a share of the
		// keys varies as a sample's would (at most 2.9%); 12% is four of
		// that, and still tells weighted shares from even ones.
		{give: "ring", keyed: true, calls: 300, want: weighted, tol: 0.12},
		{give: "maglev", keyed: true, calls: 300, want: weighted, tol: 0.12},
	}
	for _, tt := range tests {
		t.Run(tt.give, func(t *testing.T) {
			t.Parallel()
			servers := []*testServer{startServer(t, "s0"), startServer(t, "s1"), startServer(t, "s2")}
			eps := make([]resolver.Endpoint, len(servers))
			for i, s := range servers {
				eps[i] = s.endpoint(uint32(i + 1))
			}
			c := newClient(t, serviceConfig(fmt.Sprintf(`{"strategy": %q}`, tt.give)), eps)
			c.warm(servers...)

			n := tt.calls
			counts := map[string]int{}
			for i := 0; i < n; i++ {
				if tt.keyed {
					counts[c.keyed("user-"+strconv.Itoa(i), "")]++
					continue
				}
				name, err := c.call(context.Background())
				require.NoError(t, err)
				counts[name]++
			}
			t.Logf("%s: %v", tt.give, counts)
			for i, s := range servers {
				assert.InDelta(t, tt.want[i], float64(counts[s.name])/float64(n), tt.tol, "share of %s (weight %d): %v", s.name, i+1, counts)
			}
		})
	}
}

// TestP2CAvoidsSlowBackend: power of two choices reads lb's in-flight
// counts, which the policy keeps through the picks and their Done: under
// concurrent load a slow server holds more calls in flight and gets fewer.
func TestP2CAvoidsSlowBackend(t *testing.T) {
	t.Parallel()
	slow, fast1, fast2 := startServer(t, "slow"), startServer(t, "fast1"), startServer(t, "fast2")
	c := newClient(t, serviceConfig(`{"strategy": "p2c"}`), endpointsOf(slow, fast1, fast2))
	c.warm(slow, fast1, fast2)
	slow.delay.Store(int64(50 * time.Millisecond))

	const workers, perWorker = 6, 60
	var mu sync.Mutex
	counts := map[string]int{}
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < perWorker; i++ {
				name, err := c.call(context.Background())
				assert.NoError(t, err)
				mu.Lock()
				counts[name]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	total := float64(workers * perWorker)
	t.Logf("p2c with one server 50ms slower: %v", counts)
	// An even share would be a third each.
	assert.Less(t, float64(counts["slow"])/total, 0.2, "the slow server's share")
	assert.Greater(t, float64(counts["fast1"])/total, 0.3)
	assert.Greater(t, float64(counts["fast2"])/total, 0.3)
	for _, s := range c.stats() {
		assert.Zero(t, s.InFlight, "every pick was done: %s", s.Endpoint.Addr)
		assert.Zero(t, s.Failures)
	}
}
