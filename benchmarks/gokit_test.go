package benchmarks

import (
	"sync"
	"testing"

	"github.com/go-kit/kit/endpoint"
	kitlb "github.com/go-kit/kit/sd/lb"
)

var sinkEndpoint endpoint.Endpoint

func BenchmarkGoKit(b *testing.B) {
	forSizes(b, RoundRobin, "go-kit", func(b *testing.B, n int, parallel bool) {
		rr := fixture(b, key(RoundRobin, "go-kit", n), func() (kitlb.Balancer, error) { return NewGoKitRoundRobin(Names(n)), nil })
		if !parallel {
			var ep endpoint.Endpoint
			for i := 0; i < b.N; i++ {
				ep, _ = rr.Endpoint()
			}
			sinkEndpoint = ep
			return
		}
		b.RunParallel(func(pb *testing.PB) {
			var ep endpoint.Endpoint
			for pb.Next() {
				ep, _ = rr.Endpoint()
			}
			if ep != nil {
				sinkLen.Add(1)
			}
		})
	})
	// go-kit's random balancer shares one *rand.Rand without a lock: its
	// parallel benchmark adds the mutex its users need.
	forSizes(b, Random, "go-kit", func(b *testing.B, n int, parallel bool) {
		r := fixture(b, key(Random, "go-kit", n), func() (kitlb.Balancer, error) { return NewGoKitRandom(Names(n)), nil })
		if !parallel {
			var ep endpoint.Endpoint
			for i := 0; i < b.N; i++ {
				ep, _ = r.Endpoint()
			}
			sinkEndpoint = ep
			return
		}
		var mu sync.Mutex
		b.RunParallel(func(pb *testing.PB) {
			var ep endpoint.Endpoint
			for pb.Next() {
				mu.Lock()
				ep, _ = r.Endpoint()
				mu.Unlock()
			}
			if ep != nil {
				sinkLen.Add(1)
			}
		})
	})
}
