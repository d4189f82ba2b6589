package lb

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"

	"github.com/cespare/xxhash/v2"
)

// The subsetting schemes Subset was chosen from, as functions from a set
// and a client index to the client's subset (Size 20), for
// BenchmarkSubsetAlternatives. Each one prepares the set once.
type subsetScheme struct {
	name string
	prep func(eps []Endpoint, clients int) func(c int) []string
}

func lbScheme(name string, s Subset) subsetScheme {
	return subsetScheme{name, func(eps []Endpoint, _ int) func(int) []string {
		pts, err := s.ring(eps)
		if err != nil {
			panic(err)
		}
		return func(c int) []string {
			s := s
			s.ClientIndex = c
			var out []string
			for _, i := range s.after(pts, s.position()) {
				out = append(out, eps[i].Addr)
			}
			return out
		}
	}}
}

// sreScheme is the SRE book's deterministic subsetting (chapter 20):
// clients in rounds of N/k, each round a shuffle of the backends (seeded
// by the round) cut into N/k subsets. ordinals: the backends in ordinal
// order before the shuffle; else by hash rank.
func sreScheme(ordinals bool) subsetScheme {
	name := "sre-deterministic/names"
	if ordinals {
		name = "sre-deterministic/ordinals"
	}
	return subsetScheme{name, func(eps []Endpoint, _ int) func(int) []string {
		sorted := slices.Clone(eps)
		slices.SortFunc(sorted, func(a, b Endpoint) int {
			if ordinals {
				x, _ := strconv.Atoi(a.Labels["ordinal"])
				y, _ := strconv.Atoi(b.Labels["ordinal"])
				return cmp.Compare(x, y)
			}
			return cmp.Compare(xxhash.Sum64String(a.Addr), xxhash.Sum64String(b.Addr))
		})
		return func(c int) []string {
			const k = 20
			count := len(sorted) / k
			round := c / count
			s := slices.Clone(sorted)
			rand.New(rand.NewPCG(uint64(round), 0)).Shuffle(len(s), func(i, j int) { s[i], s[j] = s[j], s[i] })
			var out []string
			for _, e := range s[c%count*k : c%count*k+k] {
				out = append(out, e.Addr)
			}
			return out
		}
	}}
}

// rendezvousScheme: each client takes the 20 backends of highest
// hash(backend, client).
var rendezvousScheme = subsetScheme{"rendezvous-top-k", func(eps []Endpoint, _ int) func(int) []string {
	return func(c int) []string {
		type scored struct {
			s    uint64
			addr string
		}
		sc := make([]scored, len(eps))
		suffix := "#" + strconv.Itoa(c)
		for i, e := range eps {
			sc[i] = scored{xxhash.Sum64String(e.Addr + suffix), e.Addr}
		}
		slices.SortFunc(sc, func(a, b scored) int { return cmp.Compare(b.s, a.s) })
		var out []string
		for _, x := range sc[:20] {
			out = append(out, x.addr)
		}
		return out
	}
}}

// BenchmarkSubsetAlternatives measures the schemes Subset was chosen from,
// over 1,000 clients and 1,000 backends with Size 20 (each iteration
// computes every client's subset, over the set and its changes): clients
// per backend (max/mean) and pairs moved over pairs that must move, for
// 10% of the backends replaced, 10% added and one replaced. The figures
// are deterministic; the README's table comes from here:
//
//	go test -run '^$' -bench SubsetAlternatives -benchtime 1x .
func BenchmarkSubsetAlternatives(b *testing.B) {
	const clients, backends = 1000, 1000
	base := subsetWorld(backends)
	sets := [][]Endpoint{replaced(base, backends/10, 7), grown(base, backends/10), replaced(base, 1, 8)}
	for _, sch := range []subsetScheme{
		lbScheme("lb-ordinals(ringsteady)", Subset{Size: 20, OrdinalLabel: "ordinal"}),
		lbScheme("lb-names(rank-aperture)", Subset{Size: 20}),
		lbScheme("lb-names-ByHash(consistent)", Subset{Size: 20, ByHash: true}),
		sreScheme(true),
		sreScheme(false),
		rendezvousScheme,
	} {
		b.Run(sch.name, func(b *testing.B) {
			all := func(eps []Endpoint) [][]string {
				f := sch.prep(eps, clients)
				out := make([][]string, clients)
				for c := range out {
					out[c] = f(c)
				}
				return out
			}
			var hi float64
			ratios := make([]float64, len(sets))
			for i := 0; i < b.N; i++ {
				subs := all(base)
				deg := degrees(base, subs)
				hi, _ = spread(deg)
				for j, eps := range sets {
					now := all(eps)
					moved, must := churn(subs, now, deg, degrees(eps, now))
					ratios[j] = float64(moved) / float64(must)
				}
			}
			b.ReportMetric(hi, "max/mean")
			b.ReportMetric(ratios[0], "moved/must-10%replaced")
			b.ReportMetric(ratios[1], "moved/must-10%added")
			b.ReportMetric(ratios[2], "moved/must-1replaced")
		})
	}
}

// BenchmarkSubsetOf is the cost subsetting adds to an Update: placing the
// set on the ring and taking the client's subset.
func BenchmarkSubsetOf(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		eps := subsetWorld(n)
		for _, s := range []Subset{{Size: 20, ClientIndex: 7}, {Size: 20, ClientIndex: 7, OrdinalLabel: "ordinal"}} {
			name := fmt.Sprintf("N=%d/names", n)
			if s.OrdinalLabel != "" {
				name = fmt.Sprintf("N=%d/ordinals", n)
			}
			b.Run(name, func(b *testing.B) {
				b.ReportAllocs()
				for i := 0; i < b.N; i++ {
					if _, err := SubsetOf(eps, s); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkSubsetsOf is the whole fleet's subsets at once, as a
// simulation computes them: 10,000 clients over 5,000 backends.
func BenchmarkSubsetsOf(b *testing.B) {
	eps := subsetWorld(5000)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := SubsetsOf(eps, Subset{Size: 20, OrdinalLabel: "ordinal"}, 10000); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLocalityPickDone is a call through a Balancer with locality:
// one tier taking every call (the client's zone is healthy: its picker is
// used as it is), and two tiers (the zone spills 30%).
func BenchmarkLocalityPickDone(b *testing.B) {
	keys := benchKeys()
	for _, bc := range benchCases {
		for _, spill := range []bool{false, true} {
			eps := append(append(zoneEndpoints(34, "r1", "a", ""), zoneEndpoints(33, "r1", "b", "")...), zoneEndpoints(33, "r2", "c", "")...)
			bal, err := NewBalancer(bc.builder, WithEndpoints(eps), WithLocality(Locality{Region: "r1", Zone: "a"}))
			if err != nil {
				b.Fatal(err)
			}
			name := bc.name + "/one-tier"
			if spill {
				name = bc.name + "/two-tiers"
				for i := 0; i < 17; i++ {
					if err := bal.SetHealthy(fmt.Sprintf("a-%d:80", i), false); err != nil {
						b.Fatal(err)
					}
				}
				bal.settle()
			}
			benchPickDone(b, name, bal, keys)
			bal.Close()
		}
	}
}
