package benchmarks

import (
	"sync"
	"testing"

	"github.com/smallnest/weighted"
)

// smallnest/weighted's Next is not goroutine-safe (its documentation says
// so): the parallel benchmarks add the mutex its users need.
func BenchmarkSmallnest(b *testing.B) {
	forSizes(b, WeightedRR, "smallnest-SW", func(b *testing.B, n int, parallel bool) {
		w := fixture(b, key(WeightedRR, "smallnest-SW", n), func() (*weighted.SW, error) {
			return NewSmallnestSW(Names(n), Weights(n)), nil
		})
		if !parallel {
			var v any
			for i := 0; i < b.N; i++ {
				v = w.Next()
			}
			sinkAny = v
			return
		}
		var mu sync.Mutex
		b.RunParallel(func(pb *testing.PB) {
			var v any
			for pb.Next() {
				mu.Lock()
				v = w.Next()
				mu.Unlock()
			}
			if v != nil {
				sinkLen.Add(1)
			}
		})
	})
	forSizes(b, WeightedRandom, "smallnest-RandW", func(b *testing.B, n int, parallel bool) {
		w := fixture(b, key(WeightedRandom, "smallnest-RandW", n), func() (*weighted.RandW, error) {
			return NewSmallnestRandW(Names(n), Weights(n)), nil
		})
		if !parallel {
			var v any
			for i := 0; i < b.N; i++ {
				v = w.Next()
			}
			sinkAny = v
			return
		}
		var mu sync.Mutex
		b.RunParallel(func(pb *testing.PB) {
			var v any
			for pb.Next() {
				mu.Lock()
				v = w.Next()
				mu.Unlock()
			}
			if v != nil {
				sinkLen.Add(1)
			}
		})
	})
}
