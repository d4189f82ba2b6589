package lb

import (
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

// Backends returns the backends the picker was built over. The slice must
// not be modified.
func (p *RandomPicker) Backends() []*Backend { return p.backends }
