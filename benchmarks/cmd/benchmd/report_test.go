package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	bm "github.com/go-lb/lb/benchmarks"
)

// The report renders every section from a small run and a small quality
// report, names lb's rows and the peers, and lists where lb loses.
func TestWrite(t *testing.T) {
	t.Parallel()
	raw := sample + `BenchmarkGoMaglev/hash/go-maglev/N=100/serial-2 	 1000	        10.00 ns/op	       0 B/op	       0 allocs/op
BenchmarkHTTP/http/plain-idle256/c=32-2   	   10000	     30000 ns/op	         0.5 conns/1k-req	    5000 B/op	      60 allocs/op
`
	run, err := Parse(strings.NewReader(raw))
	require.NoError(t, err)
	q := fakeQuality()
	var out bytes.Buffer
	Write(&out, Config{Count: 3, Raw: "results/bench.txt", Keys: 2000}, Env{GoVersion: "go1.26.8", CPU: "AMD EPYC", Procs: "2", LbCommit: "abc123"}, run, q)
	s := out.String()
	for _, want := range []string{
		"# Benchmarks", "## Summary", "## Speed", "## HTTP", "## Quality", "## Where lb is not first", "## Notes",
		"| hash | **lb-ring** | – | – | **2.05** go-maglev |", // 20.48 / 10
		"| 32 | 32.9 | 30.0 | +2.86 µs | 1.095 | – |",         // no paired run: the per-pass ratio, no control
		"HTTP, concurrency 32: **lb** 32.9 µs/req against 30.0 µs for plain-idle256 (1.095×, paired)",
		"commit abc123",
		"speed, hash **lb-ring**: N=100 serial 2.05× go-maglev",
		"balance, N=10 **lb-ring**: max/mean 1.080 against 1.020 for go-jump",
		"| max/mean load | 100 | **lb-ring** | 1.080 | go-jump | 1.020 |",
		"stray moves, N=100 **lb-maglev**: 0.50% of keys",
		"| **lb** | {5,1,1} (nginx's example) | 7 | 0 | 4 (3) | `a a b a c a a` |",
	} {
		assert.Contains(t, s, want)
	}
	for _, im := range bm.Impls() {
		assert.Contains(t, s, "**"+im.ID+"**", "row %s is described", im.ID)
	}
	assert.NotContains(t, s, "%!", "a format error")

	// With BenchmarkHTTPPaired, the summary's difference and ratios are
	// the paired ones, and lb ÷ httplb is the ratio of the two ratios.
	raw += `BenchmarkHTTP/http/httplb-idle256/c=32-2   	   10000	     31000 ns/op	         0.5 conns/1k-req	    5000 B/op	      63 allocs/op
BenchmarkHTTPPaired/paired/lb/c=32-2 	 10000	 30000 ns/op	 30300 ns/req	 30000 plain-ns/req	 300 vs-plain-ns/req	 1.010 vs-plain-x	 0.990 control-x	 -300 control-ns/req
BenchmarkHTTPPaired/paired/httplb-idle256/c=32-2 	 10000	 30000 ns/op	 30600 ns/req	 30000 plain-ns/req	 600 vs-plain-ns/req	 1.020 vs-plain-x	 1.030 control-x	 900 control-ns/req
BenchmarkHTTPPaired/paired/httplb-idle256/c=32-2 	 10000	 30000 ns/op	 30600 ns/req	 30000 plain-ns/req	 600 vs-plain-ns/req	 1.020 vs-plain-x	 1.000 control-x	 0 control-ns/req
`
	run, err = Parse(strings.NewReader(raw))
	require.NoError(t, err)
	out.Reset()
	Write(&out, Config{Count: 3, Raw: "results/bench.txt", Keys: 2000}, Env{GoVersion: "go1.26.8", CPU: "AMD EPYC", Procs: "2", LbCommit: "abc123"}, run, q)
	s = out.String()
	// The control is the median over every paired row and pass: 1.000 of
	// 0.990, 1.030 and 1.000.
	assert.Contains(t, s, "| 32 | 32.9 | 30.0 | +0.30 µs | 1.010 | 1.000 | httplb-idle256 31.0 | 0.99 |")
	assert.Contains(t, s, "| **lb** | – | – | – | – | – | 32.9 | 30,431 | 61 | 0.6 | 1.010 |")
	assert.NotContains(t, s, "HTTP, concurrency 32: **lb**", "within 3% of plain by the paired figure")
}

// fakeQuality is a quality report with made-up figures (measuring one
// takes seconds under -race): lb-ring balances worse than go-maglev, and
// lb-maglev moves stray keys.
func fakeQuality() Quality {
	q := Quality{
		Keys: 2000, Hash: map[string][]bm.HashQuality{}, HashRows: bm.ImplsOf(bm.Hash),
		WRR: map[string][]WeightedResult{}, WRRRows: bm.ImplsOf(bm.WeightedRR),
		WRand: map[string][]WeightedResult{}, WRandRow: bm.ImplsOf(bm.WeightedRandom),
		Sets: bm.WeightSets(),
	}
	for _, n := range bm.QualitySizes {
		q.Uniform = append(q.Uniform, bm.LoadStats{MaxMean: 1.01, MinMean: 0.99, SDMean: 0.01})
		for _, im := range q.HashRows {
			h := bm.HashQuality{N: n,
				Load:   bm.LoadStats{MaxMean: 1.05, MinMean: 0.95, SDMean: 0.03},
				Add:    bm.MoveStats{Moved: 1.0 / float64(n+1), Ideal: 1.0 / float64(n+1)},
				Remove: bm.MoveStats{Moved: 1.0 / float64(n), Ideal: 1.0 / float64(n)},
			}
			switch im.ID {
			case "lb-ring":
				h.Load.MaxMean = 1.08
			case "lb-maglev", "go-maglev":
				h.Add.Stray = 0.005
			case "go-jump":
				h.Load.MaxMean = 1.02
			}
			q.Hash[im.ID] = append(q.Hash[im.ID], h)
		}
	}
	for _, ws := range q.Sets {
		for _, im := range q.WRRRows {
			q.WRR[im.ID] = append(q.WRR[im.ID], WeightedResult{WeightedQuality: bm.WeightedQuality{Weights: ws.Name, Picks: 7, LongestRun: 4, IdealRun: 3, First: "aabacaa"}})
		}
		for _, im := range q.WRandRow {
			q.WRand[im.ID] = append(q.WRand[im.ID], WeightedResult{WeightedQuality: bm.WeightedQuality{Weights: ws.Name, Picks: 1000, ShareErr: 0.01, MaxZ: 1.5, LongestRun: 9}})
		}
	}
	return q
}

// Paired figures take the median of per-pass ratios: a pass slowed by
// outside load moves both rows and leaves the ratio alone.
func TestPairedRatio(t *testing.T) {
	lb := httpCell{ns: 30, ok: true, samples: []float64{10.5, 31.5, 21}}
	plain := httpCell{ns: 20, ok: true, samples: []float64{10, 30, 20}}
	assert.InDelta(t, 1.05, pairedRatio(lb, plain), 1e-9)
	assert.InDelta(t, 1.0, pairedDiff(lb, plain), 1e-9)
	// Without samples: the ratio of the medians.
	assert.InDelta(t, 1.5, pairedRatio(httpCell{ns: 30}, httpCell{ns: 20}), 1e-9)
	assert.InDelta(t, 10, pairedDiff(httpCell{ns: 30}, httpCell{ns: 20}), 1e-9)
	// Unequal pass counts pair the first passes.
	assert.InDelta(t, 1.05, pairedRatio(lb, httpCell{samples: []float64{10, 30, 20, 99}}), 1e-9)
}
