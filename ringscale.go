package lb

// The default Ring at scale. Up to RingExactWeight units of weight (the
// sum of the backends' weights), Ring{} is what it always was: 1,024
// points per unit at exact 64-bit positions. Past it, a ring of 1,024
// points per unit would outgrow the caches (20 MiB at 1,000 backends) and,
// past 8,192 units, MaxRingPoints; so the default Ring scales instead, as
// Envoy's and gRPC's ring_hash do:
//
//   - The ring has about RingPointBudget points in all: a backend of
//     weight w gets max(1, ⌊w × RingPointBudget / total weight⌋) points,
//     "name#0" to "name#(count-1)", the names of the exact ring.
//   - Positions are the top 32 bits of XXH64 (keys' too), held in a
//     compact table (4.1 bytes a point, 6.0 MiB at the budget); points at
//     one position are ordered by hash name.
//
// So 10,000 backends, or weights up to MaxWeight (DNS SRV weights go to
// 65,535), always build. What it costs in movement: while the total
// weight stays above RingExactWeight, adding a backend also takes a few
// points from every backend (their share of the budget shrinks), so about
// twice the ideal 1/(N+1) of the keys move, half of them between backends
// that stay; removing one gives every backend a few points back. Crossing
// RingExactWeight (257 units and up) moves most keys once, from the exact
// ring's 1,024 points a unit to the budget's. Sets of RingExactWeight
// units or fewer keep their placement of every earlier release; a golden
// file pins each regime.

// RingExactWeight is the largest sum of weights for which the default Ring
// is the exact ring of DefaultReplicas points per unit (see above).
const RingExactWeight = 256

// RingPointBudget is the number of points the default Ring aims at past
// RingExactWeight: enough for a max/mean load of about 1.09 at 1,000
// backends.
const RingPointBudget = 1_500_000

func totalWeight(backends []*Backend) uint64 {
	var w uint64
	for _, b := range backends {
		w += uint64(b.Weight())
	}
	return w
}

// scaledPoints are the default Ring's points past RingExactWeight.
func scaledPoints(backends []*Backend) ringPoints {
	total := totalWeight(backends)
	counts := make([]int, len(backends))
	n := 0
	for i, b := range backends {
		counts[i] = int(max(1, uint64(b.Weight())*RingPointBudget/total))
		n += counts[i]
	}
	pts := ringPoints{hs: make([]uint64, n), os: make([]uint32, n), rank: nameRanks(backends, false), compact: true, shift: 32}
	var buf []byte
	j := 0
	for i, b := range backends {
		buf = append(append(buf[:0], b.HashName()...), '#', '0')
		for v := 0; v < counts[i]; v++ {
			if v > 0 {
				buf = incDecimal(buf)
			}
			pts.hs[j], pts.os[j] = XXHash(bytesString(buf))>>32, uint32(i)
			j++
		}
	}
	return pts
}
