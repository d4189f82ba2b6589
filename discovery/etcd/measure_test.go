package etcd_test

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/go-lb/lb"
	"github.com/go-lb/lb/discovery/etcd"
)

// These tests measure; they assert only correctness and log the figures.
// Run them alone, without -race, for figures worth quoting:
//
//	cd discovery/etcd && go test -run TestMeasure -count=1 -v .

// followInto runs r into bal and sends, after each Update, the balancer's
// backend count on applied.
func followInto(t *testing.T, r etcd.Resolver, bal *lb.Balancer, applied chan<- []string) func() {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- r.Watch(ctx, func(eps []lb.Endpoint) error {
			if err := bal.Update(eps); err != nil {
				return err
			}
			addrs := make([]string, 0, len(eps))
			for _, b := range bal.Backends() {
				addrs = append(addrs, b.Addr())
			}
			select {
			case applied <- addrs:
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

// From a change in etcd (a put or a delete, timed from the request) to the
// balancer's new picker, over 100 changes.
func TestMeasureChangeLatency(t *testing.T) {
	prefix := uniq("/measure/latency/")
	const changes = 100
	cli := newClient(t, exampleEtcd)
	put(t, cli, prefix+"base", "10.1.0.1:80")
	bal, err := lb.NewBalancer(lb.RoundRobin{})
	require.NoError(t, err)
	defer bal.Close()
	applied := make(chan []string, 1)
	stop := followInto(t, etcd.Resolver{Client: newClient(t, exampleEtcd), Prefix: prefix}, bal, applied)
	defer stop()
	require.Equal(t, []string{"10.1.0.1:80"}, <-applied)

	total := make([]time.Duration, 0, changes)
	afterCommit := make([]time.Duration, 0, changes)
	for i := 0; i < changes; i++ {
		addr := fmt.Sprintf("10.2.0.%d:80", i/2)
		want := []string{"10.1.0.1:80", addr}
		start := time.Now()
		if i%2 == 0 {
			put(t, cli, prefix+addr, addr)
		} else {
			del(t, cli, prefix+addr)
			want = want[:1]
		}
		committed := time.Now()
		got := <-applied
		end := time.Now()
		require.Equal(t, want, got, "change %d", i)
		total = append(total, end.Sub(start))
		afterCommit = append(afterCommit, end.Sub(committed))
	}
	select {
	case got := <-applied:
		t.Fatalf("an extra set was reported: %v", got)
	default:
	}
	med, maxd := medianMax(total)
	cmed, cmax := medianMax(afterCommit)
	t.Logf("change in etcd -> new picker, over %d changes: median %v, max %v (budget: median < 100ms)", changes, med, maxd)
	t.Logf("of which after the write was acknowledged: median %v, max %v", cmed, cmax)
}

// heapAlloc reads the memory statistics after two garbage collections
// (objects in sync.Pools survive one).
func heapAlloc(ms *runtime.MemStats) {
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(ms)
}

func medianMax(ds []time.Duration) (time.Duration, time.Duration) {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2], s[len(s)-1]
}

// 1,000 endpoints under one prefix: time from the start of Watch to the
// first full set, and the heap the running resolver holds.
func TestMeasureLargePrefix(t *testing.T) {
	prefix := uniq("/measure/large/")
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
	var before, after runtime.MemStats
	heapAlloc(&before)
	got := make(chan int, 1)
	wctx, wcancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		done <- etcd.Resolver{Client: rcli, Prefix: prefix}.Watch(wctx, func(eps []lb.Endpoint) error {
			got <- len(eps)
			return nil
		})
	}()
	require.Equal(t, n, <-got)
	first := time.Since(start)
	heapAlloc(&after)
	held := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	wcancel()
	require.ErrorIs(t, <-done, context.Canceled)
	assert.Positive(t, held, "a running resolver over %d keys holds some memory", n)
	t.Logf("%d endpoints: first full set after %v; heap held by the running resolver %.0f KiB (%.0f B per endpoint; includes the client's watch stream and the in-process server's watcher)",
		n, first.Round(time.Microsecond), float64(held)/1024, float64(held)/n)

	// The same into a Balancer (round robin), as Follow does.
	bal, err := lb.NewBalancer(lb.RoundRobin{})
	require.NoError(t, err)
	defer bal.Close()
	heapAlloc(&before)
	applied := make(chan []string, 1)
	start = time.Now()
	stop := followInto(t, etcd.Resolver{Client: rcli, Prefix: prefix}, bal, applied)
	require.Len(t, <-applied, n)
	first = time.Since(start)
	heapAlloc(&after)
	held = int64(after.HeapAlloc) - int64(before.HeapAlloc)
	stop()
	t.Logf("%d endpoints into a Balancer: first picker after %v; heap held by resolver + balancer %.0f KiB",
		n, first.Round(time.Microsecond), float64(held)/1024)
}
