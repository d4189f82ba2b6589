package lb

import (
	"fmt"
	"math/bits"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
)

// Anchor is consistent hashing from the jump family that allows any
// backend to leave: AnchorHash (Mendelson et al., 2021) in its
// memory-light form, over a constant-time jump (JumpBackHash's idea, Ertl
// 2024). There is no table and there are no points: each backend holds
// one bucket per unit of weight, a key's bucket is a jump over all the
// buckets ever used, and a key whose bucket was removed is rehashed, in
// O(1) expected steps, over the buckets that remained when it was removed.
// So:
//
//   - balance is that of a uniform draw (every bucket gets 1/buckets of
//     the keys: max/mean is the keys' own noise, 1.01-1.03 at 1M keys over
//     100 backends);
//   - adding a backend moves only keys to it, its fair share and no more;
//     removing one moves only its keys, each to its next preference;
//   - memory is about 36 bytes per bucket (the state, the picker's
//     indexes and the 16-byte entries a lookup reads), whatever the number
//     of keys;
//   - a lookup is one key hash and a few SplitMix64 draws (no division, no
//     floating point, no table miss).
//
// Weights are buckets: a backend of weight w holds w buckets, so its share
// is exactly w over the total, and a weight change adds or removes buckets
// like backends. The sum of the weights must be at most MaxAnchorBuckets;
// for DNS SRV-sized weights use Ring or Maglev.
//
// Placement depends on the history of the set, not only on the set: that
// is what lets any backend leave without moving others' keys. An Anchor
// keeps the history in its pickers: each Build starts from the picker the
// previous Build made. The first Build (and New) lays out the backends in
// ascending order of hash name, each its weight in consecutive buckets.
// Later Builds remove the buckets of backends that left (in ascending
// order of name, each one's buckets from the highest down) and then give
// buckets to new backends (and weight increases): first the buckets
// removed last, each restored exactly (to its former owner when that one
// is back, else to the first by name that needs one), then new buckets, in
// ascending order of name. So a backend that leaves and comes back gets
// its keys back when nothing left after it (or it comes back with those
// that did), and a backend that leaves and one that joins in one update
// (a replacement) trade keys one for one. What that means across processes:
// two clients agree on every key when they saw the same sequence of sets
// from the same start, or started from the same set; a client that starts
// later, after backends left, lays the set out afresh and disagrees with
// the older clients on the keys of the buckets that moved (for sets that
// only grew, appending in name order, they agree). Use Ring where every
// client must agree from the set alone. Use one Anchor per Balancer.
//
// The rules (the layout, the jump's draws, the rehash of removed buckets)
// are part of the compatibility promise: a golden test pins placements.
//
// The zero value is ready to use; use it by pointer (&Anchor{}), which is
// how it keeps its history.
type Anchor struct {
	// Rand, when not nil, draws the random picks of empty keys instead of
	// the runtime's generator (see Random.Rand).
	Rand rand.Source

	mu   sync.Mutex
	last *AnchorPicker
}

// MaxAnchorBuckets bounds the buckets of an Anchor: the sum of its
// backends' weights.
const MaxAnchorBuckets = 1 << 20

// AnchorPicker is the Picker built by Anchor. It also implements
// PreferenceLister.
type AnchorPicker struct {
	backends []*Backend
	s        anchorState
	// hot is what a pick reads, one entry a bucket: its backend and its
	// removal (rem, next as in s), so that a lookup reads one entry.
	hot []anchorHot
	// The buckets of backend o are ids[start[o]:start[o+1]], ascending.
	start []uint32
	ids   []uint32
	rnd   randSource
}

type anchorHot struct {
	b         *Backend // nil for a removed bucket
	rem, next uint32
}

// anchorState is AnchorHash's state over buckets 0 to a-1.
type anchorState struct {
	a       uint32
	working uint32
	// rem[b] is the number of buckets left working right after b was
	// removed; 0 for a working bucket.
	rem []uint32
	// next[b] is the bucket that took b's place when b was removed: the
	// last bucket of the view b was removed from.
	next  []uint32
	owner []uint32 // owner[b]: the backend of working bucket b
	stack []uint32 // removed buckets, in order of removal
	// former[b] is the hash name of removed bucket b's last owner.
	former map[uint32]string
}

// Build implements Builder. It starts from the picker the previous Build
// returned (see Anchor), and on success makes the new picker the start of
// the next.
func (a *Anchor) Build(backends []*Backend) (Picker, error) {
	p, err := a.build(backends)
	if err != nil {
		return nil, err
	}
	return p, nil
}

// New validates eps and builds a picker over fresh backends, continuing
// the Anchor's history like Build.
func (a *Anchor) New(eps []Endpoint) (*AnchorPicker, error) {
	bs, err := NewBackends(eps)
	if err != nil {
		return nil, err
	}
	return a.build(bs)
}

func (a *Anchor) build(backends []*Backend) (*AnchorPicker, error) {
	if err := checkBackends(backends); err != nil {
		return nil, err
	}
	if err := checkHashNames(backends); err != nil {
		return nil, err
	}
	if total := totalWeight(backends); total > MaxAnchorBuckets {
		return nil, fmt.Errorf("%w: the weights of these %d backends sum to %d; Anchor holds one bucket per unit of weight, at most %d (MaxAnchorBuckets): lower the weights, or use Ring or Maglev",
			ErrInvalidConfig, len(backends), total, MaxAnchorBuckets)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	p := &AnchorPicker{backends: backends, rnd: newRandSource(a.Rand)}
	if a.last == nil {
		p.s = freshAnchor(backends)
	} else {
		p.s = a.last.s.clone()
		p.s.update(a.last.backends, backends)
	}
	p.index()
	a.last = p
	return p, nil
}

// byName returns the backends' indexes in ascending order of hash name.
func byName(backends []*Backend) []int {
	order := make([]int, len(backends))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(x, y int) int { return strings.Compare(backends[x].HashName(), backends[y].HashName()) })
	return order
}

// freshAnchor lays the backends out in order of hash name, each its weight
// in consecutive buckets.
func freshAnchor(backends []*Backend) anchorState {
	var s anchorState
	for _, i := range byName(backends) {
		for w := 0; w < backends[i].Weight(); w++ {
			s.appendBucket(uint32(i))
		}
	}
	return s
}

func (s *anchorState) appendBucket(owner uint32) {
	s.rem = append(s.rem, 0)
	s.next = append(s.next, 0)
	s.owner = append(s.owner, owner)
	s.a++
	s.working++
}

func (s *anchorState) clone() anchorState {
	c := anchorState{a: s.a, working: s.working, rem: slices.Clone(s.rem), next: slices.Clone(s.next),
		owner: slices.Clone(s.owner), stack: slices.Clone(s.stack), former: make(map[uint32]string, len(s.former))}
	for b, name := range s.former {
		c.former[b] = name
	}
	return c
}

// update moves the state from the backends of the previous picker (old)
// to the new set: removals first, then additions (see Anchor).
func (s *anchorState) update(old, backends []*Backend) {
	now := make(map[string]int, len(backends))
	for i, b := range backends {
		now[b.HashName()] = i
	}
	// The working buckets of each old backend, ascending.
	held := make([][]uint32, len(old))
	for b := uint32(0); b < s.a; b++ {
		if s.rem[b] == 0 {
			held[s.owner[b]] = append(held[s.owner[b]], b)
		}
	}
	has := make([]int, len(backends)) // buckets each new backend keeps
	for _, o := range byName(old) {
		ids := held[o]
		keep := 0
		if i, ok := now[old[o].HashName()]; ok {
			keep = min(len(ids), backends[i].Weight())
			has[i] = keep
			for _, b := range ids[:keep] {
				s.owner[b] = uint32(i)
			}
		}
		for j := len(ids) - 1; j >= keep; j-- {
			s.remove(ids[j], old[o].HashName())
		}
	}
	// Additions: each restores the bucket removed last, to its former
	// owner if that owner is among those that need buckets, else to the
	// first (by name) that does; then new buckets, in name order.
	need := make([]int, len(backends))
	left := 0
	for i, b := range backends {
		need[i] = b.Weight() - has[i]
		left += need[i]
	}
	order := byName(backends)
	for ; left > 0 && len(s.stack) > 0; left-- {
		b := s.stack[len(s.stack)-1]
		i, ok := now[s.former[b]]
		if !ok || need[i] == 0 {
			for _, j := range order {
				if need[j] > 0 {
					i = j
					break
				}
			}
		}
		s.restore(uint32(i))
		need[i]--
	}
	for _, i := range order {
		for ; need[i] > 0; need[i]-- {
			s.appendBucket(uint32(i))
		}
	}
}

// remove takes working bucket b (of the backend named name) out: the last
// bucket of the current view takes its place, and its keys rehash over
// the buckets that remain.
func (s *anchorState) remove(b uint32, name string) {
	n := s.working - 1
	s.next[b] = s.atView(n, s.working, nil)
	s.rem[b] = n
	s.working = n
	s.stack = append(s.stack, b)
	if s.former == nil {
		s.former = make(map[uint32]string)
	}
	s.former[b] = name
}

// restore gives owner the bucket removed last: the exact inverse of its
// removal.
func (s *anchorState) restore(owner uint32) {
	b := s.stack[len(s.stack)-1]
	s.stack = s.stack[:len(s.stack)-1]
	delete(s.former, b)
	s.rem[b], s.next[b], s.owner[b] = 0, 0, owner
	s.working++
}

// anchorOverlay is removals a preference list supposes, over a state it
// does not change: the first 16 in place, more on the heap.
type anchorOverlay struct {
	n       int
	e       [16]anchorRemoval
	more    []anchorRemoval
	working uint32
}

type anchorRemoval struct{ id, rem, next uint32 }

func (o *anchorOverlay) find(b uint32) *anchorRemoval {
	if o == nil {
		return nil
	}
	for i := 0; i < o.n && i < len(o.e); i++ {
		if o.e[i].id == b {
			return &o.e[i]
		}
	}
	for i := range o.more {
		if o.more[i].id == b {
			return &o.more[i]
		}
	}
	return nil
}

func (o *anchorOverlay) add(r anchorRemoval) {
	if o.n < len(o.e) {
		o.e[o.n] = r
	} else {
		o.more = append(o.more, r)
	}
	o.n++
	o.working = r.rem
}

// remOf and nextOf read the state through the overlay.
func (s *anchorState) remOf(b uint32, o *anchorOverlay) uint32 {
	if r := o.find(b); r != nil {
		return r.rem
	}
	return s.rem[b]
}

func (s *anchorState) nextOf(b uint32, o *anchorOverlay) uint32 {
	if r := o.find(b); r != nil {
		return r.next
	}
	return s.next[b]
}

// atView returns the bucket at position c of the view of v buckets: c
// itself, unless c had left that view, then whoever took its place.
func (s *anchorState) atView(c, v uint32, o *anchorOverlay) uint32 {
	for s.remOf(c, o) >= v {
		c = s.nextOf(c, o)
	}
	return c
}

// bucket returns the key's bucket (hash h).
func (s *anchorState) bucket(h uint64) uint32 {
	b := jumpBack(h, s.a)
	for v := s.rem[b]; v != 0; v = s.rem[b] {
		c, _ := bits.Mul64(draw(h, drawAnchor+uint64(b)), uint64(v))
		b = uint32(c)
		for s.rem[b] >= v {
			b = s.next[b]
		}
	}
	return b
}

// bucketOver is bucket with the overlay's removals.
func (s *anchorState) bucketOver(h uint64, o *anchorOverlay) uint32 {
	b := jumpBack(h, s.a)
	for v := s.remOf(b, o); v != 0; v = s.remOf(b, o) {
		c, _ := bits.Mul64(draw(h, drawAnchor+uint64(b)), uint64(v))
		b = s.atView(uint32(c), v, o)
	}
	return b
}

// index lists each backend's buckets, and lays out the table picks read.
func (p *AnchorPicker) index() {
	p.hot = make([]anchorHot, p.s.a)
	for b := range p.hot {
		p.hot[b] = anchorHot{rem: p.s.rem[b], next: p.s.next[b]}
		if p.s.rem[b] == 0 {
			p.hot[b].b = p.backends[p.s.owner[b]]
		}
	}
	p.start = make([]uint32, len(p.backends)+1)
	for b := uint32(0); b < p.s.a; b++ {
		if p.s.rem[b] == 0 {
			p.start[p.s.owner[b]+1]++
		}
	}
	for i := 1; i < len(p.start); i++ {
		p.start[i] += p.start[i-1]
	}
	p.ids = make([]uint32, p.s.working)
	fill := slices.Clone(p.start)
	for b := uint32(0); b < p.s.a; b++ {
		if p.s.rem[b] == 0 {
			o := p.s.owner[b]
			p.ids[fill[o]] = b
			fill[o]++
		}
	}
}

// Pick returns the backend of the key's bucket. The empty key picks at
// random, in proportion to weight.
func (p *AnchorPicker) Pick(key string) (*Backend, error) {
	var h uint64
	if key == "" {
		h = p.rnd.uint64()
	} else {
		h = XXHash(key)
	}
	return p.lookup(h), nil
}

// lookup is anchorState.bucket over the picker's hot table.
func (p *AnchorPicker) lookup(h uint64) *Backend {
	hot := p.hot
	b := jumpBack(h, uint32(len(hot)))
	for {
		e := &hot[b]
		if e.b != nil {
			return e.b
		}
		v := e.rem
		c, _ := bits.Mul64(draw(h, drawAnchor+uint64(b)), uint64(v))
		b = uint32(c)
		for hot[b].rem >= v {
			b = hot[b].next
		}
	}
}

// AppendPreferences appends to dst up to n distinct backends in the key's
// order of preference: the first is Pick's answer, and each next one is
// where the key would go if the backends before it were removed, one at a
// time, by later Builds (the second is exactly where a Build without the
// first sends the key). It allocates nothing when dst has room and the
// backends listed hold at most 16 buckets in all; past that it allocates
// the supposed removals.
func (p *AnchorPicker) AppendPreferences(dst []*Backend, key string, n int) []*Backend {
	n = min(n, len(p.backends))
	if n <= 0 {
		return dst
	}
	var h uint64
	if key == "" {
		h = p.rnd.uint64()
	} else {
		h = XXHash(key)
	}
	o := &anchorOverlay{working: p.s.working}
	b := p.s.bucket(h)
	for {
		owner := p.s.owner[b]
		dst = append(dst, p.backends[owner])
		if n--; n == 0 || o.working <= p.start[owner+1]-p.start[owner] {
			return dst
		}
		// Suppose owner removed: its buckets from the highest down.
		ids := p.ids[p.start[owner]:p.start[owner+1]]
		for j := len(ids) - 1; j >= 0; j-- {
			w := o.working - 1
			o.add(anchorRemoval{id: ids[j], rem: w, next: p.s.atView(w, o.working, o)})
		}
		b = p.s.bucketOver(h, o)
	}
}

// Backends returns the backends the picker was built over. The slice must
// not be modified.
func (p *AnchorPicker) Backends() []*Backend { return p.backends }

// Buckets returns the number of buckets ever used (working and removed).
func (p *AnchorPicker) Buckets() int { return int(p.s.a) }

// MemoryBytes returns the memory the picker's state holds, in bytes.
func (p *AnchorPicker) MemoryBytes() int {
	return (len(p.s.rem)+len(p.s.next)+len(p.s.owner)+len(p.s.stack)+len(p.start)+len(p.ids))*4 + len(p.hot)*16 + len(p.backends)*8
}
