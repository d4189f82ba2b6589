package etcd_test

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/go-lb/lb"
	"github.com/go-lb/lb/discovery/etcd"
	"github.com/go-lb/lb/internal/resolvertest"
)

// These tests measure; they assert only correctness and log the figures.
// Run them alone, without -race, for figures worth quoting:
//
//	cd discovery/etcd && go test -run TestMeasure -count=1 -v .

// From a change in etcd (a put or a delete, timed from the request) to the
// balancer's new picker, over 100 changes.
func TestMeasureChangeLatency(t *testing.T) {
	prefix := resolvertest.Uniq("/measure/latency/")
	const changes = 100
	cli := newClient(t, exampleEtcd)
	put(t, cli, prefix+"base", "10.1.0.1:80")
	bal, err := lb.NewBalancer(lb.RoundRobin{})
	require.NoError(t, err)
	defer bal.Close()
	applied := make(chan string, 1)
	stop := resolvertest.FollowInto(t, etcd.Resolver{Client: newClient(t, exampleEtcd), Prefix: prefix}, bal, applied, resolvertest.Backends)
	defer stop()
	require.Equal(t, "[10.1.0.1:80]", <-applied)

	total, afterCommit := resolvertest.TimeChanges(t, changes, applied, func(i int) string {
		addr := fmt.Sprintf("10.2.0.%d:80", i/2)
		if i%2 == 0 {
			put(t, cli, prefix+addr, addr)
			return "[10.1.0.1:80 " + addr + "]"
		}
		del(t, cli, prefix+addr)
		return "[10.1.0.1:80]"
	})
	resolvertest.NothingMore(t, applied)
	med, maxd := resolvertest.MedianMax(total)
	cmed, cmax := resolvertest.MedianMax(afterCommit)
	t.Logf("change in etcd -> new picker, over %d changes: median %v, max %v (budget: median < 100ms)", changes, med, maxd)
	t.Logf("of which after the write was acknowledged: median %v, max %v", cmed, cmax)
}

// 1,000 endpoints under one prefix: time from the start of Watch to the
// first full set, and the heap the running resolver holds.
func TestMeasureLargePrefix(t *testing.T) {
	prefix := resolvertest.Uniq("/measure/large/")
	const n = 1000
	cli := newClient(t, exampleEtcd)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for i := 0; i < n; i += 100 {
		ops := make([]clientv3.Op, 0, 100)
		for j := i; j < i+100; j++ {
			addr := fmt.Sprintf("10.3.%d.%d:8080", j/256, j%256)
			val, err := etcd.EncodeEndpoint(lb.Endpoint{Addr: addr, Weight: 1 + j%3, Labels: map[string]string{"zone": fmt.Sprintf("z%d", j%4)}})
			require.NoError(t, err)
			ops = append(ops, clientv3.OpPut(prefix+addr, string(val)))
		}
		_, err := cli.Txn(ctx).Then(ops...).Commit()
		require.NoError(t, err)
	}
	rcli := newClient(t, exampleEtcd)

	// The resolver alone: the set handed to update is not kept.
	fs := resolvertest.MeasureFirstSet(t, etcd.Resolver{Client: rcli, Prefix: prefix}, n)
	assert.Positive(t, fs.Heap, "a running resolver over %d keys holds some memory", n)
	t.Logf("%d endpoints: first full set after %v; heap held by the running resolver %.0f KiB (%.0f B per endpoint; includes the client's watch stream and the in-process server's watcher)",
		n, fs.After.Round(time.Microsecond), float64(fs.Heap)/1024, float64(fs.Heap)/n)

	// The same into a Balancer (round robin), as Follow does.
	bal, err := lb.NewBalancer(lb.RoundRobin{})
	require.NoError(t, err)
	defer bal.Close()
	var before, after runtime.MemStats
	resolvertest.ReadMemStats(&before)
	applied := make(chan int, 1)
	start := time.Now()
	stop := resolvertest.FollowInto(t, etcd.Resolver{Client: rcli, Prefix: prefix}, bal, applied, func(bal *lb.Balancer) int { return len(bal.Backends()) })
	require.Equal(t, n, <-applied)
	first := time.Since(start)
	resolvertest.ReadMemStats(&after)
	held := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	stop()
	t.Logf("%d endpoints into a Balancer: first picker after %v; heap held by resolver + balancer %.0f KiB",
		n, first.Round(time.Microsecond), float64(held)/1024)
}
