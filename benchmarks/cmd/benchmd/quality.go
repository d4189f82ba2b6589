package main

import (
	"fmt"
	"time"

	"github.com/cespare/xxhash/v2"

	bm "github.com/go-lb/lb/benchmarks"
)

// Quality is the whole quality report.
type Quality struct {
	Keys int
	Hash map[string][]bm.HashQuality // by row ID, one per QualitySizes
	// Memory is the bytes each of bm.LbMemoryRows holds, one per bm.Sizes.
	Memory   map[string][]int
	HashRows []bm.Impl
	WRR      map[string][]WeightedResult // by row ID, one per weight set
	WRRRows  []bm.Impl
	WRand    map[string][]WeightedResult
	WRandRow []bm.Impl
	Sets     []bm.WeightSet
	// Uniform is the balance of xxhash64(key) % N, one per QualitySizes:
	// the floor any hash scheme's balance is measured against.
	Uniform []bm.LoadStats
}

// WeightedResult is a weighted row's quality over one weight set, or why
// it could not be measured.
type WeightedResult struct {
	bm.WeightedQuality
	Err error
}

// MeasureQuality computes the quality report over keys keys.
func MeasureQuality(keys int, progress func(string)) Quality {
	q := Quality{
		Keys:     keys,
		Hash:     map[string][]bm.HashQuality{},
		HashRows: bm.ImplsOf(bm.Hash),
		WRR:      map[string][]WeightedResult{},
		WRRRows:  bm.ImplsOf(bm.WeightedRR),
		WRand:    map[string][]WeightedResult{},
		WRandRow: bm.ImplsOf(bm.WeightedRandom),
		Sets:     bm.WeightSets(),
	}
	most := 0
	for _, n := range bm.QualitySizes {
		most = max(most, bm.KeysFor(n, keys))
	}
	all := bm.Keys(bm.QualitySeed, most) // each size uses a prefix
	keysAt := func(n int) []string { return all[:bm.KeysFor(n, keys)] }
	for _, n := range bm.QualitySizes {
		names := bm.Names(n)
		ks := keysAt(n)
		assign := make([]string, len(ks))
		for i, k := range ks {
			assign[i] = names[xxhash.Sum64String(k)%uint64(n)]
		}
		st, _ := bm.Load(assign, names)
		q.Uniform = append(q.Uniform, st)
	}
	for _, im := range q.HashRows {
		for _, n := range bm.QualitySizes {
			start := time.Now()
			h := bm.MeasureHash(im, n, keysAt(n))
			q.Hash[im.ID] = append(q.Hash[im.ID], h)
			progress(fmt.Sprintf("%s N=%d: max/mean %.3f, add moves %.2fx ideal (%s)", im.ID, n, h.Load.MaxMean, h.Add.Ratio(), time.Since(start).Round(time.Millisecond)))
		}
	}
	q.Memory = map[string][]int{}
	for _, id := range bm.LbMemoryRows {
		for _, n := range bm.Sizes {
			b, err := bm.LbMemory(id, n)
			if err != nil {
				b = -1
			}
			q.Memory[id] = append(q.Memory[id], b)
		}
	}
	for _, im := range q.WRRRows {
		for _, ws := range q.Sets {
			p := ws.Period()
			picks := max(1, keys/p) * p // whole periods
			w, err := bm.MeasureWeighted(im, ws, picks)
			q.WRR[im.ID] = append(q.WRR[im.ID], WeightedResult{w, err})
		}
	}
	for _, im := range q.WRandRow {
		for _, ws := range q.Sets {
			w, err := bm.MeasureWeighted(im, ws, keys)
			q.WRand[im.ID] = append(q.WRand[im.ID], WeightedResult{w, err})
		}
	}
	return q
}
