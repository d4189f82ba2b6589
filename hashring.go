package lb

import (
	"fmt"
	"math"
	"math/bits"
	"math/rand/v2"
	"strconv"
)

// Ring is a consistent-hash ring with virtual replicas. Each backend is
// hashed onto the ring at Replicas × weight points; a key goes to the
// backend of the first point at or after the key's hash, clockwise. Adding
// a backend moves only the keys that now fall on its points (about 1/(N+1)
// of them), and never moves a key between two backends that stay.
//
// The point of replica r of backend "host:port" is Hash("host:port#r"),
// with r in decimal: since r never contains '#', two different (address,
// replica) pairs never give the same string. Points whose hashes collide
// are ordered by address, so placement does not depend on the order of
// the backends. These rules, the default hash and the default replica
// count are part of the compatibility promise: a key maps to the same
// backend in every process and every release (a golden test pins it).
//
// The zero value is ready to use: xxhash64, DefaultReplicas, no load bound.
type Ring struct {
	// Replicas is the number of points per unit of weight; 0 means
	// DefaultReplicas. More points balance better and cost memory (12 B
	// per point, plus 4-8 B per point of lookup index).
	Replicas int
	// Hash hashes keys and virtual-node names; nil means XXHash.
	Hash HashFunc
	// LoadFactor, when not 0, bounds loads (consistent hashing with bounded
	// loads, Mirrokni, Thorup and Zadimoghaddam 2016): no backend takes more
	// than ceil(LoadFactor × weight share × (calls in flight + 1)) calls;
	// a key whose backend is full goes on clockwise to the next backend that
	// is not. It must be >= 1 (1.25 is a common choice). It counts the
	// calls in flight through a Balancer (Balancer.Pick until Pick.Done).
	LoadFactor float64
}

// DefaultReplicas is the default number of ring points per unit of weight.
// With it, 1,000,000 random keys over 100 backends load the busiest one at
// about 1.07 times the mean.
const DefaultReplicas = 1024

// MaxRingPoints bounds the points of one ring (Replicas × sum of weights):
// about 200 MB of ring and index.
const MaxRingPoints = 1 << 23

// RingPicker is the Picker built by Ring. It also implements
// PreferenceLister.
type RingPicker struct {
	backends []*Backend
	points   []uint64 // sorted positions
	owners   []uint32 // owners[i] is the backend of points[i]
	index    []uint32 // index[k] is the first point whose position >> shift is >= k
	shift    uint
	buckets  uint64
	hash     HashFunc

	// bounded loads
	loadFactor  float64
	weights     []float64
	totalWeight float64
	group       *loadGroup
}

// Build implements Builder.
func (r Ring) Build(backends []*Backend) (Picker, error) { return r.build(backends) }

// New validates eps and builds a ring over fresh backends, for use without
// a Balancer.
func (r Ring) New(eps []Endpoint) (*RingPicker, error) {
	bs, err := NewBackends(eps)
	if err != nil {
		return nil, err
	}
	return r.build(bs)
}

// needsTotalLoad reports whether the picker reads the total of the calls in
// flight (the Balancer then keeps it).
func (r Ring) needsTotalLoad() bool { return r.LoadFactor != 0 }

func (r Ring) validate() error {
	if r.Replicas < 0 || r.Replicas > MaxRingPoints {
		return fmt.Errorf("%w: Ring.Replicas is %d; it must be 0 (default %d) to %d", ErrInvalidConfig, r.Replicas, DefaultReplicas, MaxRingPoints)
	}
	if r.LoadFactor != 0 && !(r.LoadFactor >= 1 && r.LoadFactor <= 1e6) { // also rejects NaN
		return fmt.Errorf("%w: Ring.LoadFactor is %v; it must be 0 (no bound) or from 1 to 1e6", ErrInvalidConfig, r.LoadFactor)
	}
	return nil
}

func (r Ring) build(backends []*Backend) (*RingPicker, error) {
	if err := r.validate(); err != nil {
		return nil, err
	}
	if err := checkBackends(backends); err != nil {
		return nil, err
	}
	replicas := r.Replicas
	if replicas == 0 {
		replicas = DefaultReplicas
	}
	hash := r.Hash
	if hash == nil {
		hash = XXHash
	}
	p := &RingPicker{
		backends:   backends,
		hash:       hash,
		loadFactor: r.LoadFactor,
		weights:    make([]float64, len(backends)),
		group:      backends[0].group,
	}
	var total uint64
	for i, b := range backends {
		w := b.Weight()
		p.weights[i] = float64(w)
		p.totalWeight += float64(w)
		total += uint64(w) * uint64(replicas)
		if total > MaxRingPoints {
			return nil, fmt.Errorf("%w: a Ring over these %d backends needs more than %d points (Replicas %d × the sum of the weights); lower Replicas or the weights",
				ErrInvalidConfig, len(backends), MaxRingPoints, replicas)
		}
	}
	n := int(total)

	// Hash every virtual node into scratch arrays.
	hs := make([]uint64, n)
	os := make([]uint32, n)
	var buf []byte
	var maxHash uint64
	j := 0
	for i, b := range backends {
		buf = append(append(buf[:0], b.addr...), '#')
		prefix := len(buf)
		for v := 0; v < b.Weight()*replicas; v++ {
			buf = strconv.AppendUint(buf[:prefix], uint64(v), 10)
			h := hash(bytesString(buf))
			hs[j], os[j] = h, uint32(i)
			maxHash = max(maxHash, h)
			j++
		}
	}

	// Bucket sort by the top bits of the position: at least one bucket per
	// point, so buckets hold about one point and sorting them is cheap.
	// The same bucket boundaries index lookups.
	lg := bits.Len(uint(n - 1)) // buckets = 2^lg >= n
	p.buckets = 1 << lg
	if used := bits.Len64(maxHash); used > lg {
		p.shift = uint(used - lg)
	}
	p.index = make([]uint32, p.buckets+1)
	for _, h := range hs {
		p.index[(h>>p.shift)+1]++
	}
	for k := 1; k < len(p.index); k++ {
		p.index[k] += p.index[k-1]
	}
	p.points = make([]uint64, n)
	p.owners = make([]uint32, n)
	fill := make([]uint32, p.buckets)
	copy(fill, p.index[:p.buckets])
	for i, h := range hs {
		k := h >> p.shift
		at := fill[k]
		fill[k]++
		p.points[at], p.owners[at] = h, os[i]
	}
	for k := uint64(0); k < p.buckets; k++ {
		p.sortRange(int(p.index[k]), int(p.index[k+1]))
	}
	return p, nil
}

// sortRange insertion-sorts points[lo:hi] by position, then by address.
func (p *RingPicker) sortRange(lo, hi int) {
	for i := lo + 1; i < hi; i++ {
		h, o := p.points[i], p.owners[i]
		j := i
		for j > lo && p.less(h, o, p.points[j-1], p.owners[j-1]) {
			p.points[j], p.owners[j] = p.points[j-1], p.owners[j-1]
			j--
		}
		p.points[j], p.owners[j] = h, o
	}
}

func (p *RingPicker) less(h1 uint64, o1 uint32, h2 uint64, o2 uint32) bool {
	if h1 != h2 {
		return h1 < h2
	}
	return p.backends[o1].addr < p.backends[o2].addr
}

// search returns the index of the first point at or after position h,
// clockwise (wrapping to the first point).
func (p *RingPicker) search(h uint64) int {
	k := h >> p.shift
	if k >= p.buckets {
		return 0
	}
	i, e := p.index[k], p.index[k+1]
	for i < e && p.points[i] < h {
		i++
	}
	if int(i) == len(p.points) {
		return 0
	}
	return int(i)
}

// start returns the point a key starts from: its hash's successor, or a
// random point for the empty key.
func (p *RingPicker) start(key string) int {
	if key == "" {
		return int(rand.Uint64N(uint64(len(p.points))))
	}
	return p.search(p.hash(key))
}

// Pick returns the key's backend: the owner of the first point clockwise
// from the key's hash (with LoadFactor, the first such backend that is not
// full). The empty key picks at random, in proportion to weight.
func (p *RingPicker) Pick(key string) (*Backend, error) {
	i := p.start(key)
	if p.loadFactor != 0 {
		return p.bounded(i), nil
	}
	return p.backends[p.owners[i]], nil
}

// bounded walks clockwise from point i to the first backend below its
// capacity. Some backend always is: the capacities add up to at least
// LoadFactor × (in flight + 1), more than is in flight.
func (p *RingPicker) bounded(i int) *Backend {
	var inflight int64
	if p.group != nil {
		inflight = p.group.total.Load()
	}
	unit := p.loadFactor * float64(max(inflight, 0)+1) / p.totalWeight
	first := i
	for steps := 0; steps < len(p.points); steps++ {
		o := p.owners[i]
		b := p.backends[o]
		if float64(b.inflight.Load()+1) <= math.Ceil(unit*p.weights[o]) {
			return b
		}
		if i++; i == len(p.points) {
			i = 0
		}
	}
	return p.backends[p.owners[first]]
}

// AppendPreferences appends to dst up to n distinct backends in the key's
// order of preference: the owners of the points clockwise from the key's
// hash, skipping backends already listed. The first is Pick's answer when
// LoadFactor is 0 (with a load bound, Pick may skip full backends along
// this same order). It allocates nothing when dst has room.
func (p *RingPicker) AppendPreferences(dst []*Backend, key string, n int) []*Backend {
	n = min(n, len(p.backends))
	if n <= 0 {
		return dst
	}
	i := p.start(key)
	return appendDistinct(dst, p.backends, n, len(p.owners), func(step int) uint32 {
		return p.owners[(i+step)%len(p.owners)]
	})
}

// appendDistinct appends the first n distinct backends of a sequence of
// owner indexes (of length steps) to dst.
func appendDistinct(dst, backends []*Backend, n, steps int, owner func(step int) uint32) []*Backend {
	base := len(dst)
	var seen [16]uint64 // a bitmap when there are at most 1024 backends
	small := len(backends) <= len(seen)*64
	for s := 0; s < steps && len(dst)-base < n; s++ {
		o := owner(s)
		if small {
			if seen[o/64]&(1<<(o%64)) != 0 {
				continue
			}
			seen[o/64] |= 1 << (o % 64)
		} else if containsBackend(dst[base:], backends[o]) {
			continue
		}
		dst = append(dst, backends[o])
	}
	return dst
}

func containsBackend(bs []*Backend, b *Backend) bool {
	for _, x := range bs {
		if x == b {
			return true
		}
	}
	return false
}

// Backends returns the backends the picker was built over. The slice must
// not be modified.
func (p *RingPicker) Backends() []*Backend { return p.backends }

// Points returns the number of points on the ring.
func (p *RingPicker) Points() int { return len(p.points) }

// MemoryBytes returns the memory the ring's tables hold, in bytes.
func (p *RingPicker) MemoryBytes() int {
	return len(p.points)*8 + len(p.owners)*4 + len(p.index)*4 + len(p.weights)*8
}
