package main

import (
	"fmt"
	"math"
	"strings"

	bm "github.com/go-lb/lb/benchmarks"
)

// bestHashOf returns the peer hash row, among those keep accepts, with the
// lowest f at quality size i ("" if none).
func bestHashOf(q Quality, i int, f func(bm.HashQuality) float64, keep func(bm.Impl) bool) string {
	id, v := "", math.Inf(1)
	for _, im := range q.HashRows {
		if im.Lb || im.Baseline || !keep(im) {
			continue
		}
		if h := q.Hash[im.ID][i]; h.Err == nil && f(h) < v {
			id, v = im.ID, f(h)
		}
	}
	return id
}

// peersNamed names best and the other peers (among keep) that tie with it
// on f at quality size i.
func peersNamed(q Quality, i int, f func(bm.HashQuality) float64, best string, keep func(bm.Impl) bool) string {
	if best == "" {
		return "–"
	}
	v := f(q.Hash[best][i])
	var ids []string
	for _, im := range q.HashRows {
		if im.Lb || im.Baseline || !keep(im) {
			continue
		}
		if h := q.Hash[im.ID][i]; h.Err == nil && f(h) == v {
			ids = append(ids, im.ID)
		}
	}
	if len(ids) > 3 {
		return fmt.Sprintf("%s and %d others", strings.Join(ids[:2], ", "), len(ids)-2)
	}
	return strings.Join(ids, ", ")
}

func showOf(q Quality, id string, i int, show func(bm.HashQuality) string) string {
	if id == "" {
		return "–"
	}
	return show(q.Hash[id][i])
}

// strayBest names the peers whose stray moves at quality size i are v.
func strayBest(q Quality, i int, v float64) string {
	var ids []string
	for _, im := range q.HashRows {
		if im.Lb || im.Baseline {
			continue
		}
		if h := q.Hash[im.ID][i]; h.Err == nil && h.Add.Stray+h.Remove.Stray == v {
			ids = append(ids, im.ID)
		}
	}
	if len(ids) > 3 {
		return fmt.Sprintf("%s and %d other peers", strings.Join(ids[:2], ", "), len(ids)-2)
	}
	return strings.Join(ids, ", ")
}

// signedDist returns the add ratio of row id minus 1 (for display).
func signedDist(q Quality, id string, i int) float64 {
	if hs, ok := q.Hash[id]; ok {
		return hs[i].Add.Ratio() - 1
	}
	return math.NaN()
}

// bestHash returns the peer hash row with the lowest f at quality size i.
func bestHash(q Quality, i int, f func(bm.HashQuality) float64) (string, float64) {
	id, v := "", math.Inf(1)
	for _, im := range q.HashRows {
		if im.Lb || im.Baseline {
			continue
		}
		h := q.Hash[im.ID][i]
		if h.Err != nil {
			continue
		}
		if x := f(h); x < v {
			id, v = im.ID, x
		}
	}
	return id, v
}

func (w writer) quality(q Quality) {
	w.p("## Quality")
	w.p("")
	w.p("Deterministic: %s (seed %d) over backends `10.0.0.0:8080`, `10.0.0.1:8080`, ...; each row is built afresh for", keysDesc(q.Keys), bm.QualitySeed)
	w.p("N-1, N and N+1 backends (the last one removed or appended: the only change jump hashing supports).")
	w.p("")
	w.p("### Balance of keys over backends")
	w.p("")
	w.p("max/mean: keys of the busiest backend ÷ the mean (1.000 is perfect); sd/mean: the coefficient of variation.")
	ref := make([]string, len(bm.QualitySizes))
	for i, n := range bm.QualitySizes {
		ref[i] = fmt.Sprintf("%.3f at N=%d", q.Uniform[i].MaxMean, n)
	}
	w.p("The floor is set by the keys themselves: the same keys spread by `xxhash64(key) %% N` (uniform, not consistent) give max/mean %s.", strings.Join(ref, " and "))
	w.p("")
	hdr, sep := "| row | settings |", "|---|---|"
	for _, n := range bm.QualitySizes {
		hdr += fmt.Sprintf(" N=%d max/mean | N=%d sd/mean |", n, n)
		sep += "--:|--:|"
	}
	w.p("%s", hdr)
	w.p("%s", sep)
	for _, im := range q.HashRows {
		line := fmt.Sprintf("| %s | %s |", bold(im.ID, im.Lb), im.Settings)
		for i := range bm.QualitySizes {
			h := q.Hash[im.ID][i]
			if h.Err != nil {
				line += " – | – |"
				continue
			}
			line += fmt.Sprintf(" %.3f | %.3f |", h.Load.MaxMean, h.Load.SDMean)
		}
		w.p("%s", line)
	}
	w.p("")
	w.p("### Keys moved by one membership change")
	w.p("")
	w.p("Adding a backend to N must move at least 1/(N+1) of the keys (its fair share), removing one at least 1/N (its keys).")
	w.p("Cells: %% of keys moved (× that ideal); stray: %% of keys moved between two backends present before and after.")
	w.p("")
	hdr, sep = "| row |", "|---|"
	for _, n := range bm.QualitySizes {
		hdr += fmt.Sprintf(" N=%d add | stray | N=%d remove | stray |", n, n)
		sep += "--:|--:|--:|--:|"
	}
	w.p("%s", hdr)
	w.p("%s", sep)
	for _, im := range q.HashRows {
		line := "| " + bold(im.ID, im.Lb) + " |"
		for i := range bm.QualitySizes {
			h := q.Hash[im.ID][i]
			if h.Err != nil {
				line += " – | – | – | – |"
				continue
			}
			line += fmt.Sprintf(" %s (%.2f×) | %s | %s (%.2f×) | %s |", pct(h.Add.Moved), h.Add.Ratio(), pct(h.Add.Stray), pct(h.Remove.Moved), h.Remove.Ratio(), pct(h.Remove.Stray))
		}
		w.p("%s", line)
	}
	w.p("")
	w.p("### Weighted round robin: shares and smoothness")
	w.p("")
	w.p("Picks from one goroutine over whole periods (period = sum of weights ÷ their gcd). Share error: the largest")
	w.p("relative gap between a backend's picks and weight/sum (0%% is exact). Longest run: the longest run of one backend")
	w.p("anywhere in the stream, across period boundaries; ideal: the shortest the weights allow in a repeating sequence.")
	w.p("")
	w.weighted(q.WRRRows, q.WRR, q.Sets, true)
	w.p("### Weighted random: shares")
	w.p("")
	w.p("Random, so not exactly reproducible: lb draws from math/rand/v2's per-thread generator and smallnest's RandW seeds")
	w.p("itself from the clock. Share error: the largest relative gap between a backend's picks and weight/sum, dominated")
	w.p("by sampling noise on the lightest backends; max z: the same gap in standard deviations of a fair sampler's count,")
	w.p("which for a fair sampler is about 1.5 to 3.5 (the largest of N draws of a normal variable).")
	w.p("")
	w.weighted(q.WRandRow, q.WRand, q.Sets, false)
}

func (w writer) weighted(rows []bm.Impl, res map[string][]WeightedResult, sets []bm.WeightSet, rr bool) {
	if rr {
		w.p("| row | weights | picks | share error | longest run (ideal) | first period |")
		w.p("|---|---|--:|--:|--:|---|")
	} else {
		w.p("| row | weights | picks | share error | max z | longest run |")
		w.p("|---|---|--:|--:|--:|--:|")
	}
	for _, im := range rows {
		for j, ws := range sets {
			r := res[im.ID][j]
			if r.Err != nil {
				w.p("| %s | %s | – | error: %v | |", bold(im.ID, im.Lb), ws.Name, r.Err)
				continue
			}
			if rr {
				first := r.First
				if first == "" {
					first = "–"
				} else {
					first = "`" + strings.Join(strings.Split(first, ""), " ") + "`"
				}
				w.p("| %s | %s | %s | %s | %d (%d) | %s |", bold(im.ID, im.Lb), ws.Name, thousands(r.Picks), pct(r.ShareErr), r.LongestRun, r.IdealRun, first)
			} else {
				w.p("| %s | %s | %s | %s | %.2f | %d |", bold(im.ID, im.Lb), ws.Name, thousands(r.Picks), pct(r.ShareErr), r.MaxZ, r.LongestRun)
			}
		}
	}
	w.p("")
}

// memory writes the size of lb's hash tables.
func (w writer) memory(q Quality) {
	if len(q.Memory) == 0 {
		return
	}
	w.p("## Memory of lb's hash pickers")
	w.p("")
	w.p("MiB held by each picker's tables (`MemoryBytes`), unweighted backends.")
	w.p("")
	head, sep := "| row |", "|---|"
	for _, n := range bm.Sizes {
		head += fmt.Sprintf(" N=%d |", n)
		sep += "---:|"
	}
	w.p("%s", head)
	w.p("%s", sep)
	for _, id := range bm.LbMemoryRows {
		line := "| " + id + " |"
		for _, b := range q.Memory[id] {
			if b < 0 {
				line += " - |"
			} else {
				line += fmt.Sprintf(" %.3f |", float64(b)/(1<<20))
			}
		}
		w.p("%s", line)
	}
	w.p("")
}
