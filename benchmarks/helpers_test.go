package benchmarks

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
)

// Speed benchmarks: each peer's file calls the peer's own types directly
// (no interface between the loop and the library), over keys drawn from a
// pool of KeyPool pre-generated keys by a plain counter, so that key
// generation is not measured. Names:
// Benchmark<Peer>/<workload>/<row>/N=<n>/<serial|parallel>.

const keyMask = KeyPool - 1

var (
	benchKeys     = Keys(7, KeyPool)
	benchKeyBytes = KeyBytes(benchKeys)

	sinkString string
	sinkAny    any
	sinkLen    atomic.Uint64
	offsets    atomic.Uint64
)

// parallelStart returns a different key offset for each goroutine of a
// RunParallel, so that goroutines do not walk the pool in step.
func parallelStart() int { return int(offsets.Add(1) * 977) }

// forSizes runs body as the serial and parallel sub-benchmarks of row id
// of workload w at every size the row supports.
func forSizes(b *testing.B, w Workload, id string, body func(b *testing.B, n int, parallel bool)) {
	im, ok := Lookup(w, id)
	if !ok {
		b.Fatalf("no row %s/%s", w, id)
	}
	for _, n := range Sizes {
		if im.Supports(n) != nil {
			continue // the report says why
		}
		for _, parallel := range []bool{false, true} {
			mode := "serial"
			if parallel {
				mode = "parallel"
			}
			b.Run(fmt.Sprintf("%s/%s/N=%d/%s", w, id, n, mode), func(b *testing.B) {
				b.ReportAllocs()
				body(b, n, parallel)
			})
		}
	}
}

// The fixture of the sub-benchmarks running now: b.Run calls a
// sub-benchmark's function several times in a row (the b.N ramp, -count),
// and they share one build. A new fixture drops the old one and collects
// it, so that the live heap of one peer's tables does not slow the
// garbage collection of the next.
var (
	fixtureKey string
	fixtureVal any
)

// fixture returns the value build makes for key, built once while
// consecutive calls ask for the same key. It resets the timer.
func fixture[T any](b *testing.B, key string, build func() (T, error)) T {
	b.Helper()
	if v, ok := fixtureVal.(T); ok && key == fixtureKey {
		b.ResetTimer()
		return v
	}
	fixtureKey, fixtureVal = "", nil
	runtime.GC()
	v, err := build()
	if err != nil {
		b.Fatal(err)
	}
	fixtureKey, fixtureVal = key, v
	b.ResetTimer()
	return v
}

// key returns the fixture key of a row at n backends.
func key(w Workload, id string, n int) string { return fmt.Sprintf("%s/%s/%d", w, id, n) }
