package lb

import "math/rand/v2"

// RoundRobin is the round-robin strategy: backends are picked in turn, each
// once per cycle, starting from a random backend so that fresh clients do
// not all start on the same one. Weights are ignored (see
// WeightedRoundRobin). The zero value is ready to use.
type RoundRobin struct {
	// Stripes is the number of independent counters (rounded up to a power
	// of two); 0 means 16 per CPU (GOMAXPROCS), at least 32. Each stripe cycles through the
	// backends in order; a goroutine keeps to one stripe, so parallel picks
	// do not contend on one cache line. Stripes: 1 keeps a strict global
	// order. With S stripes, the pick counts of any two backends differ by
	// at most S.
	Stripes int
	// Rand, when not nil, draws the counters' random starting points
	// instead of the runtime's generator, so that a run can be repeated
	// (see WeightedRoundRobin.Rand).
	Rand rand.Source
}

// RoundRobinPicker is the Picker built by RoundRobin.
type RoundRobinPicker struct {
	backends []*Backend
	n        uint64
	st       stripes
}

// Build implements Builder.
func (r RoundRobin) Build(backends []*Backend) (Picker, error) {
	return r.build(backends)
}

// New validates eps and builds a round-robin picker over fresh backends,
// for use without a Balancer.
func (r RoundRobin) New(eps []Endpoint) (*RoundRobinPicker, error) {
	bs, err := NewBackends(eps)
	if err != nil {
		return nil, err
	}
	return r.build(bs)
}

func (r RoundRobin) build(backends []*Backend) (*RoundRobinPicker, error) {
	if err := checkBackends(backends); err != nil {
		return nil, err
	}
	if err := checkStripes("RoundRobin", r.Stripes); err != nil {
		return nil, err
	}
	n := uint64(len(backends))
	return &RoundRobinPicker{backends: backends, n: n, st: newStripes(r.Stripes, n, newRandSource(r.Rand))}, nil
}

// Pick returns the next backend in turn. The key is ignored.
func (p *RoundRobinPicker) Pick(string) (*Backend, error) {
	return p.backends[p.st.next()%p.n], nil
}

// Backends returns the backends the picker was built over. The slice must
// not be modified.
func (p *RoundRobinPicker) Backends() []*Backend { return p.backends }
