package redis_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-lb/lb"
	lbredis "github.com/go-lb/lb/discovery/redis"
	"github.com/go-lb/lb/internal/resolvertest"
)

// These tests measure; they assert only correctness and log the figures.
// Run them alone, without -race, for figures worth quoting:
//
//	cd discovery/redis && go test -run TestMeasure -count=1 -v .

// From a change in Redis (timed from before the write) to the balancer's
// new picker, over 100 changes: instances written by hand (a keyspace
// notification tells), then registered and closed with Register (the
// change channel and a keyspace notification tell).
func TestMeasureChangeLatency(t *testing.T) {
	const changes = 100
	svc := uniq("measure-latency")
	cli := shared.client(t)
	put(t, cli, svc, "base", "10.1.0.1:80", 0)
	bal, err := lb.NewBalancer(lb.RoundRobin{})
	require.NoError(t, err)
	defer bal.Close()
	applied := make(chan string, 1)
	stop := resolvertest.FollowInto(t, lbredis.Resolver{Client: shared.client(t), Service: svc}, bal, applied, resolvertest.Backends)
	defer stop()
	require.Equal(t, "[10.1.0.1:80]", <-applied)

	byHand, _ := resolvertest.TimeChanges(t, changes, applied, func(i int) string {
		addr := fmt.Sprintf("10.2.0.%d:80", i/2)
		if i%2 == 0 {
			put(t, cli, svc, addr, addr, 0)
			return "[10.1.0.1:80 " + addr + "]"
		}
		del(t, cli, svc, addr)
		return "[10.1.0.1:80]"
	})

	var reg *lbredis.Registration
	registered, _ := resolvertest.TimeChanges(t, changes, applied, func(i int) string {
		addr := fmt.Sprintf("10.3.0.%d:80", i/2)
		if i%2 == 0 {
			reg, err = lbredis.Register(bg(t), cli, svc, lb.Endpoint{Addr: addr}, lbredis.RegisterOptions{})
			require.NoError(t, err)
			return "[10.1.0.1:80 " + addr + "]"
		}
		require.NoError(t, reg.Close())
		return "[10.1.0.1:80]"
	})
	resolvertest.NothingMore(t, applied)
	med, maxd := resolvertest.MedianMax(byHand)
	t.Logf("change written by hand -> new picker, over %d changes: median %v, max %v (budget: median < 100ms)", changes, med, maxd)
	med, maxd = resolvertest.MedianMax(registered)
	t.Logf("Register / Close -> new picker, over %d changes: median %v, max %v", changes, med, maxd)
}

// 1,000 instances of one service: time from the start of Watch to the
// first full set, and the heap the running resolver holds.
func TestMeasureThousandInstances(t *testing.T) {
	const n = 1000
	svc := uniq("measure-large")
	putMany(t, shared.client(t), svc, 0, n)
	rcli := shared.client(t)
	require.NoError(t, rcli.Ping(bg(t)).Err()) // a connection in the pool, as a running program has

	// The resolver alone: the set handed to update is not kept.
	fs := resolvertest.MeasureFirstSet(t, lbredis.Resolver{Client: rcli, Service: svc}, n)
	assert.Positive(t, fs.Heap, "a running resolver over %d instances holds some memory", n)
	t.Logf("%d instances: first full set after %v; heap held by the running resolver %.0f KiB (%.0f B per instance; includes the subscription's connection)",
		n, fs.After.Round(time.Microsecond), float64(fs.Heap)/1024, float64(fs.Heap)/n)

	// The same into a Balancer (round robin), as Follow does.
	bal, err := lb.NewBalancer(lb.RoundRobin{})
	require.NoError(t, err)
	defer bal.Close()
	applied := make(chan string, 1)
	start := time.Now()
	stop := resolvertest.FollowInto(t, lbredis.Resolver{Client: rcli, Service: svc}, bal, applied, resolvertest.Backends)
	<-applied
	first := time.Since(start)
	require.Len(t, bal.Backends(), n)
	stop()
	t.Logf("%d instances into a Balancer: first picker after %v", n, first.Round(time.Microsecond))
}
