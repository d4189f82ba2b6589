package benchmarks

import "testing"

func BenchmarkGoMaglev(b *testing.B) {
	forSizes(b, Hash, "go-maglev", func(b *testing.B, n int, parallel bool) {
		m := fixture(b, key(Hash, "go-maglev", n), func() (*GoMaglev, error) { return NewGoMaglev(Names(n)), nil })
		if !parallel {
			var s string
			for i := 0; i < b.N; i++ {
				s = m.Get(benchKeys[i&keyMask])
			}
			sinkString = s
			return
		}
		b.RunParallel(func(pb *testing.PB) {
			var s string
			for i := parallelStart(); pb.Next(); i++ {
				s = m.Get(benchKeys[i&keyMask])
			}
			sinkLen.Add(uint64(len(s)))
		})
	})
}
