package lb

import (
	"fmt"
	"math"
	"math/bits"
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
	// DefaultReplicas. More points balance better and cost memory (8 B per
	// point, plus 4-8 B per point of lookup index).
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
	// The ring's points are kept by bucket: bucket k holds the points whose
	// position >> shift is k, in clockwise order, each packed as
	// (position mod 2^shift) << lg | owner (the owner, a backend index, is
	// less than the number of buckets and fits in the lg low bits). Bucket k
	// is one 64-byte line of table, table[8k:8k+8]: a header and up to 7
	// points inline, so most lookups read one cache line. A bucket with
	// more points keeps them in overflow.
	table    []uint64
	overflow []uint64 // per overflowing bucket: the count, then the points
	npoints  int
	shift    uint   // position >> shift is the bucket number
	lg       uint   // 2^lg buckets
	remMask  uint64 // 2^shift - 1
	buckets  uint64
	maxHash  uint64
	first    ringPos // the first point clockwise from position 0
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
		hash:       r.Hash, // nil: xxhash, called directly (inlined)
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
	p.npoints = n
	j := 0
	for i, b := range backends {
		buf = append(append(buf[:0], b.addr...), '#', '0')
		for v := 0; v < b.Weight()*replicas; v++ {
			if v > 0 {
				buf = incDecimal(buf)
			}
			h := hash(bytesString(buf))
			hs[j], os[j] = h, uint32(i)
			maxHash = max(maxHash, h)
			j++
		}
	}

	// Bucket sort by the top bits of the position: buckets hold a few
	// points, so sorting them is cheap, and the same bucket boundaries
	// index lookups.
	// About 4 points per bucket keeps the index small enough to stay in
	// cache (a quarter of the points' size); there are at least as many
	// buckets as backends, so a backend index fits in lg bits.
	p.maxHash = maxHash
	lg := max(bits.Len(uint(n-1))-2, bits.Len(uint(len(backends)-1)))
	p.buckets = 1 << lg
	if used := bits.Len64(maxHash); used > lg {
		p.shift = uint(used - lg)
	}
	p.lg = uint(lg)
	p.remMask = 1<<p.shift - 1
	index := make([]uint32, p.buckets+1)
	pts := make([]uint64, n)
	own := make([]uint32, n)
	// Two passes keep memory access local: first by the top 8 bits of the
	// bucket number into 256 runs, then each run (small enough for the
	// cache) into its buckets.
	coarseShift := uint(max(lg-8, 0))
	var coarse [257]uint32
	for _, h := range hs {
		coarse[(h>>p.shift>>coarseShift)+1]++
	}
	for c := 1; c < len(coarse); c++ {
		coarse[c] += coarse[c-1]
	}
	hs2 := make([]uint64, n)
	os2 := make([]uint32, n)
	fill := coarse
	var at []uint32
	for i, h := range hs {
		c := h >> p.shift >> coarseShift
		hs2[fill[c]], os2[fill[c]] = h, os[i]
		fill[c]++
	}
	for c := 0; c < 256; c++ {
		lo, hi := coarse[c], coarse[c+1]
		kLo := uint64(c) << coarseShift
		kHi := min(uint64(c+1)<<coarseShift, p.buckets)
		if kLo >= p.buckets {
			break
		}
		idx := index[kLo : kHi+1]
		for _, h := range hs2[lo:hi] {
			idx[(h>>p.shift)-kLo+1]++
		}
		idx[0] = lo
		for k := 1; k < len(idx); k++ {
			idx[k] += idx[k-1]
		}
		at = append(at[:0], idx[:len(idx)-1]...)
		for i := lo; i < hi; i++ {
			h := hs2[i]
			k := (h >> p.shift) - kLo
			pts[at[k]], own[at[k]] = h, os2[i]
			at[k]++
		}
		for k := kLo; k < kHi; k++ {
			sortPoints(pts, own, backends, int(index[k]), int(index[k+1]))
		}
	}
	p.fillTable(pts, own, index)
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

// sortPoints insertion-sorts pts[lo:hi] (and own with it) by position,
// then by owner address: ties are ordered the same whatever the order of
// the backends.
func sortPoints(pts []uint64, own []uint32, backends []*Backend, lo, hi int) {
	less := func(h1 uint64, o1 uint32, h2 uint64, o2 uint32) bool {
		if h1 != h2 {
			return h1 < h2
		}
		return backends[o1].addr < backends[o2].addr
	}
	for i := lo + 1; i < hi; i++ {
		h, o := pts[i], own[i]
		j := i
		for j > lo && less(h, o, pts[j-1], own[j-1]) {
			pts[j], own[j] = pts[j-1], own[j-1]
			j--
		}
		pts[j], own[j] = h, o
	}
}

const (
	lineLen      = 8  // uint64s per bucket line: a header and 7 points
	inlineMax    = 7  // points a line holds
	overflowMark = 15 // header count meaning "points in overflow"
)

// fillTable lays out the sorted points (pts, own; bucket k's points are
// pts[index[k]:index[k+1]]) in bucket lines. A header is
// count (4 bits, or overflowMark) | next owner << 4 | overflow offset << 32,
// where next owner is the owner of the first point of the following
// buckets, clockwise: the answer for a key past the bucket's last point.
func (p *RingPicker) fillTable(pts []uint64, own []uint32, index []uint32) {
	p.table = make([]uint64, p.buckets*lineLen)
	pack := func(i uint32) uint64 { return (pts[i]&p.remMask)<<p.lg | uint64(own[i]) }
	// Walk backwards so the next owner is known when a bucket is laid out.
	next := own[0]
	for k := int(p.buckets) - 1; k >= 0; k-- {
		lo, hi := index[k], index[k+1]
		line := p.table[k*lineLen : (k+1)*lineLen]
		hdr := uint64(next) << 4
		if cnt := hi - lo; cnt <= inlineMax {
			hdr |= uint64(cnt)
			for j := 1; j < lineLen; j++ {
				line[j] = ^uint64(0) // never below a key's remainder
			}
			for i := lo; i < hi; i++ {
				line[1+i-lo] = pack(i)
			}
		} else {
			hdr |= overflowMark | uint64(len(p.overflow))<<32
			p.overflow = append(p.overflow, uint64(cnt))
			for i := lo; i < hi; i++ {
				p.overflow = append(p.overflow, pack(i))
			}
		}
		line[0] = hdr
		if hi > lo {
			next = own[lo]
		}
	}
	p.first = p.seek(ringPos{})
}

// ringPos is a point: the j-th of bucket k.
type ringPos struct {
	k uint64
	j int
}

// bucket returns bucket k's packed points.
func (p *RingPicker) bucket(k uint64) []uint64 {
	hdr := p.table[k*lineLen]
	cnt := hdr & 15
	if cnt != overflowMark {
		return p.table[k*lineLen+1 : k*lineLen+1+cnt]
	}
	off := hdr >> 32
	return p.overflow[off+1 : off+1+p.overflow[off]]
}

// seek returns the first point at or after the j-th of bucket k, going on
// to the following buckets (and around) when bucket k has fewer points.
func (p *RingPicker) seek(at ringPos) ringPos {
	for n := uint64(0); n <= p.buckets; n++ {
		if at.j < len(p.bucket(at.k)) {
			return at
		}
		at.k, at.j = at.k+1, 0
		if at.k == p.buckets {
			at.k = 0
		}
	}
	return at // not reached: the ring has points
}

// ownerAt returns the backend index of the point at pos.
func (p *RingPicker) ownerAt(at ringPos) uint32 {
	return uint32(p.bucket(at.k)[at.j] & (1<<p.lg - 1))
}

// lookup returns the backend index of the first point at or after
// position h: one cache line for a bucket of up to 7 points.
func (p *RingPicker) lookup(h uint64) uint32 {
	k := h >> p.shift
	if k >= p.buckets {
		return p.ownerAt(p.first)
	}
	line := p.table[k*lineLen : k*lineLen+lineLen : k*lineLen+lineLen]
	hdr := line[0]
	cnt := hdr & 15
	rem := h & p.remMask
	lg := p.lg & 63
	if cnt == overflowMark {
		pts := p.bucket(k)
		for _, x := range pts {
			if x>>lg >= rem {
				return uint32(x & (1<<lg - 1))
			}
		}
		return uint32(hdr>>4) & (1<<28 - 1)
	}
	// Count the points below the key, without branches: both sides are
	// below 2^63 (lg >= 1, rem < 2^shift), so the difference's sign bit is
	// the comparison. Unused slots hold all ones and never count.
	j := (line[1]>>lg-rem)>>63 + (line[2]>>lg-rem)>>63 + (line[3]>>lg-rem)>>63 +
		(line[4]>>lg-rem)>>63 + (line[5]>>lg-rem)>>63 + (line[6]>>lg-rem)>>63 +
		(line[7]>>lg-rem)>>63
	if j < cnt {
		return uint32(line[1+j] & (1<<lg - 1))
	}
	return uint32(hdr>>4) & (1<<28 - 1)
}

// search returns the point at or after position h, clockwise.
func (p *RingPicker) search(h uint64) ringPos {
	k := h >> p.shift
	if k >= p.buckets {
		return p.first
	}
	rem := h & p.remMask
	pts := p.bucket(k)
	j := 0
	for j < len(pts) && pts[j]>>p.lg < rem {
		j++
	}
	return p.seek(ringPos{k, j})
}

// randomPosition returns a uniformly random position in the hash's range.
func (p *RingPicker) randomPosition() uint64 {
	if p.maxHash == ^uint64(0) {
		return rand.Uint64()
	}
	return rand.Uint64N(p.maxHash + 1)
}

// start returns the point a key starts from: its hash's successor, or that
// of a random position for the empty key.
func (p *RingPicker) start(key string) ringPos {
	if key == "" {
		return p.search(p.randomPosition())
	}
	return p.search(p.hashKey(key))
}

func (p *RingPicker) hashKey(key string) uint64 {
	if p.hash == nil {
		return xxhash.Sum64String(key)
	}
	return p.hash(key)
}

// next returns the point after at, clockwise.
func (p *RingPicker) next(at ringPos) ringPos {
	return p.seek(ringPos{at.k, at.j + 1})
}

// Pick returns the key's backend: the owner of the first point clockwise
// from the key's hash (with LoadFactor, the first such backend that is not
// full). The empty key picks at random, in proportion to the backends'
// shares of the ring.
func (p *RingPicker) Pick(key string) (*Backend, error) {
	if p.loadFactor != 0 {
		return p.bounded(p.start(key)), nil
	}
	var h uint64
	if key == "" {
		h = p.randomPosition()
	} else {
		h = p.hashKey(key)
	}
	return p.backends[p.lookup(h)], nil
}

// bounded walks clockwise from at to the first backend below its
// capacity. Some backend always is: the capacities add up to at least
// LoadFactor × (in flight + 1), more than is in flight.
func (p *RingPicker) bounded(at ringPos) *Backend {
	var inflight int64
	if p.group != nil {
		inflight = p.group.total.Load()
	}
	unit := p.loadFactor * float64(max(inflight, 0)+1) / p.totalWeight
	first := at
	for steps := 0; steps < p.npoints; steps++ {
		o := p.ownerAt(at)
		b := p.backends[o]
		if float64(b.inflight.Load()+1) <= math.Ceil(unit*p.weights[o]) {
			return b
		}
		at = p.next(at)
	}
	return p.backends[p.ownerAt(first)]
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
	at := p.start(key)
	return appendDistinct(dst, p.backends, n, p.npoints, func(step int) uint32 {
		if step > 0 {
			at = p.next(at)
		}
		return p.ownerAt(at)
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
func (p *RingPicker) Points() int { return p.npoints }

// MemoryBytes returns the memory the ring's tables hold, in bytes.
func (p *RingPicker) MemoryBytes() int {
	return len(p.table)*8 + len(p.overflow)*8 + len(p.weights)*8 + len(p.backends)*8
}
