package lb

import (
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"
)

// Benchmarks of the control path: what a request pays when membership or
// health changes under it.

// BenchmarkEjectingDone is a pick and the Done of its failed call, which
// ejects the backend, on a Ring over N backends: ns/op is both, done-ns/op
// the Done alone, the cost on the failing request's goroutine (the picker
// is rebuilt in the background, on the other cores).
func BenchmarkEjectingDone(b *testing.B) {
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprintf("Ring/N=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			eps := benchEndpoints(n, false)
			od := OutlierDetection{ConsecutiveFailures: 1, BaseEjectionTime: time.Hour, MaxEjectionPercent: 100}
			var bal *Balancer
			fail := errors.New("refused")
			ejected := n
			var inDone time.Duration // in the Done that ejects, alone
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if ejected >= n-1 { // all but one out: start again
					b.StopTimer()
					if bal != nil {
						bal.Close()
					}
					var err error
					bal, err = NewBalancer(Ring{}, WithEndpoints(eps), WithOutlierDetection(od))
					if err != nil {
						b.Fatal(err)
					}
					ejected = 0
					b.StartTimer()
				}
				pk, err := bal.Pick(strconv.Itoa(i))
				if err != nil {
					b.Fatal(err)
				}
				t0 := time.Now()
				pk.Done(fail, time.Millisecond)
				inDone += time.Since(t0)
				ejected++
			}
			b.StopTimer()
			b.ReportMetric(float64(inDone.Nanoseconds())/float64(b.N), "done-ns/op")
			bal.Close()
		})
	}
}

// BenchmarkWeightedRoundRobinHuge picks past the precomputed schedule: a
// period of 100,000 (equal weights) or 90,000 (weights 1 to 5) slots.
func BenchmarkWeightedRoundRobinHuge(b *testing.B) {
	for _, tc := range []struct {
		name     string
		n        int
		weighted bool
	}{{"equal/N=100000", 100_000, false}, {"weighted/N=30000", 30_000, true}} {
		p, err := WeightedRoundRobin{}.New(benchEndpoints(tc.n, tc.weighted))
		if err != nil {
			b.Fatal(err)
		}
		b.Run(tc.name+"/serial", func(b *testing.B) {
			b.ReportAllocs()
			var be *Backend
			for i := 0; i < b.N; i++ {
				be, _ = p.Pick("")
			}
			sinkBackend = be
		})
		b.Run(tc.name+"/parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				var be *Backend
				for pb.Next() {
					be, _ = p.Pick("")
				}
				sinkParallel.Store(be)
			})
		})
	}
}

// BenchmarkNewBackendPool is the first request's work for a backend the
// default base has no transport for yet, with N transports there already
// (a cold start over N backends).
func BenchmarkNewBackendPool(b *testing.B) {
	for _, n := range []int{1000, 8000} {
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			base := newBaseTransport(nil, 2, nil)
			for i := 0; i < n; i++ {
				base.poolFor(poolKey{addr: fmt.Sprintf("10.1.%d.%d:80", i>>8, i&255)})
			}
			keys := make([]poolKey, b.N)
			for i := range keys {
				keys[i] = poolKey{addr: fmt.Sprintf("10.2.%d.%d:%d", i>>16&255, i>>8&255, 1+i&255)}
			}
			b.ResetTimer()
			for i := range keys {
				base.poolFor(keys[i])
			}
		})
	}
}

// BenchmarkBuildLarge builds pickers over 10,000 backends of weights 1 to
// 5 (SRV-like sets): no strategy's build may grow with N × period.
func BenchmarkBuildLarge(b *testing.B) {
	bs, err := NewBackends(benchEndpoints(10_000, true))
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name    string
		builder Builder
	}{{"WeightedRoundRobin", WeightedRoundRobin{}}, {"RoundRobin", RoundRobin{}}, {"P2C", P2C{}}, {"WeightedRandom", WeightedRandom{}}} {
		b.Run(bc.name+"/N=10000", func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if _, err := bc.builder.Build(bs); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
