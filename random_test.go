package lb

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The random strategies draw from math/rand/v2's runtime source, which
// cannot be seeded: these tests use enough draws that the stated
// tolerances are more than 6 standard deviations wide.

func shares(t *testing.T, p Picker, draws int) map[string]float64 {
	t.Helper()
	counts := map[string]int{}
	for i := 0; i < draws; i++ {
		b, err := p.Pick("")
		require.NoError(t, err)
		counts[b.Addr()]++
	}
	out := map[string]float64{}
	for k, v := range counts {
		out[k] = float64(v) / float64(draws)
	}
	return out
}

func TestRandomUniform(t *testing.T) {
	t.Parallel()
	p, err := Random{}.New([]Endpoint{{Addr: "a:1", Weight: 9}, {Addr: "b:1"}, {Addr: "c:1"}, {Addr: "d:1"}})
	require.NoError(t, err)
	// 200,000 draws: sd of a share of 1/4 is 0.00097; tolerance 0.007.
	for addr, s := range shares(t, p, 200000) {
		assert.InDelta(t, 0.25, s, 0.007, addr)
	}
}

func TestWeightedRandomShares(t *testing.T) {
	t.Parallel()
	ws := []int{1, 2, 3, 4, 10}
	p, err := WeightedRandom{}.New(weightedEndpoints(ws...))
	require.NoError(t, err)
	got := shares(t, p, 400000)
	for i, w := range ws {
		want := float64(w) / 20
		assert.InDelta(t, want, got[fmt.Sprintf("%c:80", 'a'+i)], 0.006, "weight %d", w)
	}
}

func TestAliasTableExact(t *testing.T) {
	t.Parallel()
	// Sweep the high 32 bits (the column) and the low 32 bits (the coin)
	// on a grid: the table's probabilities are the weights' shares, up to
	// the grid's resolution.
	bs, err := NewBackends(weightedEndpoints(1, 3, 4))
	require.NoError(t, err)
	tab := newAliasTable(bs)
	counts := make([]int, 3)
	const grid = 400
	for c := 0; c < grid; c++ {
		for k := 0; k < grid; k++ {
			r := uint64(c)*(1<<32)/grid<<32 | uint64(k)*(1<<32)/grid
			counts[tab.sample(r)]++
		}
	}
	for i, w := range []float64{1, 3, 4} {
		assert.InDelta(t, w/8, float64(counts[i])/grid/grid, 0.005)
	}
}
