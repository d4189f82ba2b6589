package lb

import (
	"fmt"
	"math/bits"
	"math/rand/v2"
)

// WeightedRoundRobin is nginx's smooth weighted round robin: over a period
// of sum(weights) picks (after dividing the weights by their greatest
// common divisor), each backend is picked exactly its weight's number of
// times, spread out rather than in runs: weights a=5, b=1, c=1 give
// a a b a c a a. The zero value is ready to use.
//
// The period's sequence is computed once, when the picker is built, and
// indexed by an atomic counter: a pick is O(1) and takes no lock.
//
// When the period is longer than MaxSchedule (say 100,000 backends of
// weight 1), or computing it would take more than 16M steps of nginx's
// O(N) algorithm (N × period: 4,000 backends of weights 1 to 5 take about
// 12M), it is not precomputed, and the order is not nginx's: picks
// walk the line of the period's slots, each backend owning a run of slots
// as long as its weight, by a stride of about 0.618 of the period, coprime
// with it (a golden-ratio interleave). Every period of picks visits each
// slot once, so each backend gets exactly its weight's number of picks per
// period, as with nginx, and the picks of one backend are spread evenly
// (by the three-gap theorem, the gaps between them take at most three
// lengths). A pick is O(1) expected and lock-free at any size: a
// compare-and-swap on the caller's stripe and a table lookup.
type WeightedRoundRobin struct {
	// MaxSchedule caps the precomputed period, in entries of 8 bytes; 0
	// means 65,536 entries (512 KiB).
	MaxSchedule int
	// Stripes is as for RoundRobin: each stripe walks the exact sequence
	// from its own random offset; Stripes: 1 keeps one global order.
	Stripes int
	// Rand, when not nil, draws the counters' random starting points
	// instead of math/rand/v2's runtime generator. With a seeded Source and
	// Stripes: 1, the sequence of picks is the same in every run (the
	// stripe a goroutine uses depends on its stack address).
	Rand rand.Source
}

// defaultMaxSchedule is the default cap on the precomputed period of a
// WeightedRoundRobin picker: 65,536 entries, 512 KiB.
const defaultMaxSchedule = 1 << 16

// maxScheduleWork bounds the work of precomputing nginx's sequence, which
// is O(N × period): past 16M steps (tens of milliseconds; 10,000 backends
// of weights 1 to 5 would take a second), a build uses the stride line.
const maxScheduleWork = 1 << 24

// maxScheduleLimit is the largest accepted MaxSchedule (8 MiB of schedule).
const maxScheduleLimit = 1 << 20

// WeightedRoundRobinPicker is the Picker built by WeightedRoundRobin.
type WeightedRoundRobinPicker struct {
	backends []*Backend
	sched    []*Backend // one period, or nil past MaxSchedule
	period   uint64
	st       stripes
	line     *strideLine // past MaxSchedule
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
			ErrInvalidConfig, limit, defaultMaxSchedule, maxScheduleLimit)
	}
	if limit == 0 {
		limit = defaultMaxSchedule
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
	p := &WeightedRoundRobinPicker{backends: backends, period: uint64(total)}
	p.st = newStripes(w.Stripes, p.period, newRandSource(w.Rand))
	if total > int64(limit) || int64(len(backends))*total > maxScheduleWork {
		p.line = newStrideLine(weights, uint64(total))
		return p, nil
	}
	p.sched = make([]*Backend, total)
	current := make([]int64, len(backends))
	for i := range p.sched {
		p.sched[i] = backends[nginxStep(weights, current, total)]
	}
	return p, nil
}

// nginxStep is one round of nginx's smooth weighted round robin: every
// backend gains its weight, the one with the highest current value (the
// first, on a tie) is chosen and loses the total.
func nginxStep(weights, current []int64, total int64) int {
	best := 0
	for i, w := range weights {
		current[i] += w
		if current[i] > current[best] {
			best = i
		}
	}
	current[best] -= total
	return best
}

// strideLine is the schedule past MaxSchedule: slot x of [0, period)
// belongs to the backend whose run of slots holds it (ends[i] is the end
// of backend i's run); stripes hold slots, advanced by stride. Buckets of
// slots (about four per backend, one per slot where the period is that
// short) name the owner of a bucket that one run covers, so that most
// lookups are one table read; the others scan the runs from the bucket's
// first.
type strideLine struct {
	stride  uint64
	uniform bool     // every weight is 1: slot x is backend x
	ends    []uint64 // cumulative weights
	buckets []uint32 // owner, or bucketMixed | first backend to scan from
	mul     uint64   // bucket of slot x: the high word of x × mul
}

// bucketMixed marks a bucket whose slots belong to more than one backend.
const bucketMixed = 1 << 31

// maxLineBuckets bounds the buckets of a line (4 MiB).
const maxLineBuckets = 1 << 20

// goldenStride is the stride of a line of period slots: the integer
// nearest period × (√5−1)/2 that is coprime with period, so that period
// steps visit every slot once.
func goldenStride(period uint64) uint64 {
	s := uint64(float64(period)*0.6180339887498949 + 0.5)
	s = max(min(s, period-1), 1)
	for gcdU(s, period) != 1 {
		s++
		if s >= period {
			s = 1
		}
	}
	return s
}

func newStrideLine(weights []int64, period uint64) *strideLine {
	l := &strideLine{stride: goldenStride(period), uniform: period == uint64(len(weights))}
	if l.uniform {
		return l
	}
	n := len(weights)
	l.ends = make([]uint64, n)
	var end uint64
	for i, w := range weights {
		end += uint64(w)
		l.ends[i] = end
	}
	// bucket(x) = ⌊x × nb / period⌋, computed as the high word of x × mul
	// (nb <= period, so mul fits).
	nb := min(period, 4*uint64(n), maxLineBuckets)
	if nb == period {
		l.mul = ^uint64(0) // ⌊x × (2^64−1) / 2^64⌋ = x − 1 for x > 0: use x itself below
	} else {
		l.mul, _ = bits.Div64(nb, 0, period)
	}
	l.buckets = make([]uint32, nb)
	filled := make([]bool, nb)
	var lo uint64
	for i, e := range l.ends {
		first, last := l.bucket(lo), l.bucket(e-1)
		for b := first; b <= last; b++ {
			switch {
			case !filled[b]:
				l.buckets[b], filled[b] = uint32(i), true
			case l.buckets[b]&bucketMixed == 0:
				l.buckets[b] |= bucketMixed // keeps the first owner to scan from
			}
		}
		lo = e
	}
	return l
}

func (l *strideLine) bucket(x uint64) uint64 {
	if l.mul == ^uint64(0) {
		return x
	}
	hi, _ := bits.Mul64(x, l.mul)
	return hi
}

// owner returns the index of the backend that owns slot x.
func (l *strideLine) owner(x uint64) int {
	if l.uniform {
		return int(x)
	}
	e := l.buckets[l.bucket(x)]
	if e&bucketMixed == 0 {
		return int(e)
	}
	i := int(e &^ bucketMixed)
	for l.ends[i] <= x {
		i++
	}
	return i
}

// Pick returns the next backend of the smooth weighted sequence. The key is
// ignored.
func (p *WeightedRoundRobinPicker) Pick(string) (*Backend, error) {
	if p.sched != nil {
		return p.sched[p.st.next()%p.period], nil
	}
	return p.pickLine(), nil
}

// pickLine is a pick past MaxSchedule (kept out of Pick so that Pick
// inlines).
func (p *WeightedRoundRobinPicker) pickLine() *Backend {
	return p.backends[p.line.owner(p.st.advance(p.line.stride, p.period))]
}

// Period returns the length of one period of the sequence: the sum of the
// weights divided by their greatest common divisor.
func (p *WeightedRoundRobinPicker) Period() int { return int(p.period) }

// Precomputed reports whether the period's sequence was precomputed, in
// nginx's order (it is unless the period is longer than MaxSchedule or too
// long to compute over this many backends).
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

func gcdU(a, b uint64) uint64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}
