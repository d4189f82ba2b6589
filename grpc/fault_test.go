package lbgrpc_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	lbgrpc "github.com/go-lb/lb/grpc"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestFaultKillMidLoad: four servers under concurrent load (calls take 2ms,
// so the killed server has calls in flight); a third of the
// way through one is killed, half way through another starts answering
// UNAVAILABLE while staying connected. UnaryCall is marked retryable on
// UNAVAILABLE in the service config, so no call fails: gRPC retries on
// another pick, the killed server leaves the picker when its SubConn
// drops, and lb's outlier detection ejects the failing one, which shows
// in the Balancer's Stats.
func TestFaultKillMidLoad(t *testing.T) {
	t.Parallel()
	tests := []struct {
		give  string
		keyed bool
	}{
		{give: "round_robin"},
		{give: "p2c"},
		{give: "ring", keyed: true},
	}
	for _, tt := range tests {
		t.Run(tt.give, func(t *testing.T) {
			t.Parallel()
			servers := []*testServer{startServer(t, "s0"), startServer(t, "s1"), startServer(t, "s2"), startServer(t, "s3")}
			killed, bad := servers[0], servers[1]
			cfg := fmt.Sprintf(`{"strategy": %q, "outlierDetection": {"consecutiveFailures": 3, "baseEjectionTime": "60s"}}`, tt.give)
			c := newClient(t, serviceConfig(cfg, retryPolicy), endpointsOf(servers...))
			c.warm(servers...)
			for _, s := range servers {
				s.delay.Store(int64(2 * time.Millisecond)) // calls are in flight when s0 dies
			}
			warmAttempts := c.attempts.attempts.Load()

			const workers, calls = 4, 800
			var issued, failed atomic.Int64
			var wg sync.WaitGroup
			for w := 0; w < workers; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						n := issued.Add(1)
						if n > calls {
							return
						}
						switch n {
						case calls / 3:
							killed.stop()
						case calls / 2:
							bad.failing.Store(true)
						}
						ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
						if tt.keyed {
							ctx = lbgrpc.WithHashKey(ctx, "user-"+strconv.FormatInt(n%97, 10))
						}
						if _, err := c.call(ctx); err != nil {
							failed.Add(1)
							t.Logf("call %d: %v", n, err)
						}
						cancel()
					}
				}()
			}
			wg.Wait()

			st := c.stats()
			var ejections uint32
			for _, s := range st {
				ejections += s.Ejections
			}
			attempts := c.attempts.attempts.Load() - warmAttempts
			t.Logf("%s: calls %d, failed %d, retried %d (attempts %d, transparent %d), ejected %d; killed %s: failures %d, unhealthy %v; bad %s: failures %d, ejected %v",
				tt.give, calls, failed.Load(), attempts-calls, attempts, c.attempts.transparent.Load(), ejections,
				killed.name, st["s0"].Failures, st["s0"].Unhealthy, bad.name, st["s1"].Failures, st["s1"].Ejected)

			assert.Zero(t, failed.Load(), "failed calls")
			assert.True(t, st["s0"].Unhealthy, "the killed server is marked down")
			require.True(t, st["s1"].Ejected, "the failing server is ejected")
			assert.EqualValues(t, 1, st["s1"].Ejections)
			assert.Greater(t, attempts, int64(calls), "the failures were retried")
			for name, s := range st {
				assert.Zero(t, s.InFlight, "every pick on %s was ended", name)
			}
			// Once ejected, the failing server gets no more calls.
			before := bad.calls.Load()
			for i := 0; i < 20; i++ {
				_, err := c.call(lbgrpc.WithHashKey(context.Background(), "after-"+strconv.Itoa(i)))
				require.NoError(t, err)
			}
			assert.Equal(t, before, bad.calls.Load(), "calls reached the ejected server")
		})
	}
}
