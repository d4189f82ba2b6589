package lb

import (
	"math/bits"
	"sort"
)

// ringTable is a ring's points in clockwise order, and a lookup table that
// finds most keys' backend in one 4-byte read.
//
// Positions are scaled to fill 64 bits (shifted left by up, so hashes of a
// smaller range, like CRC-32's, spread over the table too). The lookup
// table cuts the scaled range into 2^lg equal slots, at least two per
// point, so most slots hold no point or one. A slot's entry holds the
// owner of the first point at or after the slot's start and the top 15
// bits of that point's offset in the slot (all ones when the point is past
// the slot): a key before it goes to that owner, a key after it to the
// next slot's. Slots with more than one point (about 5%) hold instead the
// index of their first point, and those keys compare full positions; so do
// the rare keys whose 15 bits equal their slot's point's.
type ringTable struct {
	pos     []uint64 // scaled positions, sorted (ties by owner rank)
	own     []uint32 // own[i] is the backend index of point i
	slots   []uint32 // 2^lg entries and one more: slot 0's, for wrapping
	lg      uint     // log2 of the number of slots
	up      uint     // scale: position << up
	maxHash uint64   // the largest position: keys above it wrap to point 0
}

const (
	slotMulti   = 1 << 31 // the slot holds several points: the rest is an index
	slotOwner   = 1<<16 - 1
	fracBits    = 15
	fracNone    = 1<<fracBits - 1 // no point in the slot
	slotsPerPt  = 2               // at least 2 slots per point
	slotIdxMask = slotMulti - 1
	// maxSlotBackends is the most backends the slot table indexes (owners
	// are 16 bits); larger rings use binary search.
	maxSlotBackends = 1 << 16
)

// newRingTable sorts the points (hs[i] owned by backend os[i]) and builds
// the lookup table. Points at the same position are ordered by their
// owners' rank (rank[o], distinct for distinct owners); with dedupe, only
// the first of them stays (the others could never be reached, and a
// preference list must not list them). It reuses hs and os as scratch
// space.
func newRingTable(hs []uint64, os []uint32, rank []uint32, dedupe bool) ringTable {
	var t ringTable
	for _, h := range hs {
		t.maxHash = max(t.maxHash, h)
	}
	t.up = uint(64 - bits.Len64(t.maxHash))
	for i := range hs {
		hs[i] <<= t.up & 63
	}
	if t.up == 64 { // every position is 0
		clear(hs)
	}
	t.pos, t.own = sortPoints(hs, os, rank)
	if dedupe {
		t.pos, t.own = dedupePoints(t.pos, t.own)
	}
	if len(rank) <= maxSlotBackends {
		t.fillSlots()
	}
	return t
}

// sortPoints sorts the scaled positions hs (owners os) by position, then by
// owner rank, so that ties are ordered the same whatever the order of the
// backends. Two bucket passes keep memory access local: by the top 8
// bits into 256 runs, then each run (small enough for the cache) by the
// top lg bits into about one point per bucket, which insertion sort
// finishes.
func sortPoints(hs []uint64, os []uint32, rank []uint32) ([]uint64, []uint32) {
	n := len(hs)
	lg := max(bits.Len(uint(n-1)), 8)
	hs2 := make([]uint64, n)
	os2 := make([]uint32, n)
	var coarse [257]int
	for _, h := range hs {
		coarse[(h>>56)+1]++
	}
	for c := 1; c < len(coarse); c++ {
		coarse[c] += coarse[c-1]
	}
	fill := coarse
	for i, h := range hs {
		c := h >> 56
		hs2[fill[c]], os2[fill[c]] = h, os[i]
		fill[c]++
	}
	// Second pass: back into hs and os, bucket by bucket.
	fineShift := uint(64 - lg)
	perCoarse := 1 << (lg - 8)
	counts := make([]int, perCoarse+1)
	less := func(h1 uint64, o1 uint32, h2 uint64, o2 uint32) bool {
		if h1 != h2 {
			return h1 < h2
		}
		return rank[o1] < rank[o2]
	}
	for c := 0; c < 256; c++ {
		lo, hi := coarse[c], coarse[c+1]
		if hi-lo == 0 {
			continue
		}
		clear(counts)
		base := uint64(c) << (lg - 8)
		for _, h := range hs2[lo:hi] {
			counts[(h>>fineShift)-base+1]++
		}
		counts[0] = lo
		for k := 1; k < len(counts); k++ {
			counts[k] += counts[k-1]
		}
		for i := lo; i < hi; i++ {
			h := hs2[i]
			k := (h >> fineShift) - base
			hs[counts[k]], os[counts[k]] = h, os2[i]
			counts[k]++
		}
		// Insertion sort of the run: it is bucket-sorted already, so each
		// point moves at most past the few of its own bucket.
		for i := lo + 1; i < hi; i++ {
			h, o := hs[i], os[i]
			j := i
			for j > lo && less(h, o, hs[j-1], os[j-1]) {
				hs[j], os[j] = hs[j-1], os[j-1]
				j--
			}
			hs[j], os[j] = h, o
		}
	}
	return hs, os
}

// dedupePoints keeps the first of the points at each position.
func dedupePoints(pos []uint64, own []uint32) ([]uint64, []uint32) {
	j := 0
	for i := range pos {
		if i > 0 && pos[i] == pos[j-1] {
			continue
		}
		pos[j], own[j] = pos[i], own[i]
		j++
	}
	return pos[:j], own[:j]
}

// fillSlots builds the slot table over the sorted points.
func (t *ringTable) fillSlots() {
	n := len(t.pos)
	t.lg = uint(max(bits.Len(uint(n*slotsPerPt-1)), 1))
	m := 1 << t.lg
	t.slots = make([]uint32, m+1)
	// Walk the slots backwards with i the first point at or after the
	// slot's start.
	i := n
	shift := 64 - t.lg
	pos := t.pos
	for k := m - 1; k >= 0; k-- {
		end := i // first point past slot k
		for i > 0 && pos[i-1]>>shift >= uint64(k) {
			i--
		}
		first := i
		if first == n {
			first = 0
		}
		switch {
		case end-i > 1:
			t.slots[k] = slotMulti | uint32(i)
		case end-i == 1:
			frac := t.pos[i] << t.lg >> (64 - fracBits)
			if frac == fracNone { // would read as an empty slot
				t.slots[k] = slotMulti | uint32(i)
			} else {
				t.slots[k] = uint32(frac)<<16 | t.own[i]
			}
		default: // no point in the slot: the next point's owner, for every key
			t.slots[k] = fracNone<<16 | t.own[first]
		}
	}
	// Past the last slot: around to the first point.
	t.slots[m] = fracNone<<16 | t.own[0]
}

// lookup returns the owner of the first point at or after position h,
// clockwise.
func (t *ringTable) lookup(h uint64) uint32 {
	if h > t.maxHash {
		return t.own[0] // past the last point: around to the first
	}
	s := h << (t.up & 63)
	if t.slots == nil {
		return t.own[t.searchScaled(s)]
	}
	k := s >> (64 - t.lg&63)
	e := t.slots[k]
	if e&slotMulti == 0 {
		kf := uint32(s << (t.lg & 63) >> (64 - fracBits))
		f := e >> 16
		if kf < f {
			return e & slotOwner
		}
		if kf > f {
			next := t.slots[k+1]
			if next&slotMulti == 0 {
				return next & slotOwner
			}
			return t.own[next&slotIdxMask]
		}
		return t.own[t.searchScaled(s)] // the same 15 bits: compare in full
	}
	return t.own[t.scan(int(e&slotIdxMask), s)]
}

// search returns the index of the first point at or after position h,
// clockwise.
func (t *ringTable) search(h uint64) int {
	if h > t.maxHash {
		return 0
	}
	s := h << (t.up & 63)
	if t.slots != nil {
		if e := t.slots[s>>(64-t.lg&63)]; e&slotMulti != 0 {
			return t.scan(int(e&slotIdxMask), s)
		}
	}
	return t.searchScaled(s)
}

// scan returns the index of the first point at or after scaled position s,
// starting at point i (a point at or before s's bucket).
func (t *ringTable) scan(i int, s uint64) int {
	for i < len(t.pos) && t.pos[i] < s {
		i++
	}
	if i == len(t.pos) {
		return 0
	}
	return i
}

// searchScaled is a binary search over every point.
func (t *ringTable) searchScaled(s uint64) int {
	i := sort.Search(len(t.pos), func(i int) bool { return t.pos[i] >= s })
	if i == len(t.pos) {
		return 0
	}
	return i
}

// randomPosition returns a uniformly random position in the hash's range.
func (t *ringTable) randomPosition(r randSource) uint64 {
	if t.maxHash == ^uint64(0) {
		return r.uint64()
	}
	return r.uint64n(t.maxHash + 1)
}

func (t *ringTable) memoryBytes() int {
	return len(t.pos)*8 + len(t.own)*4 + len(t.slots)*4
}
