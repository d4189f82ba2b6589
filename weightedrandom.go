package lb

import (
	"math/bits"
	"math/rand/v2"
)

// WeightedRandom picks a backend at random in proportion to its weight, in
// O(1) per pick (Vose's alias method, built in O(N)). The zero value is
// ready to use.
type WeightedRandom struct {
	// Rand, when not nil, draws the picks instead of the runtime's
	// generator (see Random.Rand).
	Rand rand.Source
}

// WeightedRandomPicker is the Picker built by WeightedRandom.
type WeightedRandomPicker struct {
	backends []*Backend
	alias    aliasTable
	rnd      randSource
}

// Build implements Builder.
func (w WeightedRandom) Build(backends []*Backend) (Picker, error) { return w.build(backends) }

// New validates eps and builds a weighted random picker over fresh
// backends, for use without a Balancer.
func (w WeightedRandom) New(eps []Endpoint) (*WeightedRandomPicker, error) {
	bs, err := NewBackends(eps)
	if err != nil {
		return nil, err
	}
	return w.build(bs)
}

func (w WeightedRandom) build(backends []*Backend) (*WeightedRandomPicker, error) {
	if err := checkBackends(backends); err != nil {
		return nil, err
	}
	return &WeightedRandomPicker{backends: backends, alias: newAliasTable(backends), rnd: newRandSource(w.Rand)}, nil
}

// Pick returns a random backend, each with probability weight/sum(weights).
// The key is ignored.
func (p *WeightedRandomPicker) Pick(string) (*Backend, error) {
	return p.backends[p.alias.sample(p.rnd.uint64())], nil
}

// aliasTable samples index i with probability w[i]/sum(w) from one 64-bit
// random number: the high 32 bits choose a column, the low 32 bits choose
// between the column and its alias.
type aliasTable struct {
	prob  []uint32 // keep the column when the low bits are below prob
	alias []uint32
	n     uint64
}

func newAliasTable(backends []*Backend) aliasTable {
	n := len(backends)
	t := aliasTable{prob: make([]uint32, n), alias: make([]uint32, n), n: uint64(n)}
	var sum float64
	for _, b := range backends {
		sum += float64(b.Weight())
	}
	scaled := make([]float64, n)
	small := make([]int, 0, n)
	large := make([]int, 0, n)
	for i, b := range backends {
		scaled[i] = float64(b.Weight()) * float64(n) / sum
		if scaled[i] < 1 {
			small = append(small, i)
		} else {
			large = append(large, i)
		}
	}
	const one = 1 << 32
	for len(small) > 0 && len(large) > 0 {
		s, l := small[len(small)-1], large[len(large)-1]
		small = small[:len(small)-1]
		t.prob[s] = uint32(scaled[s] * one)
		t.alias[s] = uint32(l)
		scaled[l] -= 1 - scaled[s]
		if scaled[l] < 1 {
			large = large[:len(large)-1]
			small = append(small, l)
		}
	}
	// What is left has probability 1 (up to rounding): always keep it.
	for _, i := range append(small, large...) {
		t.prob[i] = 1<<32 - 1
		t.alias[i] = uint32(i)
	}
	return t
}

func (t *aliasTable) sample(r uint64) int {
	col, _ := bits.Mul64(r>>32, t.n<<32) // (r>>32) * n / 2^32, uniform in [0, n)
	i := int(col)
	if uint32(r) < t.prob[i] {
		return i
	}
	return int(t.alias[i])
}

// Backends returns the backends the picker was built over. The slice must
// not be modified.
func (p *WeightedRandomPicker) Backends() []*Backend { return p.backends }
