package lb

import (
	"math/bits"
	"slices"
)

// ringTable32 is a ring of 32-bit positions in 4 bytes a point plus
// an eighth of a byte of directory, laid out so that a lookup reads two cache lines.
//
// The position range is cut into 2^lg buckets (about 32 points each). The
// directory holds, for each bucket, the index of its first point (or of
// the next point after it, when it has none). Each point is one uint32:
// the low 32-lg bits of its position (its offset in its bucket) above its
// owner's index (lg bits: there are at least as many buckets as owners).
// A key's bucket gives a short run of points; the first whose offset is at
// or after the key's is its point, and if none is, the first point of the
// buckets after. The comparison is exact: offset and bucket make up the
// whole 32-bit position.
type ringTable32 struct {
	dir   []uint32 // 2^lg + 1 entries: dir[k] is the first point at or after bucket k
	ent   []uint32 // the points in order, then a copy of the first (for wrapping)
	fsh   uint     // 32 - lg: a position's bucket is pos >> fsh
	fmask uint32   // the offset bits: 1<<fsh - 1
	ob    uint     // owner bits (lg)
	omask uint32
}

// pointsPerBucket is the directory's density: fewer points per bucket is
// a longer directory and a shorter scan.
const pointsPerBucket = 32

// maxTable32Owners bounds the owners a ringTable32 indexes (owner and
// offset share a uint32).
const maxTable32Owners = 1 << 24

// newRingTable32 sorts the points (positions hs, below 2^32; owners os) by
// position then owner rank, keeps only the first of equal positions when
// dedupe is set, and builds the table.
func newRingTable32(hs []uint64, os []uint32, rank []uint32, dedupe bool) *ringTable32 {
	n := len(hs)
	owners := len(rank)
	keys := make([]uint64, n) // position << 32 | rank: one sort orders both
	byRank := make([]uint32, owners)
	for o, r := range rank {
		byRank[r] = uint32(o)
	}
	for i := range hs {
		keys[i] = hs[i]<<32 | uint64(rank[os[i]])
	}
	slices.Sort(keys)
	if dedupe {
		j := 0
		for i, k := range keys {
			if i > 0 && k>>32 == keys[j-1]>>32 {
				continue
			}
			keys[j] = k
			j++
		}
		keys = keys[:j]
		n = j
	}
	lg := uint(max(bits.Len(uint(n/pointsPerBucket)), bits.Len(uint(owners-1)), 1))
	t := &ringTable32{fsh: 32 - lg, ob: lg}
	t.fmask = uint32(1)<<t.fsh - 1
	t.omask = uint32(1)<<lg - 1
	t.ent = make([]uint32, n+1)
	t.dir = make([]uint32, 1<<lg+1)
	k := 0 // the next bucket whose start is not set
	for i, key := range keys {
		pos := uint32(key >> 32)
		for b := int(pos >> t.fsh); k <= b; k++ {
			t.dir[k] = uint32(i)
		}
		t.ent[i] = (pos&t.fmask)<<t.ob | byRank[uint32(key)]
	}
	for ; k < len(t.dir); k++ {
		t.dir[k] = uint32(n)
	}
	t.ent[n] = t.ent[0]
	return t
}

// scan returns the index of the first point at or after position h: its
// bucket's run, or the first point after it (len(ent)-1 past the last).
func (t *ringTable32) scan(h uint32) uint32 {
	k := h >> t.fsh
	i, end := t.dir[k], t.dir[k+1]
	f := h & t.fmask
	for ; i < end; i++ {
		if t.ent[i]>>t.ob >= f {
			break
		}
	}
	return i
}

// search returns the index of the first point at or after position h,
// clockwise (0 past the last point).
func (t *ringTable32) search(h uint32) int {
	if i := int(t.scan(h)); i < len(t.ent)-1 {
		return i
	}
	return 0
}

// lookup returns the owner of the first point at or after position h (the
// copy of the first point past the last one wraps around).
func (t *ringTable32) lookup(h uint32) uint32 { return t.ent[t.scan(h)] & t.omask }

// owner returns the owner of point i.
func (t *ringTable32) owner(i int) uint32 { return t.ent[i] & t.omask }

// points returns the number of points.
func (t *ringTable32) points() int { return len(t.ent) - 1 }

func (t *ringTable32) memoryBytes() int { return len(t.dir)*4 + len(t.ent)*4 }
