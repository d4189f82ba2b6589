package lb

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/cespare/xxhash/v2"
)

// Ring is a consistent-hash ring with virtual replicas. Each backend is
// hashed onto the ring at Replicas × weight points; a key goes to the
// backend of the first point at or after the key's hash, clockwise. Adding
// a backend moves only the keys that now fall on its points (about 1/(N+1)
// of them), and never moves a key between two backends that stay.
//
// A backend is placed by its hash name (Backend.HashName: the endpoint's
// HashKey, or its address when that is empty), so that its keys stay put
// when it is re-addressed. The point of replica r of the backend named n
// is Hash("n#r"), with r in decimal: since r never contains '#', two
// different (name, replica) pairs never give the same string. Points whose
// hashes collide are ordered by hash name, so placement does not depend on
// the order of the backends. These rules, the default hash and the default
// replica count are part of the compatibility promise: a key maps to the
// same backend in every process and every release (a golden test pins it).
//
// Compat builds instead the ring another system builds (groupcache,
// stathat/consistent, nginx, gRPC and Envoy ring_hash), so that lb and
// that system place every key on the same node: see Compat.
//
// The zero value is ready to use: xxhash64, DefaultReplicas, no load bound.
type Ring struct {
	// Replicas is the number of points per unit of weight; 0 means
	// DefaultReplicas (with Compat, that scheme's default), and past
	// RingExactWeight units of weight a total of about RingPointBudget
	// (see RingExactWeight). More points balance better and cost memory:
	// about 20 bytes per point at exact 64-bit positions, 4.1 in the
	// compact table of 32-bit positions (the scaled default and the CRC-32
	// compat schemes); RingPicker.MemoryBytes tells.
	Replicas int
	// Hash hashes keys and virtual-node names; nil means XXHash. It must be
	// nil with Compat: each scheme fixes its hash.
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
	// Compat, when not CompatNone, reproduces another implementation's
	// ring point for point (see the constants).
	Compat Compat
	// MinRingSize and MaxRingSize bound the number of points of a
	// CompatRingHash ring, as ring_hash's minRingSize and maxRingSize do;
	// 0 means gRPC's defaults, 1,024 and 4,096 (Envoy's maximum is
	// 8,388,608: set MaxRingSize to match Envoy). They must be 0 with
	// every other scheme.
	MinRingSize, MaxRingSize int
}

// DefaultReplicas is the default number of ring points per unit of weight,
// up to RingExactWeight units in all. With it, 1,000,000 random keys over
// 100 backends load the busiest one at about 1.07 times the mean.
const DefaultReplicas = 1024

// MaxRingPoints bounds the points of a ring whose Replicas is set, or of a
// compat scheme (Replicas × sum of weights): about 160 MB of tables. The
// default Ring never reaches it (it scales instead).
const MaxRingPoints = 1 << 23

// RingPicker is the Picker built by Ring. It also implements
// PreferenceLister.
type RingPicker struct {
	backends []*Backend
	t        ringTable    // exact 64-bit positions, when c is nil
	c        *ringTable32 // 32-bit positions: uint32(key hash >> cshift)
	cshift   uint
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

// NeedsTotalLoad implements TotalLoadBuilder: a Ring with a LoadFactor
// reads the total of the calls in flight (the Balancer then keeps it).
func (r Ring) NeedsTotalLoad() bool { return r.LoadFactor != 0 }

func (r Ring) validate() error {
	if r.Replicas < 0 || r.Replicas > MaxRingPoints {
		return fmt.Errorf("%w: Ring.Replicas is %d; it must be 0 (default %d) to %d", ErrInvalidConfig, r.Replicas, DefaultReplicas, MaxRingPoints)
	}
	if r.LoadFactor != 0 && !(r.LoadFactor >= 1 && r.LoadFactor <= 1e6) { // also rejects NaN
		return fmt.Errorf("%w: Ring.LoadFactor is %v; it must be 0 (no bound) or from 1 to 1e6", ErrInvalidConfig, r.LoadFactor)
	}
	return r.validateCompat()
}

func (r Ring) build(backends []*Backend) (*RingPicker, error) {
	if err := r.validate(); err != nil {
		return nil, err
	}
	if err := checkBackends(backends); err != nil {
		return nil, err
	}
	if err := checkHashNames(backends); err != nil {
		return nil, err
	}
	p := &RingPicker{
		backends:   backends,
		hash:       r.Hash,
		rnd:        newRandSource(r.Rand),
		loadFactor: r.LoadFactor,
		weights:    make([]float64, len(backends)),
		group:      backends[0].group,
	}
	for i, b := range backends {
		p.weights[i] = float64(b.Weight())
		p.totalWeight += p.weights[i]
	}
	pts, err := r.points(backends)
	if err != nil {
		return nil, err
	}
	if r.Compat != CompatNone {
		p.hash = r.Compat.keyHash()
	}
	if pts.compact && len(backends) <= maxTable32Owners {
		p.c, p.cshift = newRingTable32(pts.hs, pts.os, pts.rank, pts.dedupe), pts.shift
		return p, nil
	}
	for i := range pts.hs {
		pts.hs[i] >>= pts.shift
	}
	p.t = newRingTable(pts.hs, pts.os, pts.rank, pts.dedupe)
	return p, nil
}

// ringPoints are a ring's points before sorting: hs[i] is owned by backend
// os[i]; points at one position are ordered by rank (and, with dedupe,
// only the first stays).
type ringPoints struct {
	hs     []uint64
	os     []uint32
	rank   []uint32
	dedupe bool
	// compact: positions are hs[i] >> shift, below 2^32, and so are keys'
	// (their hash >> shift): the ring fits a ringTable32.
	compact bool
	shift   uint
}

// points computes the ring's points under its scheme.
func (r Ring) points(backends []*Backend) (ringPoints, error) {
	switch r.Compat {
	case CompatGroupcache, CompatStathat:
		return r.groupcachePoints(backends)
	case CompatNginx:
		return nginxPoints(backends)
	case CompatRingHash:
		return r.ringHashPoints(backends)
	}
	if r.Replicas == 0 && r.Hash == nil && totalWeight(backends) > RingExactWeight {
		return scaledPoints(backends), nil
	}
	replicas := r.Replicas
	if replicas == 0 {
		replicas = DefaultReplicas
	}
	hash := r.Hash
	if hash == nil {
		hash = XXHash
	}
	n, err := pointCount(backends, replicas, "Replicas")
	if err != nil {
		return ringPoints{}, err
	}
	// Hash every virtual node: "name#r", the backend's hash name and the
	// replica number in decimal, written into one reused buffer.
	pts := ringPoints{hs: make([]uint64, n), os: make([]uint32, n), rank: nameRanks(backends, false)}
	var buf []byte
	j := 0
	for i, b := range backends {
		buf = append(append(buf[:0], b.HashName()...), '#', '0')
		for v := 0; v < b.Weight()*replicas; v++ {
			if v > 0 {
				buf = incDecimal(buf)
			}
			pts.hs[j], pts.os[j] = hash(bytesString(buf)), uint32(i)
			j++
		}
	}
	return pts, nil
}

// pointCount returns replicas × the sum of the weights, or an error when
// that passes MaxRingPoints (field names the setting that sets replicas).
func pointCount(backends []*Backend, replicas int, field string) (int, error) {
	var total uint64
	for _, b := range backends {
		total += uint64(b.Weight()) * uint64(replicas)
		if total > MaxRingPoints {
			return 0, fmt.Errorf("%w: a Ring over these %d backends needs more than %d points (%s %d × the sum of the weights); lower %s or the weights",
				ErrInvalidConfig, len(backends), MaxRingPoints, field, replicas, field)
		}
	}
	return int(total), nil
}

// nameRanks returns each backend's rank in the order of hash names
// (descending with desc), which orders points that share a position.
func nameRanks(backends []*Backend, desc bool) []uint32 {
	order := make([]int, len(backends))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return strings.Compare(backends[a].HashName(), backends[b].HashName()) })
	rank := make([]uint32, len(backends))
	for pos, i := range order {
		if desc {
			pos = len(order) - 1 - pos
		}
		rank[i] = uint32(pos)
	}
	return rank
}

// checkHashNames rejects two backends with the same hash name (a Balancer's
// sets are validated already; backends made by separate NewBackends calls
// are not).
func checkHashNames(backends []*Backend) error {
	var seen map[string]string
	for _, b := range backends {
		if b.HashName() != b.addr && seen == nil {
			seen = make(map[string]string, len(backends))
		}
	}
	if seen == nil {
		return nil // every hash name is an address, and those are unique
	}
	for _, b := range backends {
		name := b.HashName()
		if other, dup := seen[name]; dup {
			return fmt.Errorf("%w: hash name %q of %q is also the hash name of %q; HashKeys (or the addresses of endpoints without one) must be unique", ErrDuplicateEndpoint, name, b.addr, other)
		}
		seen[name] = b.addr
	}
	return nil
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

// position returns the ring position a key starts from: its hash, or a
// random position for the empty key.
func (p *RingPicker) position(key string) uint64 {
	switch {
	case key == "" && p.c != nil:
		return p.rnd.uint64() >> (32 - p.cshift) // uniform over the positions
	case key == "":
		return p.t.randomPosition(p.rnd)
	case p.hash == nil:
		return xxhash.Sum64String(key)
	}
	return p.hash(key)
}

// Pick returns the key's backend: the owner of the first point clockwise
// from the key's hash (with LoadFactor, the first such backend that is not
// full). The empty key picks at random, in proportion to the backends'
// shares of the ring.
func (p *RingPicker) Pick(key string) (*Backend, error) {
	var h uint64 // written out: this is the hot path
	switch {
	case key == "":
		h = p.position(key)
	case p.hash == nil:
		h = xxhash.Sum64String(key)
	default:
		h = p.hash(key)
	}
	var o uint32
	if p.c != nil {
		o = p.c.lookup(uint32(h >> p.cshift))
	} else {
		o = p.t.lookup(h)
	}
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
	return p.bounded(p.search(h), unit), nil
}

// search returns the index of the first point at or after position h.
func (p *RingPicker) search(h uint64) int {
	if p.c != nil {
		return p.c.search(uint32(h >> p.cshift))
	}
	return p.t.search(h)
}

// owner returns the backend index of point i.
func (p *RingPicker) owner(i int) uint32 {
	if p.c != nil {
		return p.c.owner(i)
	}
	return p.t.own[i]
}

// bounded walks clockwise from point i to the first backend below its
// capacity (unit × its weight, rounded up). Some backend always is: the
// capacities add up to at least LoadFactor × (in flight + 1), more than is
// in flight. A backend that has been failing takes spilled keys only to
// a capacity scaled down by its failure score (a backend that fails fast
// has calls in flight to spare, and must not draw them by failing); when
// every backend is over that, the plain capacity decides.
func (p *RingPicker) bounded(i int, unit float64) *Backend {
	n := p.Points()
	for pass := 0; pass < 2; pass++ {
		j := i
		for steps := 0; steps < n; steps++ {
			o := p.owner(j)
			b := p.backends[o]
			capacity := math.Ceil(unit * p.weights[o])
			if pass == 0 {
				capacity *= 1 - b.FailureScore()
			}
			if float64(b.inflight.Load()+1) <= capacity {
				return b
			}
			if j++; j == n {
				j = 0
			}
		}
	}
	return p.backends[p.owner(i)]
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
	i := p.search(p.position(key))
	points := p.Points()
	return appendDistinct(dst, p.backends, n, points, func(step int) uint32 {
		j := i + step
		if j >= points {
			j -= points
		}
		return p.owner(j)
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
func (p *RingPicker) Points() int {
	if p.c != nil {
		return p.c.points()
	}
	return len(p.t.own)
}

// MemoryBytes returns the memory the ring's tables hold, in bytes.
func (p *RingPicker) MemoryBytes() int {
	tables := p.t.memoryBytes()
	if p.c != nil {
		tables = p.c.memoryBytes()
	}
	return tables + len(p.weights)*8 + len(p.backends)*8
}
