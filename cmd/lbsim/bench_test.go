package main

import (
	"testing"
	"time"
)

// BenchmarkSimulate simulates 100,000 requests over 100 backends per
// strategy, through lb's Balancers and Policies, and reports the cost per
// simulated request.
func BenchmarkSimulate(b *testing.B) {
	for _, name := range strategyNames {
		b.Run(name, func(b *testing.B) {
			sc := &Scenario{
				Name: "bench", Duration: Duration(2 * time.Second), Load: Load{Rate: 50_000},
				Backends: []BackendGroup{{Count: 100, Median: Duration(10 * time.Millisecond)}},
			}
			if err := sc.withDefaults(); err != nil {
				b.Fatal(err)
			}
			var reqs int64
			for b.Loop() {
				r, err := Run(sc, name)
				if err != nil {
					b.Fatal(err)
				}
				reqs += r.Requests
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(reqs), "ns/request")
		})
	}
}
