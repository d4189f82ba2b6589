package benchmarks

import "testing"

func BenchmarkAtomic(b *testing.B) {
	forSizes(b, RoundRobin, "atomic", func(b *testing.B, n int, parallel bool) {
		a := fixture(b, key(RoundRobin, "atomic", n), func() (*AtomicRR, error) { return NewAtomicRR(Names(n)), nil })
		if !parallel {
			var s string
			for i := 0; i < b.N; i++ {
				s = a.Next()
			}
			sinkString = s
			return
		}
		b.RunParallel(func(pb *testing.PB) {
			var s string
			for pb.Next() {
				s = a.Next()
			}
			sinkLen.Add(uint64(len(s)))
		})
	})
}
