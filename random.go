package lb

import (
	"math"
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
// random (in proportion to their weights) and takes the one with the lower
// cost: (calls in flight per unit of weight + 1) × the latency EWMA (the
// peak-EWMA load of Finagle and Linkerd), raised by the backend's failure
// score: a backend whose recent calls failed costs 1/(1−score)² times as
// much, so that a backend that fails fast never wins picks by looking idle
// and fast. Until both candidates have a latency, calls in flight alone
// decide; on a tie, the first drawn wins (idle backends share picks by
// weight). One pick in 64 whose loser has a failure
// score above 5% takes the loser instead: a trickle that lets a recovered
// backend show it has recovered.
//
// It needs the live counters a Balancer keeps (Balancer.Pick and
// Pick.Done): used alone, every backend looks idle. No lock; the zero value
// is ready to use.
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

// Pick returns the cheaper of two random backends. The key is ignored.
func (p *P2CPicker) Pick(string) (*Backend, error) {
	if p.n == 1 {
		return p.backends[0], nil
	}
	var i, j int
	var explore bool
	if p.uniform {
		r := p.rnd.uint64()
		hi, _ := bits.Mul64(r, p.n)
		i = int(hi)
		j = int(p.rnd.uint64n(p.n - 1))
		if j >= i {
			j++
		}
		explore = r&63 == 0
	} else {
		r := p.rnd.uint64()
		i = p.alias.sample(r)
		j = i
		for try := 0; try < 4 && j == i; try++ {
			j = p.alias.sample(p.rnd.uint64())
		}
		if j == i { // a dominant weight: take any other backend
			j = int((uint64(i) + 1 + p.rnd.uint64n(p.n-1)) % p.n)
		}
		explore = r>>26&63 == 0
	}
	a, b := p.backends[i], p.backends[j]
	if cheaper(b, a, p.weights[j], p.weights[i]) {
		a, b = b, a
	}
	if explore && b.fail.Load() > explorePenalty {
		return b, nil
	}
	return a, nil
}

// explorePenalty is the failure score (float64 bits of 0.05) above which a
// losing candidate is taken once in 64 picks.
var explorePenalty = math.Float64bits(0.05)

// cheaper reports whether a costs less than b, of weights wa and wb:
// (in flight / weight + 1) × latency EWMA, times 1/(1−failure score)²,
// compared without dividing. On a tie, a costs less if its latency is
// lower. Float64 bits of non-negative values order like the values.
func cheaper(a, b *Backend, wa, wb int64) bool {
	la, lb := a.ewma.Load(), b.ewma.Load()
	ca := float64(a.inflight.Load()+wa) * float64(wb)
	cb := float64(b.inflight.Load()+wb) * float64(wa)
	if la != 0 && lb != 0 {
		ca *= math.Float64frombits(la)
		cb *= math.Float64frombits(lb)
	}
	if fa := a.fail.Load(); fa != 0 {
		ca *= failPenalty(fa)
	}
	if fb := b.fail.Load(); fb != 0 {
		cb *= failPenalty(fb)
	}
	if ca != cb {
		return ca < cb
	}
	return la < lb
}

// failPenalty is the cost factor of a failure score (float64 bits):
// 1/(1−s)², capped at 10^4.
func failPenalty(bits uint64) float64 {
	s := min(math.Float64frombits(bits), 0.99)
	return 1 / ((1 - s) * (1 - s))
}
