package lb

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/cespare/xxhash/v2"
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
	// DefaultReplicas. More points balance better and cost memory: about
	// 19 bytes per point (RingPicker.MemoryBytes tells).
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
	// Rand, when not nil, draws the random positions of empty keys
	// instead of the runtime's generator (see Random.Rand).
	Rand rand.Source
}

// DefaultReplicas is the default number of ring points per unit of weight.
// With it, 1,000,000 random keys over 100 backends load the busiest one at
// about 1.07 times the mean.
const DefaultReplicas = 1024

// MaxRingPoints bounds the points of one ring (Replicas × sum of weights):
// about 160 MB of tables.
const MaxRingPoints = 1 << 23

// RingPicker is the Picker built by Ring. It also implements
// PreferenceLister.
type RingPicker struct {
	backends []*Backend
	t        ringTable
	hash     HashFunc // nil: xxhash64, called directly
	rnd      randSource

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
		hash:       r.Hash,
		rnd:        newRandSource(r.Rand),
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

	// Hash every virtual node: "host:port#r", the replica number in decimal
	// written into one reused buffer.
	hs := make([]uint64, n)
	os := make([]uint32, n)
	var buf []byte
	j := 0
	for i, b := range backends {
		buf = append(append(buf[:0], b.addr...), '#', '0')
		for v := 0; v < b.Weight()*replicas; v++ {
			if v > 0 {
				buf = incDecimal(buf)
			}
			hs[j], os[j] = hash(bytesString(buf)), uint32(i)
			j++
		}
	}
	p.t = newRingTable(hs, os, backends)
	return p, nil
}

// incDecimal adds one to the decimal number at the end of b.
func incDecimal(b []byte) []byte {
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] != '9' {
			b[i]++
			return b
		}
		b[i] = '0'
		if i == 0 || b[i-1] < '0' || b[i-1] > '9' {
			// all nines: grow by one digit ("99" -> "100")
			b = append(b, 0)
			copy(b[i+1:], b[i:])
			b[i] = '1'
			return b
		}
	}
	return b
}

func (p *RingPicker) hashKey(key string) uint64 {
	if p.hash == nil {
		return xxhash.Sum64String(key)
	}
	return p.hash(key)
}

// position returns the ring position a key starts from: its hash, or a
// random position for the empty key.
func (p *RingPicker) position(key string) uint64 {
	if key == "" {
		return p.t.randomPosition(p.rnd)
	}
	return p.hashKey(key)
}

// Pick returns the key's backend: the owner of the first point clockwise
// from the key's hash (with LoadFactor, the first such backend that is not
// full). The empty key picks at random, in proportion to the backends'
// shares of the ring.
func (p *RingPicker) Pick(key string) (*Backend, error) {
	var h uint64 // written out: this is the hot path
	switch {
	case key == "":
		h = p.t.randomPosition(p.rnd)
	case p.hash == nil:
		h = xxhash.Sum64String(key)
	default:
		h = p.hash(key)
	}
	o := p.t.lookup(h)
	if p.loadFactor == 0 {
		return p.backends[o], nil
	}
	var inflight int64
	if p.group != nil {
		inflight = p.group.total.Load()
	}
	unit := p.loadFactor * float64(max(inflight, 0)+1) / p.totalWeight
	if b := p.backends[o]; float64(b.inflight.Load()+1) <= math.Ceil(unit*p.weights[o]) {
		return b, nil // the key's own backend has room: the common case
	}
	return p.bounded(p.t.search(h), unit), nil
}

// bounded walks clockwise from point i to the first backend below its
// capacity (unit × its weight, rounded up). Some backend always is: the
// capacities add up to at least LoadFactor × (in flight + 1), more than is
// in flight.
func (p *RingPicker) bounded(i int, unit float64) *Backend {
	n := len(p.t.own)
	first := i
	for steps := 0; steps < n; steps++ {
		o := p.t.own[i]
		b := p.backends[o]
		if float64(b.inflight.Load()+1) <= math.Ceil(unit*p.weights[o]) {
			return b
		}
		if i++; i == n {
			i = 0
		}
	}
	return p.backends[p.t.own[first]]
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
	i := p.t.search(p.position(key))
	own := p.t.own
	return appendDistinct(dst, p.backends, n, len(own), func(step int) uint32 {
		j := i + step
		if j >= len(own) {
			j -= len(own)
		}
		return own[j]
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
func (p *RingPicker) Points() int { return len(p.t.own) }

// MemoryBytes returns the memory the ring's tables hold, in bytes.
func (p *RingPicker) MemoryBytes() int {
	return p.t.memoryBytes() + len(p.weights)*8 + len(p.backends)*8
}
