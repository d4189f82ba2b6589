package main

import (
	"fmt"
	"math"

	bm "github.com/go-lb/lb/benchmarks"
)

type httpCell struct {
	ns, allocs, conns float64
	ok                bool
	samples           []float64 // ns/op, one per pass, in pass order
}

// pairedRatio is the median over the passes of a's time over b's in the
// same pass: rows of one pass run back to back, so a burst of load from
// elsewhere lands on both, where the ratio of the medians would take it
// whole.
func pairedRatio(a, b httpCell) float64 {
	n := min(len(a.samples), len(b.samples))
	if n == 0 {
		return a.ns / b.ns
	}
	r := make([]float64, n)
	for i := range r {
		r[i] = a.samples[i] / b.samples[i]
	}
	return median(r)
}

// pairedDiff is the median over the passes of a's time minus b's.
func pairedDiff(a, b httpCell) float64 {
	n := min(len(a.samples), len(b.samples))
	if n == 0 {
		return a.ns - b.ns
	}
	d := make([]float64, n)
	for i := range d {
		d[i] = a.samples[i] - b.samples[i]
	}
	return median(d)
}

func httpCells(run *Run) map[HTTPName]httpCell {
	m := map[HTTPName]httpCell{}
	for name, r := range run.Results {
		hn, ok := ParseHTTPName(name)
		if !ok {
			continue
		}
		var c httpCell
		c.ns, c.ok = r.Median("ns/op")
		c.samples = r.Samples["ns/op"]
		c.allocs, _ = r.Median("allocs/op")
		c.conns, _ = r.Median("conns/1k-req")
		m[hn] = c
	}
	return m
}

// vsPlain is a client's comparison with plain-idle256 from
// BenchmarkHTTPPaired, where the two take turns in blocks of a few
// milliseconds: medians over the passes of the time ratio and difference.
type vsPlain struct {
	x, ns float64
	ok    bool
}

func pairedCells(run *Run) map[HTTPName]vsPlain {
	m := map[HTTPName]vsPlain{}
	for name, r := range run.Results {
		hn, ok := ParseHTTPPairedName(name)
		if !ok {
			continue
		}
		var v vsPlain
		var okNs bool
		v.x, v.ok = r.Median("vs-plain-x")
		v.ns, okNs = r.Median("vs-plain-ns/req")
		v.ok = v.ok && okNs
		m[hn] = v
	}
	return m
}

// lbOver returns lb's time over client id's at concurrency c: the ratio of
// their paired ratios with plain-idle256 when both were measured, else the
// median of the per-pass ratios of BenchmarkHTTP.
func lbOver(cells map[HTTPName]httpCell, paired map[HTTPName]vsPlain, id string, c int) (float64, bool) {
	l, x := paired[HTTPName{"lb", c}], paired[HTTPName{id, c}]
	switch {
	case id == "plain-idle256" && l.ok:
		return l.x, true
	case l.ok && x.ok:
		return l.x / x.x, true
	}
	lc, xc := cells[HTTPName{"lb", c}], cells[HTTPName{id, c}]
	if !lc.ok || !xc.ok {
		return 0, false
	}
	return pairedRatio(lc, xc), true
}

// controlX returns the median at concurrency c of control-x, plain B's
// time over plain A's in BenchmarkHTTPPaired, over every paired row and
// pass: how far two identical clients differ on the machine, the noise an
// lb ÷ plain figure is read against.
func controlX(run *Run, c int) (float64, bool) {
	var xs []float64
	for name, r := range run.Results {
		if hn, ok := ParseHTTPPairedName(name); ok && hn.Concurrency == c {
			xs = append(xs, r.Samples["control-x"]...)
		}
	}
	if len(xs) == 0 {
		return 0, false
	}
	return median(xs), true
}

func (w writer) httpSummary(run *Run) {
	cells := httpCells(run)
	if len(cells) == 0 {
		return
	}
	paired := pairedCells(run)
	w.p("HTTP, %d loopback backends: µs per request (wall time over all callers); the plain client with lb's pool", bm.HTTPBackends)
	w.p("(plain-idle256) is the transport's floor, the difference is lb.Transport's cost. Times are medians over the passes.")
	w.p("Differences and ratios come from BenchmarkHTTPPaired, where each client and two plain-idle256 clients take turns on")
	w.p("one fleet in blocks of a few milliseconds, so that load from elsewhere on the machine slows each alike (lb ÷ httplb is")
	w.p("the ratio of their two ratios to plain); without it, from the per-pass pairs of BenchmarkHTTP. The control is one")
	w.p("plain client's time over the other's: identical clients differ by that much here, so smaller differences are noise.")
	w.p("")
	w.p("| callers | lb | plain-idle256 | lb − plain | lb ÷ plain | control: plain ÷ plain | best httplb row | lb ÷ httplb |")
	w.p("|--:|--:|--:|--:|--:|--:|---|--:|")
	for _, c := range bm.HTTPConcurrency {
		l := cells[HTTPName{"lb", c}]
		p := cells[HTTPName{"plain-idle256", c}]
		if !l.ok || !p.ok {
			continue
		}
		var best httpCell
		bestID := ""
		for _, row := range bm.HTTPRows() {
			if row.Lb || row.Baseline {
				continue
			}
			if x := cells[HTTPName{row.ID, c}]; x.ok && (bestID == "" || x.ns < best.ns) {
				best, bestID = x, row.ID
			}
		}
		vsBest := "–"
		if r, ok := lbOver(cells, paired, bestID, c); ok && bestID != "" {
			vsBest = fmtRatio(r)
		}
		diff, ratio := pairedDiff(l, p), pairedRatio(l, p)
		if v := paired[HTTPName{"lb", c}]; v.ok {
			diff, ratio = v.ns, v.x
		}
		control := "–"
		if x, ok := controlX(run, c); ok {
			control = fmtRatio3(x)
		}
		w.p("| %d | %s | %s | %+.2f µs | %s | %s | %s %s | %s |", c, fmtUs(l.ns), fmtUs(p.ns), diff/1000, fmtRatio3(ratio), control, bestID, fmtUs(best.ns), vsBest)
	}
	w.p("")
}

func (w writer) http(run *Run) {
	cells := httpCells(run)
	if len(cells) == 0 {
		return
	}
	paired := pairedCells(run)
	w.p("## HTTP: one GET through each client")
	w.p("")
	w.p("%d loopback `httptest` HTTP/1.1 backends answering \"ok\"; every request's body is read and closed. µs/req is wall time per", bm.HTTPBackends)
	w.p("request over all callers (throughput = callers / latency); allocs/op counts the whole process, the in-process")
	w.p("servers included, so compare differences; new conns is TCP connections the backends accepted per 1,000 requests after")
	w.p("a warm-up (connection churn); ÷ plain is the client's time over the mean of two plain-idle256 clients', taking turns")
	w.p("with them in blocks of a few milliseconds (BenchmarkHTTPPaired).")
	w.p("")
	hdr := "| client |"
	sep := "|---|"
	for _, c := range bm.HTTPConcurrency {
		hdr += fmt.Sprintf(" c=%d µs/req | c=%d req/s | c=%d allocs/op | c=%d new conns/1k | c=%d ÷ plain |", c, c, c, c, c)
		sep += "--:|--:|--:|--:|--:|"
	}
	w.p("%s", hdr)
	w.p("%s", sep)
	for _, row := range bm.HTTPRows() {
		name := row.ID
		if row.Lb {
			name = "**" + name + "**"
		}
		line := "| " + name + " |"
		for _, c := range bm.HTTPConcurrency {
			x := cells[HTTPName{row.ID, c}]
			if !x.ok {
				line += " – | – | – | – | – |"
				continue
			}
			vs := "–"
			if v := paired[HTTPName{row.ID, c}]; v.ok {
				vs = fmtRatio3(v.x)
			}
			line += fmt.Sprintf(" %s | %s | %g | %.1f | %s |", fmtUs(x.ns), thousands(int(math.Round(1e9/x.ns))), x.allocs, x.conns, vs)
		}
		w.p("%s", line)
	}
	w.p("")
	w.p("<details><summary>Clients: libraries, versions, settings</summary>")
	w.p("")
	for _, row := range bm.HTTPRows() {
		w.p("- **%s**: `%s` %s: %s.", row.ID, row.Library, w.version(row.Module), row.Settings)
	}
	w.p("")
	w.p("</details>")
	w.p("")
}
