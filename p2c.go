package lb

import (
	"math"
	"math/bits"
	"math/rand/v2"
)

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

// Backends returns the backends the picker was built over. The slice must
// not be modified.
func (p *P2CPicker) Backends() []*Backend { return p.backends }
