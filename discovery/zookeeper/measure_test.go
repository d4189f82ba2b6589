package zookeeper_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-lb/lb"
	"github.com/go-lb/lb/discovery/zookeeper"
	"github.com/go-lb/lb/internal/resolvertest"
)

// These tests measure; they assert only correctness and log the figures.
// Run them alone, without -race, for figures worth quoting:
//
//	cd discovery/zookeeper && go test -run TestMeasure -count=1 -v .

// From a change in ZooKeeper (a child created or deleted, timed from the
// request) to the balancer's new picker, over 100 changes.
func TestMeasureChangeLatency(t *testing.T) {
	const changes = 100
	admin := connectShared(t)
	p := resolvertest.Uniq("/measure/latency")
	put(t, admin, p+"/base", "10.1.0.1:80")
	bal, err := lb.NewBalancer(lb.RoundRobin{})
	require.NoError(t, err)
	defer bal.Close()
	applied := make(chan string, 1)
	stop := resolvertest.FollowInto(t, zookeeper.Resolver{Conn: connectShared(t), Path: p}, bal, applied, resolvertest.Backends)
	defer stop()
	require.Equal(t, "[10.1.0.1:80]", <-applied)

	total, afterAck := resolvertest.TimeChanges(t, changes, applied, func(i int) string {
		addr := fmt.Sprintf("10.2.0.%d:80", i/2)
		if i%2 == 0 {
			_, err := admin.Create(p+"/"+addr, nil, zk.FlagPersistent, zk.WorldACL(zk.PermAll))
			require.NoError(t, err)
			return "[10.1.0.1:80 " + addr + "]"
		}
		require.NoError(t, admin.Delete(p+"/"+addr, -1))
		return "[10.1.0.1:80]"
	})
	resolvertest.NothingMore(t, applied)
	med, maxd := resolvertest.MedianMax(total)
	amed, amax := resolvertest.MedianMax(afterAck)
	t.Logf("change in ZooKeeper -> new picker, over %d changes: median %v, max %v (budget: median < 100ms)", changes, med, maxd)
	t.Logf("of which after the write was acknowledged: median %v, max %v", amed, amax)
}

// 1,000 children: time from the start of Watch to the first full set, and
// the heap and goroutines (one per watch) the running resolver holds.
func TestMeasureThousandChildren(t *testing.T) {
	const n = 1000
	admin := connectShared(t)
	p := resolvertest.Uniq("/measure/large")
	createMany(t, admin, p, n)
	conn := connectShared(t)

	// The resolver alone: the set handed to update is not kept.
	fs := resolvertest.MeasureFirstSet(t, zookeeper.Resolver{Conn: conn, Path: p}, n)
	assert.Positive(t, fs.Heap, "a running resolver over %d children holds some memory", n)
	t.Logf("%d children: first full set after %v; the running resolver holds %.0f KiB of heap (%.0f B per endpoint, the client's watch table included) and %d goroutines (one per watch) with %.0f KiB of stacks",
		n, fs.After.Round(time.Microsecond), float64(fs.Heap)/1024, float64(fs.Heap)/n, fs.Goroutines, float64(fs.Stacks)/1024)

	// The same into a Balancer (round robin), as Follow does, through a
	// connection of the resolver's own (its connect and session included).
	bal, err := lb.NewBalancer(lb.RoundRobin{})
	require.NoError(t, err)
	defer bal.Close()
	applied := make(chan string, 1)
	start := time.Now()
	stop := resolvertest.FollowInto(t, zookeeper.Resolver{Servers: []string{exampleZK}, Path: p}, bal, applied, resolvertest.Backends)
	<-applied
	first := time.Since(start)
	require.Len(t, bal.Backends(), n)
	stop()
	t.Logf("%d children into a Balancer, with the resolver's own connection: first picker after %v", n, first.Round(time.Microsecond))
}
