package benchmarks

import (
	"testing"

	rendezvous "github.com/dgryski/go-rendezvous"
)

func BenchmarkGoRendezvous(b *testing.B) {
	forSizes(b, Hash, "go-rendezvous", func(b *testing.B, n int, parallel bool) {
		r := fixture(b, key(Hash, "go-rendezvous", n), func() (*rendezvous.Rendezvous, error) { return NewRendezvous(Names(n)), nil })
		if !parallel {
			var s string
			for i := 0; i < b.N; i++ {
				s = r.Lookup(benchKeys[i&keyMask])
			}
			sinkString = s
			return
		}
		b.RunParallel(func(pb *testing.PB) {
			var s string
			for i := parallelStart(); pb.Next(); i++ {
				s = r.Lookup(benchKeys[i&keyMask])
			}
			sinkLen.Add(uint64(len(s)))
		})
	})
}
