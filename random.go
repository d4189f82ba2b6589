package lb

import (
	"math/bits"
	"math/rand/v2"
)

// Random picks a backend uniformly at random, ignoring weights (see
// WeightedRandom). It uses math/rand/v2's per-thread generator: no lock, no
// shared state. The zero value is ready to use.
type Random struct {
	// Rand, when not nil, draws the picks instead of the runtime's
	// generator, for runs that can be repeated; it is called from every
	// goroutine that picks (see WeightedRoundRobin.Rand).
	Rand rand.Source
}

// RandomPicker is the Picker built by Random.
type RandomPicker struct {
	backends []*Backend
	n        uint64
	rnd      randSource
}

// Build implements Builder.
func (r Random) Build(backends []*Backend) (Picker, error) { return r.build(backends) }

// New validates eps and builds a uniform random picker over fresh
// backends, for use without a Balancer.
func (r Random) New(eps []Endpoint) (*RandomPicker, error) {
	bs, err := NewBackends(eps)
	if err != nil {
		return nil, err
	}
	return r.build(bs)
}

func (r Random) build(backends []*Backend) (*RandomPicker, error) {
	if err := checkBackends(backends); err != nil {
		return nil, err
	}
	return &RandomPicker{backends: backends, n: uint64(len(backends)), rnd: newRandSource(r.Rand)}, nil
}

// Pick returns a uniformly random backend. The key is ignored.
func (p *RandomPicker) Pick(string) (*Backend, error) {
	return p.backends[p.rnd.uint64n(p.n)], nil
}

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

// P2C is the power of two choices: each pick draws two distinct backends at
// random (in proportion to their weights) and takes the one with fewer
// calls in flight per unit of weight; on a tie, the one with the lower
// latency EWMA. It needs the live counters a Balancer keeps (Balancer.Pick
// and Pick.Done): used alone, every backend looks idle. No lock; the zero
// value is ready to use.
type P2C struct {
	// Rand, when not nil, draws the two candidates instead of the
	// runtime's generator (see Random.Rand).
	Rand rand.Source
}

// P2CPicker is the Picker built by P2C.
type P2CPicker struct {
	backends []*Backend
	weights  []int64
	alias    aliasTable
	uniform  bool
	n        uint64
	rnd      randSource
}

// Build implements Builder.
func (c P2C) Build(backends []*Backend) (Picker, error) { return c.build(backends) }

// New validates eps and builds a power-of-two-choices picker over fresh
// backends, for use without a Balancer.
func (c P2C) New(eps []Endpoint) (*P2CPicker, error) {
	bs, err := NewBackends(eps)
	if err != nil {
		return nil, err
	}
	return c.build(bs)
}

func (c P2C) build(backends []*Backend) (*P2CPicker, error) {
	if err := checkBackends(backends); err != nil {
		return nil, err
	}
	p := &P2CPicker{backends: backends, n: uint64(len(backends)), weights: make([]int64, len(backends)), uniform: true, rnd: newRandSource(c.Rand)}
	for i, b := range backends {
		p.weights[i] = int64(b.Weight())
		if p.weights[i] != p.weights[0] {
			p.uniform = false
		}
	}
	if !p.uniform {
		p.alias = newAliasTable(backends)
	}
	return p, nil
}

// Pick returns the less loaded of two random backends. The key is ignored.
func (p *P2CPicker) Pick(string) (*Backend, error) {
	if p.n == 1 {
		return p.backends[0], nil
	}
	var i, j int
	if p.uniform {
		i = int(p.rnd.uint64n(p.n))
		j = int(p.rnd.uint64n(p.n - 1))
		if j >= i {
			j++
		}
	} else {
		i = p.alias.sample(p.rnd.uint64())
		j = i
		for try := 0; try < 4 && j == i; try++ {
			j = p.alias.sample(p.rnd.uint64())
		}
		if j == i { // a dominant weight: take any other backend
			j = int((uint64(i) + 1 + p.rnd.uint64n(p.n-1)) % p.n)
		}
	}
	a, b := p.backends[i], p.backends[j]
	// Compare in-flight per unit of weight without dividing.
	la := a.inflight.Load() * p.weights[j]
	lb := b.inflight.Load() * p.weights[i]
	switch {
	case la < lb:
		return a, nil
	case lb < la:
		return b, nil
	}
	if b.ewma.Load() < a.ewma.Load() { // non-negative float64 bits order like the values
		return b, nil
	}
	return a, nil
}
