package benchmarks

import (
	"testing"

	"github.com/serialx/hashring"
)

func BenchmarkSerialx(b *testing.B) {
	for _, p := range SerialxPoints {
		id := "serialx-w" + itoa(p)
		forSizes(b, Hash, id, func(b *testing.B, n int, parallel bool) {
			r := fixture(b, key(Hash, id, n), func() (*hashring.HashRing, error) { return NewSerialx(Names(n), p), nil })
			if !parallel {
				var s string
				for i := 0; i < b.N; i++ {
					s, _ = r.GetNode(benchKeys[i&keyMask])
				}
				sinkString = s
				return
			}
			b.RunParallel(func(pb *testing.PB) {
				var s string
				for i := parallelStart(); pb.Next(); i++ {
					s, _ = r.GetNode(benchKeys[i&keyMask])
				}
				sinkLen.Add(uint64(len(s)))
			})
		})
	}
}
