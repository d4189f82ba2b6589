package lb

import (
	"fmt"
	"math/rand/v2"
	"sync"
)

// WeightedRoundRobin is nginx's smooth weighted round robin: over a period
// of sum(weights) picks (after dividing the weights by their greatest
// common divisor), each backend is picked exactly its weight's number of
// times, spread out rather than in runs: weights a=5, b=1, c=1 give
// a a b a c a a. The zero value is ready to use.
//
// The period's sequence is computed once, when the picker is built, and
// indexed by an atomic counter: a pick is O(1) and takes no lock. When the
// period is longer than MaxSchedule, the picker does not precompute it: it
// runs nginx's algorithm per pick under a mutex instead, which gives the
// same exact sequence (in one global order) at O(N) per pick.
type WeightedRoundRobin struct {
	// MaxSchedule caps the precomputed period, in entries of 8 bytes; 0
	// means DefaultMaxSchedule (512 KiB).
	MaxSchedule int
	// Stripes is as for RoundRobin: each stripe walks the exact sequence
	// from its own random offset; Stripes: 1 keeps one global order. It does
	// not apply past MaxSchedule (one global order there).
	Stripes int
	// Rand, when not nil, draws the counters' random starting points
	// instead of math/rand/v2's runtime generator. With a seeded Source and
	// Stripes: 1, the sequence of picks is the same in every run (the
	// stripe a goroutine uses depends on its stack address).
	Rand rand.Source
}

// DefaultMaxSchedule is the default cap on the precomputed period of a
// WeightedRoundRobin picker: 65,536 entries, 512 KiB.
const DefaultMaxSchedule = 1 << 16

// maxScheduleLimit is the largest accepted MaxSchedule (8 MiB of schedule).
const maxScheduleLimit = 1 << 20

// WeightedRoundRobinPicker is the Picker built by WeightedRoundRobin.
type WeightedRoundRobinPicker struct {
	backends []*Backend
	sched    []*Backend // one period, or nil past MaxSchedule
	period   uint64
	st       stripes

	// past MaxSchedule: nginx's state machine under a lock.
	mu      sync.Mutex
	weights []int64
	current []int64
	total   int64
}

// Build implements Builder.
func (w WeightedRoundRobin) Build(backends []*Backend) (Picker, error) {
	return w.build(backends)
}

// New validates eps and builds a smooth weighted round-robin picker over
// fresh backends, for use without a Balancer.
func (w WeightedRoundRobin) New(eps []Endpoint) (*WeightedRoundRobinPicker, error) {
	bs, err := NewBackends(eps)
	if err != nil {
		return nil, err
	}
	return w.build(bs)
}

func (w WeightedRoundRobin) build(backends []*Backend) (*WeightedRoundRobinPicker, error) {
	if err := checkBackends(backends); err != nil {
		return nil, err
	}
	if err := checkStripes("WeightedRoundRobin", w.Stripes); err != nil {
		return nil, err
	}
	limit := w.MaxSchedule
	if limit < 0 || limit > maxScheduleLimit {
		return nil, fmt.Errorf("%w: WeightedRoundRobin.MaxSchedule is %d; it must be 0 (default %d) to %d",
			ErrInvalidConfig, limit, DefaultMaxSchedule, maxScheduleLimit)
	}
	if limit == 0 {
		limit = DefaultMaxSchedule
	}
	weights := make([]int64, len(backends))
	var g int64
	for i, b := range backends {
		weights[i] = int64(b.Weight())
		g = gcd(g, weights[i])
	}
	var total int64
	for i := range weights {
		weights[i] /= g
		total += weights[i]
	}
	p := &WeightedRoundRobinPicker{
		backends: backends,
		period:   uint64(total),
		weights:  weights,
		current:  make([]int64, len(backends)),
		total:    total,
	}
	if total > int64(limit) {
		return p, nil // computed per pick, under p.mu
	}
	p.sched = make([]*Backend, total)
	for i := range p.sched {
		p.sched[i] = backends[p.step()]
	}
	for i := range p.current {
		p.current[i] = 0 // back to nginx's starting state
	}
	p.st = newStripes(w.Stripes, p.period, newRandSource(w.Rand))
	return p, nil
}

// step is one round of nginx's smooth weighted round robin: every backend
// gains its weight, the one with the highest current value (the first, on
// a tie) is chosen and loses the total.
func (p *WeightedRoundRobinPicker) step() int {
	best := 0
	for i, w := range p.weights {
		p.current[i] += w
		if p.current[i] > p.current[best] {
			best = i
		}
	}
	p.current[best] -= p.total
	return best
}

// Pick returns the next backend of the smooth weighted sequence. The key is
// ignored.
func (p *WeightedRoundRobinPicker) Pick(string) (*Backend, error) {
	if p.sched != nil {
		return p.sched[p.st.next()%p.period], nil
	}
	return p.pickLocked(), nil
}

// pickLocked runs one step of nginx's algorithm, past MaxSchedule (kept out
// of Pick so that Pick inlines).
func (p *WeightedRoundRobinPicker) pickLocked() *Backend {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.backends[p.step()]
}

// Period returns the length of one period of the sequence: the sum of the
// weights divided by their greatest common divisor.
func (p *WeightedRoundRobinPicker) Period() int { return int(p.period) }

// Precomputed reports whether the period's sequence was precomputed (it is
// unless the period is longer than MaxSchedule).
func (p *WeightedRoundRobinPicker) Precomputed() bool { return p.sched != nil }

// Backends returns the backends the picker was built over. The slice must
// not be modified.
func (p *WeightedRoundRobinPicker) Backends() []*Backend { return p.backends }

func gcd(a, b int64) int64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}
