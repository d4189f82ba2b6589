package zookeeper_test

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-lb/lb"
	"github.com/go-lb/lb/discovery/zookeeper"
)

// These tests measure; they assert only correctness and log the figures.
// Run them alone, without -race, for figures worth quoting:
//
//	cd discovery/zookeeper && go test -run TestMeasure -count=1 -v .

// followInto runs r into bal and sends, after each Update, the balancer's
// addresses on applied.
func followInto(t *testing.T, r zookeeper.Resolver, bal *lb.Balancer, applied chan<- string) func() {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- r.Watch(ctx, func(eps []lb.Endpoint) error {
			if err := bal.Update(eps); err != nil {
				return err
			}
			select {
			case applied <- backends(bal):
			case <-ctx.Done():
			}
			return nil
		})
	}()
	return func() {
		cancel()
		require.ErrorIs(t, <-done, context.Canceled)
	}
}

func medianMax(ds []time.Duration) (time.Duration, time.Duration) {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2], s[len(s)-1]
}

// From a change in ZooKeeper (a child created or deleted, timed from the
// request) to the balancer's new picker, over 100 changes.
func TestMeasureChangeLatency(t *testing.T) {
	const changes = 100
	admin := connectShared(t)
	p := uniq("/measure/latency")
	put(t, admin, p+"/base", "10.1.0.1:80")
	bal, err := lb.NewBalancer(lb.RoundRobin{})
	require.NoError(t, err)
	defer bal.Close()
	applied := make(chan string, 1)
	stop := followInto(t, zookeeper.Resolver{Conn: connectShared(t), Path: p}, bal, applied)
	defer stop()
	require.Equal(t, "[10.1.0.1:80]", <-applied)

	total := make([]time.Duration, 0, changes)
	afterAck := make([]time.Duration, 0, changes)
	for i := 0; i < changes; i++ {
		addr := fmt.Sprintf("10.2.0.%d:80", i/2)
		want := "[10.1.0.1:80 " + addr + "]"
		start := time.Now()
		if i%2 == 0 {
			_, err = admin.Create(p+"/"+addr, nil, zk.FlagPersistent, zk.WorldACL(zk.PermAll))
		} else {
			err = admin.Delete(p+"/"+addr, -1)
			want = "[10.1.0.1:80]"
		}
		require.NoError(t, err)
		acked := time.Now()
		got := <-applied
		end := time.Now()
		require.Equal(t, want, got, "change %d", i)
		total = append(total, end.Sub(start))
		afterAck = append(afterAck, end.Sub(acked))
	}
	select {
	case got := <-applied:
		t.Fatalf("an extra set was reported: %v", got)
	default:
	}
	med, maxd := medianMax(total)
	amed, amax := medianMax(afterAck)
	t.Logf("change in ZooKeeper -> new picker, over %d changes: median %v, max %v (budget: median < 100ms)", changes, med, maxd)
	t.Logf("of which after the write was acknowledged: median %v, max %v", amed, amax)
}

// heapAlloc reads the memory statistics after two garbage collections
// (objects in sync.Pools survive one).
func heapAlloc(ms *runtime.MemStats) {
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(ms)
}

// 1,000 children: time from the start of Watch to the first full set, and
// the heap and goroutines (one per watch) the running resolver holds.
func TestMeasureThousandChildren(t *testing.T) {
	const n = 1000
	admin := connectShared(t)
	p := uniq("/measure/large")
	createMany(t, admin, p, n)
	conn := connectShared(t)

	// The resolver alone: the set handed to update is not kept.
	var before, after runtime.MemStats
	heapAlloc(&before)
	goroutines := runtime.NumGoroutine()
	got := make(chan int, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		done <- zookeeper.Resolver{Conn: conn, Path: p}.Watch(ctx, func(eps []lb.Endpoint) error {
			got <- len(eps)
			return nil
		})
	}()
	require.Equal(t, n, <-got)
	first := time.Since(start)
	heapAlloc(&after)
	held := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	stacks := int64(after.StackInuse) - int64(before.StackInuse)
	more := runtime.NumGoroutine() - goroutines
	cancel()
	require.ErrorIs(t, <-done, context.Canceled)
	assert.Positive(t, held, "a running resolver over %d children holds some memory", n)
	t.Logf("%d children: first full set after %v; the running resolver holds %.0f KiB of heap (%.0f B per endpoint, the client's watch table included) and %d goroutines (one per watch) with %.0f KiB of stacks",
		n, first.Round(time.Microsecond), float64(held)/1024, float64(held)/n, more, float64(stacks)/1024)

	// The same into a Balancer (round robin), as Follow does, through a
	// connection of the resolver's own (its connect and session included).
	bal, err := lb.NewBalancer(lb.RoundRobin{})
	require.NoError(t, err)
	defer bal.Close()
	applied := make(chan string, 1)
	start = time.Now()
	stop := followInto(t, zookeeper.Resolver{Servers: []string{exampleZK}, Path: p}, bal, applied)
	<-applied
	first = time.Since(start)
	require.Len(t, bal.Backends(), n)
	stop()
	t.Logf("%d children into a Balancer, with the resolver's own connection: first picker after %v", n, first.Round(time.Microsecond))
}
