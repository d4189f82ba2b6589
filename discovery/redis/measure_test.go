package redis_test

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-lb/lb"
	lbredis "github.com/go-lb/lb/discovery/redis"
)

// These tests measure; they assert only correctness and log the figures.
// Run them alone, without -race, for figures worth quoting:
//
//	cd discovery/redis && go test -run TestMeasure -count=1 -v .

// followInto runs r into bal and sends, after each Update, the balancer's
// backend addresses on applied.
func followInto(t *testing.T, r lbredis.Resolver, bal *lb.Balancer, applied chan<- string) func() {
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
	stop := followInto(t, lbredis.Resolver{Client: shared.client(t), Service: svc}, bal, applied)
	defer stop()
	require.Equal(t, "[10.1.0.1:80]", <-applied)

	byHand := make([]time.Duration, 0, changes)
	for i := 0; i < changes; i++ {
		addr := fmt.Sprintf("10.2.0.%d:80", i/2)
		want := "[10.1.0.1:80 " + addr + "]"
		start := time.Now()
		if i%2 == 0 {
			put(t, cli, svc, addr, addr, 0)
		} else {
			del(t, cli, svc, addr)
			want = "[10.1.0.1:80]"
		}
		got := <-applied
		byHand = append(byHand, time.Since(start))
		require.Equal(t, want, got, "change %d", i)
	}

	registered := make([]time.Duration, 0, changes)
	var reg *lbredis.Registration
	for i := 0; i < changes; i++ {
		addr := fmt.Sprintf("10.3.0.%d:80", i/2)
		want := "[10.1.0.1:80 " + addr + "]"
		start := time.Now()
		if i%2 == 0 {
			reg, err = lbredis.Register(bg(t), cli, svc, lb.Endpoint{Addr: addr}, lbredis.RegisterOptions{})
			require.NoError(t, err)
		} else {
			require.NoError(t, reg.Close())
			want = "[10.1.0.1:80]"
		}
		got := <-applied
		registered = append(registered, time.Since(start))
		require.Equal(t, want, got, "change %d", i)
	}
	select {
	case got := <-applied:
		t.Fatalf("an extra set was reported: %v", got)
	default:
	}
	med, maxd := medianMax(byHand)
	t.Logf("change written by hand -> new picker, over %d changes: median %v, max %v (budget: median < 100ms)", changes, med, maxd)
	med, maxd = medianMax(registered)
	t.Logf("Register / Close -> new picker, over %d changes: median %v, max %v", changes, med, maxd)
}

// heapAlloc reads the memory statistics after two garbage collections
// (objects in sync.Pools survive one).
func heapAlloc(ms *runtime.MemStats) {
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(ms)
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
	var before, after runtime.MemStats
	heapAlloc(&before)
	got := make(chan int, 1)
	wctx, wcancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		done <- lbredis.Resolver{Client: rcli, Service: svc}.Watch(wctx, func(eps []lb.Endpoint) error {
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
	assert.Positive(t, held, "a running resolver over %d instances holds some memory", n)
	t.Logf("%d instances: first full set after %v; heap held by the running resolver %.0f KiB (%.0f B per instance; includes the subscription's connection)",
		n, first.Round(time.Microsecond), float64(held)/1024, float64(held)/n)

	// The same into a Balancer (round robin), as Follow does.
	bal, err := lb.NewBalancer(lb.RoundRobin{})
	require.NoError(t, err)
	defer bal.Close()
	applied := make(chan string, 1)
	start = time.Now()
	stop := followInto(t, lbredis.Resolver{Client: rcli, Service: svc}, bal, applied)
	<-applied
	first = time.Since(start)
	require.Len(t, bal.Backends(), n)
	stop()
	t.Logf("%d instances into a Balancer: first picker after %v", n, first.Round(time.Microsecond))
}
