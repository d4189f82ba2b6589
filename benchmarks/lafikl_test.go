package benchmarks

import (
	"testing"

	"github.com/lafikl/consistent"
)

func BenchmarkLafikl(b *testing.B) {
	forSizes(b, Hash, "lafikl", func(b *testing.B, n int, parallel bool) {
		c := fixture(b, key(Hash, "lafikl", n), func() (*consistent.Consistent, error) { return NewLafikl(Names(n)), nil })
		if !parallel {
			var s string
			for i := 0; i < b.N; i++ {
				s, _ = c.Get(benchKeys[i&keyMask])
			}
			sinkString = s
			return
		}
		b.RunParallel(func(pb *testing.PB) {
			var s string
			for i := parallelStart(); pb.Next(); i++ {
				s, _ = c.Get(benchKeys[i&keyMask])
			}
			sinkLen.Add(uint64(len(s)))
		})
	})
}
