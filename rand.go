package lb

import (
	"math/bits"
	"math/rand/v2"
	"reflect"
	"sync"
)

// Every strategy that draws random numbers (the random ones, the start of
// each round robin counter, a hash strategy's empty key) draws them from
// math/rand/v2's runtime generator: per-thread state, no lock, safe from
// any goroutine, and impossible to seed. A Builder's Rand field replaces it
// with a rand.Source of the caller's, so that a run can be repeated
// exactly: a simulation, a test. math/rand/v2's PCG and ChaCha8 are not
// safe for concurrent use, so a picker calls a Source of the caller's under
// a lock, one lock for every picker built from the same Source (a Balancer
// rebuilds its picker while the old one is still in use): a seeded picker
// is as safe for concurrent use as any other, and a run from one goroutine
// repeats exactly. The lock costs a seeded pick some 10-20 ns, and
// serialises parallel seeded picks; the default, unseeded path takes none.

// randSource is the random numbers of one picker.
type randSource struct {
	src rand.Source // nil: the runtime's generator
	mu  *sync.Mutex // guards src: shared by every randSource over it
}

// newRandSource returns the random numbers of a picker built with the
// Builder's Rand field src (nil: the runtime's generator).
func newRandSource(src rand.Source) randSource {
	if src == nil {
		return randSource{}
	}
	return randSource{src: src, mu: sourceLock(src)}
}

// sourceLocks guard callers' Sources. A Source is mapped to one of them by
// its identity (the pointer it holds), so that every picker over one
// Source takes the same lock, and pickers over different Sources rarely
// share one.
var sourceLocks [64]struct {
	sync.Mutex
	_ [56]byte // one lock per cache line
}

func sourceLock(src rand.Source) *sync.Mutex {
	var h uintptr
	switch v := reflect.ValueOf(src); v.Kind() {
	case reflect.Pointer, reflect.Map, reflect.Chan, reflect.Func, reflect.UnsafePointer, reflect.Slice:
		h = v.Pointer()
	}
	// A value that holds no pointer of its own (h == 0) shares lock 0.
	return &sourceLocks[(h>>4^h>>12)%uintptr(len(sourceLocks))].Mutex
}

// uint64 returns a uniformly random 64-bit value.
func (r randSource) uint64() uint64 {
	if r.src == nil {
		return rand.Uint64()
	}
	return r.locked()
}

// locked draws from the caller's Source under its lock (kept out of
// uint64 so that the unseeded path inlines).
func (r randSource) locked() uint64 {
	r.mu.Lock()
	v := r.src.Uint64()
	r.mu.Unlock()
	return v
}

// uint64n returns a random value in [0, n), n > 0. With a Source it maps a
// 64-bit draw onto [0, n) by a multiply (Lemire's method without the
// rejection step: the bias is below n/2^64, far below anything a picker's
// n can show).
func (r randSource) uint64n(n uint64) uint64 {
	if r.src == nil {
		return rand.Uint64N(n)
	}
	hi, _ := bits.Mul64(r.locked(), n)
	return hi
}
