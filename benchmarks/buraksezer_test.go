package benchmarks

import (
	"testing"

	"github.com/buraksezer/consistent"
)

// buraksezer/consistent's LocateKey takes []byte: it gets the keys as byte
// slices made in advance, so no conversion is measured.
func BenchmarkBuraksezer(b *testing.B) {
	for _, p := range BuraksezerPartitions {
		id := "buraksezer-p" + itoa(p)
		forSizes(b, Hash, id, func(b *testing.B, n int, parallel bool) {
			c := fixture(b, key(Hash, id, n), func() (*consistent.Consistent, error) { return NewBuraksezer(Names(n), p) })
			if !parallel {
				var m consistent.Member
				for i := 0; i < b.N; i++ {
					m = c.LocateKey(benchKeyBytes[i&keyMask])
				}
				sinkAny = m
				return
			}
			b.RunParallel(func(pb *testing.PB) {
				var m consistent.Member
				for i := parallelStart(); pb.Next(); i++ {
					m = c.LocateKey(benchKeyBytes[i&keyMask])
				}
				if m != nil {
					sinkLen.Add(1)
				}
			})
		})
	}
}
