package benchmarks

import "testing"

func BenchmarkGoJump(b *testing.B) {
	forSizes(b, Hash, "go-jump", func(b *testing.B, n int, parallel bool) {
		j := fixture(b, key(Hash, "go-jump", n), func() (*Jump, error) { return NewJump(Names(n)), nil })
		if !parallel {
			var s string
			for i := 0; i < b.N; i++ {
				s = j.Get(benchKeys[i&keyMask])
			}
			sinkString = s
			return
		}
		b.RunParallel(func(pb *testing.PB) {
			var s string
			for i := parallelStart(); pb.Next(); i++ {
				s = j.Get(benchKeys[i&keyMask])
			}
			sinkLen.Add(uint64(len(s)))
		})
	})
}
