package benchmarks

import (
	"testing"

	"github.com/golang/groupcache/consistenthash"
)

func BenchmarkGroupcache(b *testing.B) {
	for _, r := range GroupcacheReplicas {
		id := groupcacheID(r)
		forSizes(b, Hash, id, func(b *testing.B, n int, parallel bool) {
			m := fixture(b, key(Hash, id, n), func() (*consistenthash.Map, error) { return NewGroupcache(Names(n), r), nil })
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
}
