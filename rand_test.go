package lb

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// seededBuilders returns every strategy with Rand set to a PCG seeded with
// seed (Stripes: 1 where there are stripes: the stripe a goroutine uses
// depends on its stack address).
func seededBuilders(seed uint64) map[string]Builder {
	src := func() rand.Source { return rand.NewPCG(seed, 7) }
	return map[string]Builder{
		"RoundRobin":         RoundRobin{Stripes: 1, Rand: src()},
		"WeightedRoundRobin": WeightedRoundRobin{Stripes: 1, Rand: src()},
		"Random":             Random{Rand: src()},
		"WeightedRandom":     WeightedRandom{Rand: src()},
		"P2C":                P2C{Rand: src()},
		"P2CWeighted":        P2C{Rand: src()},
		"Ring":               Ring{Rand: src()},
		"RingBounded":        Ring{LoadFactor: 1.25, Rand: src()},
		"Maglev":             Maglev{Rand: src()},
	}
}

// picksOf builds a Balancer with b over 20 backends (weighted ones for the
// weighted strategies) and returns the addresses of n picks with the empty
// key, each followed by a PickNext (a retry) that is kept in flight for a
// while, so that P2C and bounded loads see changing loads.
func picksOf(t *testing.T, name string, b Builder, n int) []string {
	t.Helper()
	eps := make([]Endpoint, 20)
	for i := range eps {
		eps[i] = Endpoint{Addr: fmt.Sprintf("10.0.0.%d:80", i+1)}
		if name == "WeightedRoundRobin" || name == "WeightedRandom" || name == "P2CWeighted" {
			eps[i].Weight = 1 + i%4
		}
	}
	bal, err := NewBalancer(b, WithEndpoints(eps))
	require.NoError(t, err)
	defer bal.Close()
	var out []string
	var held []Pick
	for i := 0; i < n; i++ {
		p, err := bal.Pick("")
		require.NoError(t, err)
		q, err := bal.PickNext("", []*Backend{p.Backend})
		require.NoError(t, err)
		out = append(out, p.Addr(), q.Addr())
		p.Done(nil, 0)
		held = append(held, q)
		if len(held) == 8 {
			for _, h := range held {
				h.Done(nil, 0)
			}
			held = held[:0]
		}
	}
	return out
}

// With a seeded Rand, every strategy makes the same choices in every run;
// another seed makes others.
func TestSeededPickersRepeat(t *testing.T) {
	for name := range seededBuilders(1) {
		t.Run(name, func(t *testing.T) {
			a := picksOf(t, name, seededBuilders(1)[name], 500)
			b := picksOf(t, name, seededBuilders(1)[name], 500)
			c := picksOf(t, name, seededBuilders(2)[name], 500)
			assert.Equal(t, a, b, "same seed, same picks")
			assert.NotEqual(t, a, c, "another seed, other picks")
		})
	}
}

// A seeded Rand keeps the strategies' shares: uniform random over 10
// backends, weighted random 1:2:3:4 (500,000 picks, seed 3; tolerance 2%
// relative, about 8 standard deviations of the lightest share).
func TestSeededShares(t *testing.T) {
	const picks = 500_000
	uni, err := Random{Rand: rand.NewPCG(3, 3)}.New(Addrs("a:1", "b:1", "c:1", "d:1", "e:1", "f:1", "g:1", "h:1", "i:1", "j:1"))
	require.NoError(t, err)
	counts := map[string]int{}
	for i := 0; i < picks; i++ {
		b, _ := uni.Pick("")
		counts[b.Addr()]++
	}
	for addr, c := range counts {
		assert.InDelta(t, 1.0, float64(c)/(picks/10), 0.02, addr)
	}
	assert.Len(t, counts, 10)

	wr, err := WeightedRandom{Rand: rand.NewPCG(3, 3)}.New([]Endpoint{{Addr: "a:1", Weight: 1}, {Addr: "b:1", Weight: 2}, {Addr: "c:1", Weight: 3}, {Addr: "d:1", Weight: 4}})
	require.NoError(t, err)
	counts = map[string]int{}
	for i := 0; i < picks; i++ {
		b, _ := wr.Pick("")
		counts[b.Addr()]++
	}
	for i, addr := range []string{"a:1", "b:1", "c:1", "d:1"} {
		want := float64(picks) * float64(i+1) / 10
		assert.InDelta(t, 1.0, float64(counts[addr])/want, 0.02, addr)
	}
}

// The round robins start at a random backend: with a Source, where they
// start follows it (each of 10 backends is a start for some seed).
func TestSeededRoundRobinStart(t *testing.T) {
	eps := Addrs("a:1", "b:1", "c:1", "d:1", "e:1", "f:1", "g:1", "h:1", "i:1", "j:1")
	starts := map[string]bool{}
	for seed := uint64(0); seed < 200; seed++ {
		p, err := RoundRobin{Stripes: 1, Rand: rand.NewPCG(seed, 0)}.New(eps)
		require.NoError(t, err)
		b, _ := p.Pick("")
		starts[b.Addr()] = true
		again, err := RoundRobin{Stripes: 1, Rand: rand.NewPCG(seed, 0)}.New(eps)
		require.NoError(t, err)
		b2, _ := again.Pick("")
		require.Equal(t, b.Addr(), b2.Addr(), "seed %d", seed)
	}
	assert.Len(t, starts, 10)
}

// randSource.uint64n stays in range for every n, the largest included.
func TestRandSourceRange(t *testing.T) {
	r := newRandSource(rand.NewPCG(5, 5))
	for _, n := range []uint64{1, 2, 3, 10, 65537, 1 << 40, math.MaxUint64} {
		for i := 0; i < 1000; i++ {
			require.Less(t, r.uint64n(n), n)
		}
	}
	var zero randSource // the runtime's generator
	for i := 0; i < 1000; i++ {
		require.Less(t, zero.uint64n(7), uint64(7))
	}
}

// Seeded picks allocate nothing either.
func TestSeededPicksAllocateNothing(t *testing.T) {
	for name, b := range seededBuilders(9) {
		t.Run(name, func(t *testing.T) {
			bs, err := NewBackends(benchEndpoints(100, true))
			require.NoError(t, err)
			p, err := b.Build(bs)
			require.NoError(t, err)
			allocs := testing.AllocsPerRun(1000, func() {
				if _, err := p.Pick(""); err != nil {
					panic(err)
				}
			})
			assert.Zero(t, allocs)
		})
	}
}

// A seeded picker is safe for concurrent use (run under -race): picks from
// several goroutines, while a Balancer rebuilds over the same Source, so
// that an old picker and a new one draw from it at once.
func TestSeededPickersConcurrent(t *testing.T) {
	t.Parallel()
	for name, b := range seededBuilders(3) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			bal, err := NewBalancer(b, WithEndpoints(benchEndpoints(20, true)))
			require.NoError(t, err)
			defer bal.Close()
			var wg sync.WaitGroup
			for g := 0; g < 4; g++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; i < 2000; i++ {
						p, err := bal.Pick("")
						if err != nil {
							t.Error(err)
							return
						}
						p.Done(nil, time.Millisecond)
					}
				}()
			}
			for i := 0; i < 20; i++ {
				eps := benchEndpoints(20+i%3, true)
				require.NoError(t, bal.Update(eps))
			}
			wg.Wait()
		})
	}
}
