package lb

import (
	"math/bits"
	"math/rand/v2"
)

// Every strategy that draws random numbers (the random ones, the start of
// each round robin counter, a hash strategy's empty key) draws them from
// math/rand/v2's runtime generator: per-thread state, no lock, safe from
// any goroutine, and impossible to seed. A Builder's Rand field replaces it
// with a rand.Source of the caller's, so that a run can be repeated
// exactly: a simulation, a test. The picker calls the Source from every
// goroutine that picks, without a lock; math/rand/v2's PCG and ChaCha8 are
// not safe for concurrent use, so a seeded picker is for one goroutine at a
// time (or wrap the Source in a lock).

// randSource is the random numbers of one picker.
type randSource struct {
	src rand.Source // nil: the runtime's generator
}

// uint64 returns a uniformly random 64-bit value.
func (r randSource) uint64() uint64 {
	if r.src == nil {
		return rand.Uint64()
	}
	return r.src.Uint64()
}

// uint64n returns a random value in [0, n), n > 0. With a Source it maps a
// 64-bit draw onto [0, n) by a multiply (Lemire's method without the
// rejection step: the bias is below n/2^64, far below anything a picker's
// n can show).
func (r randSource) uint64n(n uint64) uint64 {
	if r.src == nil {
		return rand.Uint64N(n)
	}
	hi, _ := bits.Mul64(r.src.Uint64(), n)
	return hi
}
