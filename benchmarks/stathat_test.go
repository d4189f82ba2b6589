package benchmarks

import (
	"testing"

	"github.com/stathat/consistent"
)

func BenchmarkStathat(b *testing.B) {
	for _, r := range StathatReplicas {
		id := "stathat-r" + itoa(r)
		forSizes(b, Hash, id, func(b *testing.B, n int, parallel bool) {
			c := fixture(b, key(Hash, id, n), func() (*consistent.Consistent, error) { return NewStathat(Names(n), r), nil })
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
}
