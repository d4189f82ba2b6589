package main

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"
)

// Result is what one strategy did in one scenario (in lbsim, or on the
// real fleet of the validation).
type Result struct {
	Strategy string
	Backends []string // names, in order
	Slots    []int    // each backend's slots

	Requests       int64 // released
	Errors         int64 // ended without a response (the Transport's error, the caller's deadline)
	StatusFailures int64 // ended with a 4xx or 5xx response
	BodyFailures   int64 // ended with a body that failed after its headers (stalled, reset, the deadline)
	Unfinished     int64 // not ended when the run stopped
	Attempts       int64 // picks: first attempts, retries and hedges
	Retries        int64 // attempts after a failure (lb.TransportStats.Retries)
	RetriesDenied  int64 // retries and hedges the retry budget refused
	Hedges         int64
	HedgeWins      int64
	PerTryTimeouts int64
	BodyStalls     int64 // bodies ended by the body idle timeout
	Shed           int64 // attempts a full backend queue answered with a 503
	Ejections      int64 // outlier ejections, over every client's Balancer
	// ProbesNotDelayed counts simulated health probes that returned at
	// once because 31 of the client's probes were already waiting (see
	// maxBlockedProbes).
	ProbesNotDelayed int64
	Statuses         map[int]int64 // the 4xx and 5xx responses callers got, by status

	// Large fleets. ClientsPerBackend is, per backend, the clients whose
	// Balancer uses it at the start (their subsets: the connections they
	// may open); Connections, per backend, the clients that sent it an
	// attempt during the run. ZoneAttempts counts the attempts of clients
	// with a zone, CrossZone those that went to a backend of another zone;
	// ZoneP99 is the p99 latency of each client zone's successful requests.
	ClientsPerBackend []int
	Connections       []int
	ZoneAttempts      int64
	CrossZone         int64
	ZoneP99           map[string]time.Duration
	// CrossZoneOver and ZoneAttemptsOver are CrossZone and ZoneAttempts
	// per sample interval.
	CrossZoneOver, ZoneAttemptsOver []uint64

	// Latency percentiles of the successful requests, from their release
	// to the end of the response (queueing for a worker, retries and
	// hedges included).
	P50, P99, P999, Mean time.Duration
	// SameBackend is the share of successful requests served by the
	// backend that served their key's previous successful request (NaN
	// when no key repeats).
	SameBackend float64
	// MaxMeanPicks and MaxMeanInflight compare the busiest backend to the
	// mean: picks per second and mean calls in service or queued, both per
	// unit of weight and over the time each backend was in the set.
	MaxMeanPicks, MaxMeanInflight float64

	Picks []uint64    // attempts per backend
	Load  [][]float64 // [backend][sample]: mean calls in service or queued
	// PicksOver is the attempts per backend per sample interval:
	// [backend][sample], the last one running to the end.
	PicksOver [][]uint64
	Moves     []Move // one per change of the endpoint set
	Wall      time.Duration

	realErrors          []error       // what went wrong on a real fleet (a backend that could not restart)
	overheads           []int64       // real fleet: successful attempts' time to headers, less the service's median, on the fastest backends
	lag                 time.Duration // real fleet: the longest the process went without a CPU (see watchLag)
	lat                 []int64       // successful requests' latencies (sorted by summarise)
	failLat             []int64       // the other requests' times to their end
	zoneLats            map[string][]int64
	keyRepeats, keySame int64
	pickRate            []float64
	meanInflight        []float64
	everPresent         []bool // per backend: in the set at some time
	startPresent        []bool // per backend: in the set at the start
	sampleInterval      time.Duration
}

// Failed is the requests that did not end with a successful response.
func (r *Result) Failed() int64 { return r.Errors + r.StatusFailures + r.BodyFailures + r.Unfinished }

// Share returns backend i's share of the attempts.
func (r *Result) Share(i int) float64 {
	var total uint64
	for _, p := range r.Picks {
		total += p
	}
	if total == 0 {
		return 0
	}
	return float64(r.Picks[i]) / float64(total)
}

func (r *Result) statusCount(code int) {
	if r.Statuses == nil {
		r.Statuses = map[int]int64{}
	}
	r.Statuses[code]++
}

// Move is one change of the set the pickers are built over.
type Move struct {
	At    time.Duration
	Label string
	Moved float64 // share of the key space placed elsewhere (NaN: the strategy does not place keys)
	Ideal float64 // the least share that had to move
	// PairsMoved is the client–backend pairs of the clients' Balancers
	// (their subsets) that are new after the change; PairsMust those that
	// had to be, one for each pair of a backend that left.
	PairsMoved, PairsMust int
}

func newResult(sc *Scenario, strategy string, names []string, samples int) *Result {
	r := &Result{
		Strategy:       strategy,
		Backends:       names,
		Picks:          make([]uint64, len(names)),
		Load:           make([][]float64, len(names)),
		PicksOver:      make([][]uint64, len(names)),
		pickRate:       make([]float64, len(names)),
		meanInflight:   make([]float64, len(names)),
		sampleInterval: sc.SampleInterval.D(),
		lat:            make([]int64, 0, sc.requestsHint()),
	}
	for i := range r.Load {
		r.Load[i] = make([]float64, samples)
		r.PicksOver[i] = make([]uint64, samples)
	}
	for _, g := range sc.Backends {
		for range g.Count {
			r.Slots = append(r.Slots, g.Slots)
		}
	}
	return r
}

func (r *Result) summarise() {
	slices.Sort(r.lat)
	if len(r.zoneLats) > 0 {
		r.ZoneP99 = map[string]time.Duration{}
		for z, l := range r.zoneLats {
			slices.Sort(l)
			r.ZoneP99[z] = (&Result{lat: l}).Quantile(0.99)
		}
	}
	r.P50, r.P99, r.P999 = r.Quantile(0.5), r.Quantile(0.99), r.Quantile(0.999)
	if n := len(r.lat); n > 0 {
		var sum float64
		for _, v := range r.lat {
			sum += float64(v)
		}
		r.Mean = time.Duration(sum / float64(n))
	}
	r.SameBackend = math.NaN()
	if r.keyRepeats > 0 {
		r.SameBackend = float64(r.keySame) / float64(r.keyRepeats)
	}
	r.MaxMeanPicks = maxOverMean(r.pickRate)
	r.MaxMeanInflight = maxOverMean(r.meanInflight)
}

// Quantile returns the q-quantile (nearest rank) of the successful
// requests' latencies.
func (r *Result) Quantile(q float64) time.Duration {
	n := len(r.lat)
	if n == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(n))) - 1
	return time.Duration(r.lat[min(max(i, 0), n-1)])
}

// FractionAtMost returns the share of successful requests whose latency is
// at most d.
func (r *Result) FractionAtMost(d time.Duration) float64 {
	if len(r.lat) == 0 {
		return 0
	}
	i, _ := slices.BinarySearch(r.lat, int64(d)+1)
	return float64(i) / float64(len(r.lat))
}

// Successes is the number of requests that succeeded.
func (r *Result) Successes() int { return len(r.lat) }

// FailRate is Failed / Requests.
func (r *Result) FailRate() float64 { return ratio(r.Failed(), r.Requests) }

// RetryRate is Retries / Requests.
func (r *Result) RetryRate() float64 { return ratio(r.Retries, r.Requests) }

func ratio(a, b int64) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// maxOverMean ignores NaN (backends never in the set).
func maxOverMean(v []float64) float64 {
	var sum, hi float64
	n := 0
	for _, x := range v {
		if math.IsNaN(x) {
			continue
		}
		sum += x
		hi = max(hi, x)
		n++
	}
	if n == 0 || sum == 0 {
		return math.NaN()
	}
	return hi / (sum / float64(n))
}

// MeanMoved is the mean share of keys moved per change (NaN when the
// strategy does not place keys or nothing changed).
func (r *Result) MeanMoved() float64 {
	var sum float64
	n := 0
	for _, m := range r.Moves {
		if !math.IsNaN(m.Moved) {
			sum += m.Moved
			n++
		}
	}
	if n == 0 {
		return math.NaN()
	}
	return sum / float64(n)
}

// WriteTable writes the results as a Markdown table, one row per strategy.
func WriteTable(w io.Writer, results []*Result) {
	fmt.Fprintln(w, "| strategy | p50 | p99 | p99.9 | failed | retries | hedges | ejections | max/mean picks | max/mean in-flight | same backend | keys moved per change |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range results {
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %d | %s | %s | %s | %s |\n",
			r.Strategy, ms(r.P50), ms(r.P99), ms(r.P999),
			pct(r.FailRate()), pct(r.RetryRate()), pct(ratio(r.Hedges, r.Requests)), r.Ejections,
			num(r.MaxMeanPicks), num(r.MaxMeanInflight), pct(r.SameBackend), pct(r.MeanMoved()))
	}
}

// WriteMoves writes the keys moved at each change, one column per
// strategy that places keys. It writes nothing when no strategy does or
// nothing changed.
func WriteMoves(w io.Writer, results []*Result) {
	var cols []*Result
	for _, r := range results {
		if hashes(r.Strategy) {
			cols = append(cols, r)
		}
	}
	if len(cols) == 0 || len(cols[0].Moves) == 0 {
		return
	}
	head := []string{"#", "time", "change", "ideal"}
	for _, r := range cols {
		head = append(head, r.Strategy)
	}
	fmt.Fprintf(w, "| %s |\n", strings.Join(head, " | "))
	fmt.Fprintf(w, "|---|---:|---|%s\n", strings.Repeat("---:|", len(head)-3))
	for i, m := range cols[0].Moves {
		row := []string{fmt.Sprint(i + 1), fmt.Sprintf("%.2fs", m.At.Seconds()), m.Label, pct(m.Ideal)}
		for _, r := range cols {
			v := math.NaN()
			if i < len(r.Moves) { // every strategy sees the same changes
				v = r.Moves[i].Moved
			}
			row = append(row, pct(v))
		}
		fmt.Fprintf(w, "| %s |\n", strings.Join(row, " | "))
	}
}

func ms(d time.Duration) string {
	v := float64(d) / 1e6
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f ms", v)
	case v >= 10:
		return fmt.Sprintf("%.1f ms", v)
	}
	return fmt.Sprintf("%.2f ms", v)
}

func pct(v float64) string {
	if math.IsNaN(v) {
		return "-"
	}
	p := v * 100
	if p != 0 && p < 0.1 {
		return fmt.Sprintf("%.3f%%", p)
	}
	return fmt.Sprintf("%.1f%%", p)
}

func num(v float64) string {
	if math.IsNaN(v) {
		return "-"
	}
	return fmt.Sprintf("%.2f", v)
}

// pickAt counts an attempt on backend i at time t since the start.
func (r *Result) pickAt(i int, t time.Duration) {
	row := r.PicksOver[i]
	k := int(t / max(r.sampleInterval, 1))
	row[min(max(k, 0), len(row)-1)]++
}

// zoneLat records a successful request's latency for client zone z.
func (r *Result) zoneLat(z string, d int64) {
	if r.zoneLats == nil {
		r.zoneLats = map[string][]int64{}
	}
	r.zoneLats[z] = append(r.zoneLats[z], d)
}

// CrossZoneShare is the share of the zoned clients' attempts that went
// to another zone (NaN without zones).
func (r *Result) CrossZoneShare() float64 {
	if r.ZoneAttempts == 0 {
		return math.NaN()
	}
	return float64(r.CrossZone) / float64(r.ZoneAttempts)
}

// spread returns the mean of v, and its max and min over the mean (only
// the entries keep says to).
func spread(v []int, keep func(i int) bool) (mean, hi, lo float64) {
	n, sum := 0, 0
	mx, mn := 0, math.MaxInt
	for i, x := range v {
		if keep != nil && !keep(i) {
			continue
		}
		n++
		sum += x
		mx, mn = max(mx, x), min(mn, x)
	}
	if n == 0 || sum == 0 {
		return 0, math.NaN(), math.NaN()
	}
	mean = float64(sum) / float64(n)
	return mean, float64(mx) / mean, float64(mn) / mean
}

// WriteFleet writes, for a scenario with subsetting, zones or more than
// 100 clients, each strategy's clients and connections per backend,
// cross-zone share and p99 per client zone. It writes nothing for other
// scenarios.
func WriteFleet(w io.Writer, sc *Scenario, results []*Result) {
	if sc.Subset == nil && len(sc.ClientZones) == 0 && sc.Clients <= 100 {
		return
	}
	fmt.Fprintln(w, "| strategy | clients per backend: mean | max/mean | min/mean | connections per backend: mean | max/mean | cross-zone attempts | p99 per client zone |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---|")
	for _, r := range results {
		cm, chi, clo := spread(r.ClientsPerBackend, func(i int) bool { return r.startPresent[i] })
		nm, nhi, _ := spread(r.Connections, func(i int) bool { return r.everPresent[i] })
		var zones []string
		for _, z := range sc.ClientZones {
			zones = append(zones, fmt.Sprintf("%s %s", z, ms(r.ZoneP99[z])))
		}
		fmt.Fprintf(w, "| %s | %.1f | %s | %s | %.1f | %s | %s | %s |\n", r.Strategy, cm, num(chi), num(clo), nm, num(nhi), pct(r.CrossZoneShare()), strings.Join(zones, ", "))
	}
}

// WritePairs writes the client–backend pairs moved at each change of the
// set (the same for every strategy: subsets do not depend on it). It
// writes nothing when nothing changed.
func WritePairs(w io.Writer, results []*Result) {
	if len(results) == 0 || len(results[0].Moves) == 0 {
		return
	}
	fmt.Fprintln(w, "| # | time | change | new pairs | pairs that had to move | new / had to |")
	fmt.Fprintln(w, "|---|---:|---|---:|---:|---:|")
	for i, m := range results[0].Moves {
		ratio := math.NaN()
		if m.PairsMust > 0 {
			ratio = float64(m.PairsMoved) / float64(m.PairsMust)
		}
		fmt.Fprintf(w, "| %d | %.2fs | %s | %d | %d | %s |\n", i+1, m.At.Seconds(), m.Label, m.PairsMoved, m.PairsMust, num(ratio))
	}
}
