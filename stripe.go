package lb

import (
	"fmt"
	"math/bits"
	"runtime"
	"sync/atomic"
	"unsafe"
)

// Counters shared by all goroutines stop scaling on a multi-core machine:
// every increment moves the counter's cache line between cores. The
// rotating strategies (round robin, smooth weighted round robin) therefore
// keep several counters ("stripes"), each on its own cache line, and a
// goroutine uses the stripe its stack address hashes to. A goroutine keeps
// its stripe for as long as its stack does not move, so concurrent callers
// rarely share a line, and one caller in a loop sees the strategy's exact
// sequence (from a random starting point per stripe).
//
// Order kept: each stripe walks the strategy's exact sequence. Across
// stripes the shares stay exact up to one cycle per stripe: with S stripes,
// the pick counts of any two backends of a round robin differ by at most S.
// Stripes: 1 gives one global counter and a strict global order, at the
// price of contention under parallel load.

// stripe is one counter, alone on its cache line (128 bytes: adjacent-line
// prefetchers pull lines in pairs). The counter is its first field: next
// addresses it by the stripe's offset.
type stripe struct {
	n atomic.Uint64
	_ [120]byte
}

// stripes is a power-of-two set of counters.
type stripes struct {
	base unsafe.Pointer // &s[0]
	mask uintptr        // (len(s)-1) * 128: selects a stripe's byte offset
	s    []stripe
}

// maxStripes bounds the memory of a striped picker (128 B per stripe).
const maxStripes = 1024

// defaultStripes is 16 stripes per P, rounded up to a power of two, at
// least 32: enough that two busy goroutines rarely share one (1 in 32 for
// two), for 4 KiB per picker on 2 cores.
func defaultStripes() int {
	return max(16*runtime.GOMAXPROCS(0), 32)
}

func checkStripes(name string, n int) error {
	if n < 0 || n > maxStripes {
		return fmt.Errorf("%w: %s.Stripes is %d; it must be 0 (default) to %d", ErrInvalidConfig, name, n, maxStripes)
	}
	return nil
}

// newStripes makes n (0: the default) counters rounded up to a power of
// two, each starting at a random value below period.
func newStripes(n int, period uint64, r randSource) stripes {
	if n <= 0 {
		n = defaultStripes()
	}
	if n > maxStripes {
		n = maxStripes
	}
	size := 1 << bits.Len(uint(n-1))
	st := stripes{s: make([]stripe, size), mask: uintptr(size-1) * unsafe.Sizeof(stripe{})}
	st.base = unsafe.Pointer(&st.s[0])
	for i := range st.s {
		if period > 0 {
			st.s[i].n.Store(r.uint64n(period))
		}
	}
	return st
}

// next advances the caller's stripe and returns the value before the
// increment.
//
//go:nosplit
func (st *stripes) next() uint64 {
	var mark byte
	// Goroutine stacks are at least 2 KiB apart: the address's bits from
	// 11 up tell goroutines apart. Shifted right by 4, they become a byte
	// offset in steps of 128, one stripe each; the mask keeps it inside
	// the stripes (so unsafe.Add stays within the allocation). Two shifts
	// and a mask: this is the whole cost of striping on the hot path.
	off := (uintptr(unsafe.Pointer(&mark)) >> 4) & st.mask
	return (*atomic.Uint64)(unsafe.Add(st.base, off)).Add(1) - 1
}

// advance moves the caller's stripe, which holds a slot of [0, period),
// step slots on (step < period), and returns the slot before the move.
//
//go:nosplit
func (st *stripes) advance(step, period uint64) uint64 {
	var mark byte
	off := (uintptr(unsafe.Pointer(&mark)) >> 4) & st.mask
	c := (*atomic.Uint64)(unsafe.Add(st.base, off))
	for {
		x := c.Load()
		next := x + step // < 2 × period: no overflow while period < 2^63
		if next >= period {
			next -= period
		}
		if c.CompareAndSwap(x, next) {
			return x
		}
	}
}
