package resolvertest

import (
	"context"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/go-lb/lb"
)

// FollowInto runs r.Watch into bal in the background, as lb.Follow does,
// and after each Update sends report(bal) on applied (say, the backends'
// addresses, or the time). The returned stop cancels the Watch and
// requires that it returned context.Canceled.
func FollowInto[T any](t testing.TB, r lb.Resolver, bal *lb.Balancer, applied chan<- T, report func(*lb.Balancer) T) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- r.Watch(ctx, func(eps []lb.Endpoint) error {
			if err := bal.Update(eps); err != nil {
				return err
			}
			select {
			case applied <- report(bal):
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

// TimeChanges makes n changes, one after another, and times each: change
// makes change i (a write to the registry) and returns what applied must
// carry once the balancer took it; total runs from the start of the write
// to the arrival of that value, afterWrite from the write's return (its
// acknowledgement) to the arrival.
func TimeChanges[T any](t testing.TB, n int, applied <-chan T, change func(i int) T) (total, afterWrite []time.Duration) {
	t.Helper()
	total = make([]time.Duration, 0, n)
	afterWrite = make([]time.Duration, 0, n)
	for i := 0; i < n; i++ {
		start := time.Now()
		want := change(i)
		written := time.Now()
		got := <-applied
		end := time.Now()
		require.Equal(t, want, got, "change %d", i)
		total = append(total, end.Sub(start))
		afterWrite = append(afterWrite, end.Sub(written))
	}
	return total, afterWrite
}

// NothingMore fails the test if a value is waiting on applied: a set was
// reported that no change called for.
func NothingMore[T any](t testing.TB, applied <-chan T) {
	t.Helper()
	select {
	case got := <-applied:
		t.Fatalf("an extra set was reported: %v", got)
	default:
	}
}

// MedianMax returns the median and the largest of ds (which it does not
// reorder); ds must not be empty.
func MedianMax(ds []time.Duration) (median, largest time.Duration) {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2], s[len(s)-1]
}

// ReadMemStats reads the memory statistics after two garbage collections
// (objects in sync.Pools survive one).
func ReadMemStats(ms *runtime.MemStats) {
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(ms)
}

// FirstSet is what MeasureFirstSet saw of a running resolver.
type FirstSet struct {
	// After is the time from the start of Watch to its first set.
	After time.Duration
	// Heap is the heap the running resolver held then, in bytes (the set
	// it reported is not kept).
	Heap int64
	// Stacks is the goroutine stack memory it held then, in bytes.
	Stacks int64
	// Goroutines is how many more goroutines ran then than before Watch
	// started (Watch's own included).
	Goroutines int
}

// MeasureFirstSet runs r.Watch until its first set, which must hold n
// endpoints, measures the time that took and what the running resolver
// holds then, and stops it, requiring that Watch returned
// context.Canceled.
func MeasureFirstSet(t testing.TB, r lb.Resolver, n int) FirstSet {
	t.Helper()
	var before, after runtime.MemStats
	ReadMemStats(&before)
	goroutines := runtime.NumGoroutine()
	got := make(chan int, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		done <- r.Watch(ctx, func(eps []lb.Endpoint) error {
			select {
			case got <- len(eps):
			case <-ctx.Done():
			}
			return nil
		})
	}()
	require.Equal(t, n, <-got)
	first := time.Since(start)
	ReadMemStats(&after)
	fs := FirstSet{
		After:      first,
		Heap:       int64(after.HeapAlloc) - int64(before.HeapAlloc),
		Stacks:     int64(after.StackInuse) - int64(before.StackInuse),
		Goroutines: runtime.NumGoroutine() - goroutines,
	}
	cancel()
	require.ErrorIs(t, <-done, context.Canceled)
	return fs
}
