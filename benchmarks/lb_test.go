package benchmarks

import (
	"testing"

	"github.com/go-lb/lb"
)

// Each lb picker type has its own loop, so that Pick is a direct call
// (a generic loop would call through a dictionary: one shape for all
// pointer types).
// loopRoundRobin calls lb.RoundRobinPicker.Pick directly.
func loopRoundRobin(b *testing.B, p *lb.RoundRobinPicker, parallel bool) {
	if !parallel {
		var be *lb.Backend
		for i := 0; i < b.N; i++ {
			be, _ = p.Pick("")
		}
		sinkAny = be
		return
	}
	b.RunParallel(func(pb *testing.PB) {
		var be *lb.Backend
		for pb.Next() {
			be, _ = p.Pick("")
		}
		sinkBackend(be)
	})
}

// loopRandom calls lb.RandomPicker.Pick directly.
func loopRandom(b *testing.B, p *lb.RandomPicker, parallel bool) {
	if !parallel {
		var be *lb.Backend
		for i := 0; i < b.N; i++ {
			be, _ = p.Pick("")
		}
		sinkAny = be
		return
	}
	b.RunParallel(func(pb *testing.PB) {
		var be *lb.Backend
		for pb.Next() {
			be, _ = p.Pick("")
		}
		sinkBackend(be)
	})
}

// loopWeightedRoundRobin calls lb.WeightedRoundRobinPicker.Pick directly.
func loopWeightedRoundRobin(b *testing.B, p *lb.WeightedRoundRobinPicker, parallel bool) {
	if !parallel {
		var be *lb.Backend
		for i := 0; i < b.N; i++ {
			be, _ = p.Pick("")
		}
		sinkAny = be
		return
	}
	b.RunParallel(func(pb *testing.PB) {
		var be *lb.Backend
		for pb.Next() {
			be, _ = p.Pick("")
		}
		sinkBackend(be)
	})
}

// loopWeightedRandom calls lb.WeightedRandomPicker.Pick directly.
func loopWeightedRandom(b *testing.B, p *lb.WeightedRandomPicker, parallel bool) {
	if !parallel {
		var be *lb.Backend
		for i := 0; i < b.N; i++ {
			be, _ = p.Pick("")
		}
		sinkAny = be
		return
	}
	b.RunParallel(func(pb *testing.PB) {
		var be *lb.Backend
		for pb.Next() {
			be, _ = p.Pick("")
		}
		sinkBackend(be)
	})
}

// loopRing calls lb.RingPicker.Pick directly.
func loopRing(b *testing.B, p *lb.RingPicker, parallel bool) {
	if !parallel {
		var be *lb.Backend
		for i := 0; i < b.N; i++ {
			be, _ = p.Pick(benchKeys[i&keyMask])
		}
		sinkAny = be
		return
	}
	b.RunParallel(func(pb *testing.PB) {
		var be *lb.Backend
		for i := parallelStart(); pb.Next(); i++ {
			be, _ = p.Pick(benchKeys[i&keyMask])
		}
		sinkBackend(be)
	})
}

// loopMaglev calls lb.MaglevPicker.Pick directly.
func loopMaglev(b *testing.B, p *lb.MaglevPicker, parallel bool) {
	if !parallel {
		var be *lb.Backend
		for i := 0; i < b.N; i++ {
			be, _ = p.Pick(benchKeys[i&keyMask])
		}
		sinkAny = be
		return
	}
	b.RunParallel(func(pb *testing.PB) {
		var be *lb.Backend
		for i := parallelStart(); pb.Next(); i++ {
			be, _ = p.Pick(benchKeys[i&keyMask])
		}
		sinkBackend(be)
	})
}

// loopAnchor calls lb.AnchorPicker.Pick directly.
func loopAnchor(b *testing.B, p *lb.AnchorPicker, parallel bool) {
	if !parallel {
		var be *lb.Backend
		for i := 0; i < b.N; i++ {
			be, _ = p.Pick(benchKeys[i&keyMask])
		}
		sinkAny = be
		return
	}
	b.RunParallel(func(pb *testing.PB) {
		var be *lb.Backend
		for i := parallelStart(); pb.Next(); i++ {
			be, _ = p.Pick(benchKeys[i&keyMask])
		}
		sinkBackend(be)
	})
}

func BenchmarkLb(b *testing.B) {
	forSizes(b, RoundRobin, "lb", func(b *testing.B, n int, parallel bool) {
		p := fixture(b, key(RoundRobin, "lb", n), func() (*lb.RoundRobinPicker, error) {
			return lb.RoundRobin{}.New(Endpoints(Names(n), nil))
		})
		loopRoundRobin(b, p, parallel)
	})
	forSizes(b, RoundRobin, "lb-stripes1", func(b *testing.B, n int, parallel bool) {
		p := fixture(b, key(RoundRobin, "lb-stripes1", n), func() (*lb.RoundRobinPicker, error) {
			return lb.RoundRobin{Stripes: 1}.New(Endpoints(Names(n), nil))
		})
		loopRoundRobin(b, p, parallel)
	})
	forSizes(b, Random, "lb", func(b *testing.B, n int, parallel bool) {
		p := fixture(b, key(Random, "lb", n), func() (*lb.RandomPicker, error) {
			return lb.Random{}.New(Endpoints(Names(n), nil))
		})
		loopRandom(b, p, parallel)
	})
	forSizes(b, WeightedRR, "lb", func(b *testing.B, n int, parallel bool) {
		p := fixture(b, key(WeightedRR, "lb", n), func() (*lb.WeightedRoundRobinPicker, error) {
			return lb.WeightedRoundRobin{}.New(Endpoints(Names(n), Weights(n)))
		})
		loopWeightedRoundRobin(b, p, parallel)
	})
	forSizes(b, WeightedRandom, "lb", func(b *testing.B, n int, parallel bool) {
		p := fixture(b, key(WeightedRandom, "lb", n), func() (*lb.WeightedRandomPicker, error) {
			return lb.WeightedRandom{}.New(Endpoints(Names(n), Weights(n)))
		})
		loopWeightedRandom(b, p, parallel)
	})
	for _, r := range []struct {
		id   string
		ring lb.Ring
	}{{"lb-ring", LbRing}, {"lb-ring-crc32", LbRingCRC32}, {"lb-ring-groupcache", LbRingGroupcache}} {
		forSizes(b, Hash, r.id, func(b *testing.B, n int, parallel bool) {
			p := fixture(b, key(Hash, r.id, n), func() (*lb.RingPicker, error) {
				return r.ring.New(Endpoints(Names(n), nil))
			})
			loopRing(b, p, parallel)
		})
	}
	forSizes(b, Hash, "lb-maglev", func(b *testing.B, n int, parallel bool) {
		p := fixture(b, key(Hash, "lb-maglev", n), func() (*lb.MaglevPicker, error) {
			return LbMaglev.New(Endpoints(Names(n), nil))
		})
		loopMaglev(b, p, parallel)
	})
	forSizes(b, Hash, "lb-anchor", func(b *testing.B, n int, parallel bool) {
		p := fixture(b, key(Hash, "lb-anchor", n), func() (*lb.AnchorPicker, error) {
			return NewLbAnchor().New(Endpoints(Names(n), nil))
		})
		loopAnchor(b, p, parallel)
	})
}

// sinkBackend keeps a parallel loop's last pick alive (a goroutine of
// RunParallel may make no pick at all).
func sinkBackend(be *lb.Backend) {
	if be != nil {
		sinkLen.Add(uint64(len(be.Addr())))
	}
}
