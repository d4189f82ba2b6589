package lb

import (
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"
)

// Run with: go test -run '^$' -bench . -benchmem -count 5 .
// (make bench). Keys are 16-32 random bytes from a pool indexed by a plain
// counter, so key generation is not measured and no key repeats for 65,536
// picks in a row (a smaller pool keeps any table in cache).

var (
	sinkBackend  *Backend
	sinkUint     uint64
	sinkParallel atomic.Pointer[Backend]
)

const keyPool = 65536

func benchKeys() []string {
	r := rand.New(rand.NewPCG(7, 7))
	keys := make([]string, keyPool)
	for i := range keys {
		b := make([]byte, 16+r.IntN(17))
		for j := range b {
			b[j] = byte('a' + r.IntN(26))
		}
		keys[i] = string(b)
	}
	return keys
}

func benchEndpoints(n int, weighted bool) []Endpoint {
	eps := make([]Endpoint, n)
	for i := range eps {
		eps[i] = Endpoint{Addr: fmt.Sprintf("10.%d.%d.%d:8080", i>>16&255, i>>8&255, i&255)}
		if weighted {
			eps[i].Weight = 1 + i%5
		}
	}
	return eps
}

type benchCase struct {
	name     string
	builder  Builder
	weighted bool
	keyed    bool
}

var benchCases = []benchCase{
	{name: "RoundRobin", builder: RoundRobin{}},
	{name: "WeightedRoundRobin", builder: WeightedRoundRobin{}, weighted: true},
	{name: "Random", builder: Random{}},
	{name: "WeightedRandom", builder: WeightedRandom{}, weighted: true},
	{name: "P2C", builder: P2C{}},
	{name: "Ring", builder: Ring{}, keyed: true},
	{name: "RingBounded", builder: Ring{LoadFactor: 1.25}, keyed: true},
	{name: "RingCRC32", builder: Ring{Hash: CRC32}, keyed: true},
	{name: "Maglev", builder: Maglev{}, keyed: true},
	{name: "Anchor", builder: &Anchor{}, keyed: true},
	{name: "RingGroupcache", builder: Ring{Compat: CompatGroupcache}, keyed: true},
	{name: "RingNginx", builder: Ring{Compat: CompatNginx}, keyed: true},
	{name: "RingHash", builder: Ring{Compat: CompatRingHash}, keyed: true},
}

// BenchmarkBareCounter is the floor a round robin is held to: one shared
// atomic counter and nothing else.
func BenchmarkBareCounter(b *testing.B) {
	var c atomic.Uint64
	b.Run("serial", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			sinkUint = c.Add(1)
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			var s uint64
			for pb.Next() {
				s += c.Add(1)
			}
			atomic.AddUint64(&sinkUint, s)
		})
	})
}

// BenchmarkDirect calls the concrete pickers, as an application using a
// strategy alone does (and as the bare counter and the peers in
// benchmarks/ are called): the same work as BenchmarkPick without the
// interface call (about 1-2 ns) that a Balancer pays.
func BenchmarkDirect(b *testing.B) {
	keys := benchKeys()
	eps, weps := benchEndpoints(100, false), benchEndpoints(100, true)
	rr, err := RoundRobin{}.New(eps)
	if err != nil {
		b.Fatal(err)
	}
	wrr, err := WeightedRoundRobin{}.New(weps)
	if err != nil {
		b.Fatal(err)
	}
	ring, err := Ring{}.New(eps)
	if err != nil {
		b.Fatal(err)
	}
	mag, err := Maglev{}.New(eps)
	if err != nil {
		b.Fatal(err)
	}
	// Each loop is written out so that the method call is direct (and
	// inlined where the compiler can).
	b.Run("RoundRobin/N=100/serial", func(b *testing.B) {
		b.ReportAllocs()
		var be *Backend
		for i := 0; i < b.N; i++ {
			be, _ = rr.Pick("")
		}
		sinkBackend = be
	})
	b.Run("RoundRobin/N=100/parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			var be *Backend
			for pb.Next() {
				be, _ = rr.Pick("")
			}
			sinkParallel.Store(be)
		})
	})
	b.Run("WeightedRoundRobin/N=100/serial", func(b *testing.B) {
		b.ReportAllocs()
		var be *Backend
		for i := 0; i < b.N; i++ {
			be, _ = wrr.Pick("")
		}
		sinkBackend = be
	})
	b.Run("WeightedRoundRobin/N=100/parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			var be *Backend
			for pb.Next() {
				be, _ = wrr.Pick("")
			}
			sinkParallel.Store(be)
		})
	})
	b.Run("Ring/N=100/serial", func(b *testing.B) {
		b.ReportAllocs()
		var be *Backend
		for i := 0; i < b.N; i++ {
			be, _ = ring.Pick(keys[i&(keyPool-1)])
		}
		sinkBackend = be
	})
	b.Run("Ring/N=100/parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			var be *Backend
			for i := 0; pb.Next(); i++ {
				be, _ = ring.Pick(keys[i&(keyPool-1)])
			}
			sinkParallel.Store(be)
		})
	})
	b.Run("Maglev/N=100/serial", func(b *testing.B) {
		b.ReportAllocs()
		var be *Backend
		for i := 0; i < b.N; i++ {
			be, _ = mag.Pick(keys[i&(keyPool-1)])
		}
		sinkBackend = be
	})
	b.Run("Maglev/N=100/parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			var be *Backend
			for i := 0; pb.Next(); i++ {
				be, _ = mag.Pick(keys[i&(keyPool-1)])
			}
			sinkParallel.Store(be)
		})
	})
}

func BenchmarkPick(b *testing.B) {
	keys := benchKeys()
	for _, bc := range benchCases {
		for _, n := range []int{10, 100, 1000} {
			bs, err := NewBackends(benchEndpoints(n, bc.weighted))
			if err != nil {
				b.Fatal(err)
			}
			p, err := bc.builder.Build(bs)
			if err != nil {
				b.Fatal(err)
			}
			b.Run(fmt.Sprintf("%s/N=%d/serial", bc.name, n), func(b *testing.B) {
				b.ReportAllocs()
				var be *Backend
				for i := 0; i < b.N; i++ {
					be, _ = p.Pick(keys[i&(keyPool-1)])
				}
				sinkBackend = be
			})
			b.Run(fmt.Sprintf("%s/N=%d/parallel", bc.name, n), func(b *testing.B) {
				b.ReportAllocs()
				var seed atomic.Uint32
				b.RunParallel(func(pb *testing.PB) {
					i := int(seed.Add(1)) * 977
					var be *Backend
					for pb.Next() {
						be, _ = p.Pick(keys[i&(keyPool-1)])
						i++
					}
					sinkParallel.Store(be)
				})
			})
		}
	}
}

// BenchmarkBalancerPickDone is the full path of one call through a
// Balancer: pick, then report a success.
func BenchmarkBalancerPickDone(b *testing.B) {
	keys := benchKeys()
	for _, bc := range benchCases {
		bal, err := NewBalancer(bc.builder, WithEndpoints(benchEndpoints(100, bc.weighted)))
		if err != nil {
			b.Fatal(err)
		}
		benchPickDone(b, bc.name+"/N=100", bal, keys)
		bal.Close()
	}
}

// benchPickDone runs name/serial and name/parallel: Pick then Done through
// bal, cycling keys.
func benchPickDone(b *testing.B, name string, bal *Balancer, keys []string) {
	b.Run(name+"/serial", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			pk, _ := bal.Pick(keys[i&(keyPool-1)])
			pk.Done(nil, 0)
		}
	})
	b.Run(name+"/parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				pk, _ := bal.Pick(keys[i&(keyPool-1)])
				pk.Done(nil, 0)
				i++
			}
		})
	})
}

func BenchmarkBuild(b *testing.B) {
	for _, bc := range benchCases {
		bs, err := NewBackends(benchEndpoints(1000, bc.weighted))
		if err != nil {
			b.Fatal(err)
		}
		b.Run(bc.name+"/N=1000", func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if _, err := bc.builder.Build(bs); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkPickDoneOneBackend measures Pick+Done from all Ps on one
// backend, the worst case for the Backend's counters: every call moves
// their cache line between cores (see the Backend's layout).
func BenchmarkPickDoneOneBackend(b *testing.B) {
	for _, bc := range []struct {
		name    string
		builder Builder
	}{{"RoundRobin", RoundRobin{}}, {"P2C", P2C{}}} {
		bal, err := NewBalancer(bc.builder, WithEndpoints(Addrs("10.0.0.1:80")))
		if err != nil {
			b.Fatal(err)
		}
		b.Run(bc.name+"/parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					pk, err := bal.Pick("")
					if err != nil {
						b.Error(err)
						return
					}
					pk.Done(nil, time.Millisecond)
				}
			})
		})
		bal.Close()
	}
}
