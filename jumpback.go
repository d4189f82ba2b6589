package lb

import "math/bits"

// The jump half of Anchor: a key's bucket among n buckets, such that going
// from n to n+1 buckets moves a key only to the new bucket n, with
// probability 1/(n+1) (jump consistent hashing's contract, Lamping and
// Veach 2014), in O(1) expected steps instead of jump's O(log n), by the
// idea of JumpBackHash (Ertl 2024):
//
// Bucket b >= 1 "captures" a key when the buckets grow from b to b+1,
// with probability 1/(b+1), independently of the others; the key's bucket
// among n is the largest capture below n (0 if none). In the range
// [2^k, 2^(k+1)) some bucket captures with probability exactly 1/2, and
// the largest capture there, given one, is uniform over the range. So one
// random bit per range says which ranges hold a capture; the highest such
// range below n gives a uniform offset; and only when that lands at or past
// n (in the range n falls in) do we look below it: the largest capture
// below n in the range is uniform over [0, n), a value below 2^k meaning
// none, drawn by rejection from [0, 2^(k+1)).
//
// Every draw is a fixed function of the key's hash and its purpose (which
// range, which try), so the answers for different n come from one set of
// captures: that is what makes them consistent. The range bits are the
// key hash's own low bits (XXH64 is well mixed); every other draw is one
// 64×64→128-bit multiply of the hash, xored with a constant for its
// purpose t, folded (the high half xor the low, as wyhash mixes), and
// where a draw is a candidate bucket its two 32-bit halves are two
// candidates, tried low half first.

const (
	drawGamma = 0x9e3779b97f4a7c15 // t×drawGamma keeps purposes apart
	drawMul   = 0xe7037ed1a0b428db
)

// Draw purposes (t); each range k and try i gets its own.
const (
	drawOffset = 1       // + k: the largest capture's offset in range k
	drawBelow  = 1 << 32 // + k<<20 + i: the i-th draw below n in range k
	drawAnchor = 1 << 60 // + b: where a key of removed bucket b goes
)

func draw(h, t uint64) uint64 {
	hi, lo := bits.Mul64(h^(t*drawGamma), drawMul)
	return hi ^ lo
}

// jumpBack returns the key's bucket in [0, n), n >= 1.
func jumpBack(h uint64, n uint32) uint32 {
	if n <= 1 {
		return 0
	}
	x := h & (1<<bits.Len32(n-1) - 1) // the capture bits of the ranges below n
	for x != 0 {
		k := uint64(bits.Len64(x) - 1)
		lo := uint64(1) << k
		if b := lo | draw(h, drawOffset+k)&(lo-1); b < uint64(n) {
			return uint32(b)
		}
		// n is inside this range and its largest capture is at or past n.
		if c, ok := below(h, k, lo, uint64(n)); ok {
			return uint32(c)
		}
		x ^= lo
	}
	return 0
}

// below draws the largest capture below n in range k ([lo, 2lo)), by
// rejection from [0, 2lo): false when there is none.
func below(h, k, lo, n uint64) (uint64, bool) {
	mask := lo<<1 - 1
	for i := uint64(0); ; i++ {
		r := draw(h, drawBelow+k<<20+i)
		for _, c := range [2]uint64{r & mask, r >> 32 & mask} {
			if c < lo {
				return 0, false // no capture in [lo, n)
			}
			if c < n {
				return c, true
			}
		}
	}
}
