package main

import (
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Validation holds lbsim's predictions against the real thing: each
// scenario of scenarios/validate runs in lbsim and on a real loopback
// fleet through lb's real Transport (RunReal), and the figures that do not
// depend on the machine's speed (each backend's share of attempts, the
// requests that failed, the retries, the ejections) must agree within the
// tolerances below; latencies are only printed side by side (`lbsim
// -validate`), since the real ones depend on the machine.

// Tolerances of the validation.
const (
	// shareTolerance is the least tolerance on a backend's share of the
	// attempts. The tolerance is larger when one run's share varies more:
	// 3 times the larger of its standard error as a proportion of the
	// real run's attempts and its standard deviation over lbsim's seeds
	// (which is large where chance decides, such as which backend a client
	// ejects last when the whole fleet is down).
	shareTolerance = 0.02
	// countTolerance and countRelTolerance bound a count's difference
	// (failed, retried, ejected): within 5, or within 50% of the real
	// count.
	countTolerance    = 5
	countRelTolerance = 0.5
)

// simSeeds is how many seeds lbsim's side of a validation averages over.
const simSeeds = 10

// Figures is what a validation compares of one run (lbsim's: the mean
// over simSeeds seeds).
type Figures struct {
	Requests, Attempts               float64
	Failed, Retried, Ejected, Hedged float64
	Shares                           []float64   // over all runs
	RunShares                        [][]float64 // each run's
	// FocusOver is the focus backend's share of the attempts in each
	// tenth of the run (lbsim's: over all its runs).
	FocusOver                           []float64
	P50, P99                            time.Duration
	PerTryTimeouts, BodyStalls, Denied  float64
	Errors, StatusFailures, BodyFailure float64
}

// Comparison is one scenario and strategy, in lbsim and for real.
type Comparison struct {
	Scenario  string
	Strategy  string
	Duration  time.Duration // the scenario's
	Backends  []string
	Focus     int     // the backend the scenario is about (its first event's, or its slowest)
	Alike     [][]int // classes of backends that nothing tells apart
	Sim, Real Figures
	Overhead  time.Duration // lbsim's client overhead (calibrated, unless the scenario gives it)
	Lag       time.Duration // the real run's longest stall (see watchLag)
	Tries     int           // real runs made
	Disturbed string        // not empty: no real run kept the scenario's timing
	Notes     []string      // what went wrong on the real fleet, if anything
}

func figuresOf(rs []*Result, focus int) Figures {
	var f Figures
	n := float64(len(rs))
	var picks []float64
	var lat []int64
	for _, r := range rs {
		f.Requests += float64(r.Requests) / n
		f.Attempts += float64(r.Attempts) / n
		f.Failed += float64(r.Failed()) / n
		f.Errors += float64(r.Errors) / n
		f.StatusFailures += float64(r.StatusFailures) / n
		f.BodyFailure += float64(r.BodyFailures) / n
		f.Retried += float64(r.Retries) / n
		f.Ejected += float64(r.Ejections) / n
		f.Hedged += float64(r.Hedges) / n
		f.PerTryTimeouts += float64(r.PerTryTimeouts) / n
		f.BodyStalls += float64(r.BodyStalls) / n
		f.Denied += float64(r.RetriesDenied) / n
		if picks == nil {
			picks = make([]float64, len(r.Picks))
		}
		one := make([]float64, len(r.Picks))
		for i, p := range r.Picks {
			picks[i] += float64(p)
			one[i] = r.Share(i)
		}
		f.RunShares = append(f.RunShares, one)
		lat = append(lat, r.lat...)
	}
	var total float64
	for _, p := range picks {
		total += p
	}
	f.Shares = make([]float64, len(picks))
	for i, p := range picks {
		if total > 0 {
			f.Shares[i] = p / total
		}
	}
	f.FocusOver = focusOver(rs, focus, chartBins)
	slices.Sort(lat)
	pooled := &Result{lat: lat}
	f.P50, f.P99 = pooled.Quantile(0.5), pooled.Quantile(0.99)
	return f
}

// Validate runs sc with each of its strategies on a real fleet and in
// lbsim (over simSeeds seeds), and returns the comparisons. Unless the
// scenario gives the client's overhead (load.overhead), lbsim's is
// calibrated on the real run: the median time to headers of the real
// successful attempts on the fastest backends, less their service time's
// median. It is what this machine's client, kernel and servers add to
// each call, which load-aware strategies see.
func Validate(sc *Scenario) ([]Comparison, error) {
	var out []Comparison
	for _, strategy := range sc.Strategies {
		c, err := ValidateOne(sc, strategy)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// maxRealTries bounds the real runs tried for one comparison.
const maxRealTries = 3

// maxLag is the longest a real run of sc may leave its fleet without a
// CPU (watchLag) and still count: half the shortest time that decides an
// outcome (a timeout, a hedge's delay, an ejection, a health check's
// interval, a flap). Past it, the machine, not lb, decided what the timers
// did. It is at least 2 ms, and at most 250 ms.
func (sc *Scenario) maxLag() time.Duration {
	shortest := sc.Duration.D()
	consider := func(d time.Duration) {
		if d > 0 {
			shortest = min(shortest, d)
		}
	}
	consider(sc.Load.Timeout.D())
	consider(sc.Load.Think.D())
	t := &sc.Transport
	consider(t.PerTryTimeout.D())
	consider(t.BodyIdleTimeout.D())
	if h := t.Hedging; h != nil {
		consider(h.Delay.D())
		consider(h.MinDelay.D())
	}
	if o := sc.OutlierDetection; o != nil {
		consider(o.BaseEjectionTime.D())
		consider(o.Interval.D())
	}
	if s := sc.SlowStart; s != nil {
		consider(s.Window.D())
	}
	if h := sc.HealthCheck; h != nil {
		consider(h.Interval.D())
		consider(h.UnhealthyInterval.D())
		consider(h.timeout())
	}
	for i := range sc.Events {
		e := &sc.Events[i]
		consider(e.Down.D())
		consider(e.Up.D())
		consider(e.Every.D())
	}
	return min(max(shortest/2, 2*time.Millisecond), 250*time.Millisecond)
}

// ValidateOne is Validate for one strategy.
func ValidateOne(sc *Scenario, strategy string) (Comparison, error) {
	real, tries, err := RunRealSteady(sc, strategy)
	if err != nil {
		return Comparison{}, err
	}
	return Compare(sc, strategy, real, tries)
}

// RunRealSteady is RunReal, again while the machine disturbs the run (see
// disturbed), up to maxRealTries times. It returns the least disturbed
// run and the number of runs made.
func RunRealSteady(sc *Scenario, strategy string) (*Result, int, error) {
	var real *Result
	tries := 0
	for tries < maxRealTries {
		tries++
		r, err := RunReal(sc, strategy)
		if err != nil {
			return nil, tries, fmt.Errorf("%s, %s, real fleet: %w", sc.Name, strategy, err)
		}
		real = steadier(real, r)
		if sc.disturbed(r) == "" {
			break
		}
	}
	return real, tries, nil
}

// steadier returns the less disturbed of two real runs (a may be nil).
func steadier(a, b *Result) *Result {
	if a == nil || b.lag+overheadOf(b) < a.lag+overheadOf(a) {
		return b
	}
	return a
}

// overheadOf is a real run's client overhead: the median time to headers
// of its successful attempts on the fastest backends, less their service
// time's median.
func overheadOf(r *Result) time.Duration {
	if len(r.overheads) == 0 {
		return 0
	}
	o := slices.Clone(r.overheads)
	slices.Sort(o)
	return time.Duration(max(o[len(o)/2], 0))
}

// disturbed says why the machine, rather than lb, decided a real run of
// sc, or "": it left the fleet without a CPU for longer than maxLag, or
// kept it so busy that the calls' overhead passed half the fastest
// backends' median service time (the fleet was saturated, and its calls
// queued for the CPU).
func (sc *Scenario) disturbed(r *Result) string {
	fastest := time.Duration(math.MaxInt64)
	for _, g := range sc.Backends {
		fastest = min(fastest, g.Median.D())
	}
	switch o := overheadOf(r); {
	case r.lag > sc.maxLag():
		return fmt.Sprintf("the machine left the real fleet without a CPU for up to %v (the scenario's timing needs under %v)", r.lag.Round(time.Millisecond), sc.maxLag())
	case o > max(fastest/2, 2*time.Millisecond):
		return fmt.Sprintf("the real fleet's calls took %v more than their service time (more than half of %v: the machine was saturated)", o.Round(100*time.Microsecond), fastest)
	}
	return ""
}

// Compare runs sc with strategy in lbsim over simSeeds seeds and holds it
// against real, a real run of it (tries: the real runs made).
func Compare(sc *Scenario, strategy string, real *Result, tries int) (Comparison, error) {
	sim := *sc
	if !sc.Load.given.has("overhead") {
		sim.Load.Overhead = Duration(overheadOf(real))
	}
	var sims []*Result
	for k := range simSeeds {
		s := sim
		s.Seed = sc.Seed + uint64(k)
		r, err := Run(&s, strategy)
		if err != nil {
			return Comparison{}, err
		}
		sims = append(sims, r)
	}
	c := Comparison{Scenario: sc.Name, Strategy: strategy, Duration: sc.Duration.D(), Backends: real.Backends, Focus: sc.focus(), Alike: sc.alike(),
		Sim: figuresOf(sims, sc.focus()), Real: figuresOf([]*Result{real}, sc.focus()), Overhead: sim.Load.Overhead.D(), Lag: real.lag, Tries: tries}
	if why := sc.disturbed(real); why != "" {
		c.Disturbed = fmt.Sprintf("%s, in each of %d runs", why, tries)
	}
	for _, e := range real.realErrors {
		c.Notes = append(c.Notes, e.Error())
	}
	return c, nil
}

// focus is the backend a scenario is about: the first one its events
// name, or else its slowest.
func (sc *Scenario) focus() int {
	evs, _ := sc.expandEvents()
	if len(evs) > 0 {
		return evs[0].backend
	}
	best, i := 0, 0
	var slowest time.Duration
	for _, g := range sc.Backends {
		if g.Median.D() > slowest {
			slowest, best = g.Median.D(), i
		}
		i += g.Count
	}
	return best
}

// alike returns the classes of backends that nothing tells apart: of the
// same group, and named by the same events. Which of them a client ejects
// first, say, is chance, so their shares are compared as a whole.
func (sc *Scenario) alike() [][]int {
	evs, _ := sc.expandEvents()
	keys := map[string][]int{}
	var order []string
	i := 0
	for gi, g := range sc.Backends {
		for range g.Count {
			var k strings.Builder
			fmt.Fprintf(&k, "g%d", gi)
			for _, e := range evs {
				if e.backend == i {
					fmt.Fprintf(&k, "|%v %s %v", e.at, e.kind, e.factor)
					if e.fault != nil {
						fmt.Fprintf(&k, " %+v", *e.fault)
					}
				}
			}
			if keys[k.String()] == nil {
				order = append(order, k.String())
			}
			keys[k.String()] = append(keys[k.String()], i)
			i++
		}
	}
	out := make([][]int, len(order))
	for j, k := range order {
		out[j] = keys[k]
	}
	return out
}

// matched returns the shares to compare, lbsim's (the mean over its
// runs, with their standard deviation) and the real ones, with their
// labels: one per class of alike backends, the class's total share.
// Within a class, which backend gets more is chance (which one a client
// ejects last, say), and lbsim predicts the class's share, not how chance
// splits it.
func (c Comparison) matched() (sim, sd, real []float64, labels []string) {
	for _, class := range c.Alike {
		total := func(shares []float64) float64 {
			var t float64
			for _, i := range class {
				t += shares[i]
			}
			return t
		}
		var mean, sq float64
		for _, run := range c.Sim.RunShares {
			mean += total(run) / float64(len(c.Sim.RunShares))
		}
		for _, run := range c.Sim.RunShares {
			sq += (total(run) - mean) * (total(run) - mean)
		}
		label := c.Backends[class[0]]
		if len(class) > 1 {
			label = fmt.Sprintf("%s-%s", c.Backends[class[0]], c.Backends[class[len(class)-1]])
		}
		sim, sd = append(sim, mean), append(sd, math.Sqrt(sq/float64(max(len(c.Sim.RunShares)-1, 1))))
		real, labels = append(real, total(c.Real.RunShares[0])), append(labels, label)
	}
	return sim, sd, real, labels
}

// Check returns how the comparison breaks the tolerances (nothing when it
// holds).
func (c Comparison) Check() []string {
	var bad []string
	sim, sd, real, labels := c.matched()
	for i := range real {
		tol := c.shareTolerance(real[i], sd[i])
		if d := math.Abs(sim[i] - real[i]); d > tol {
			bad = append(bad, fmt.Sprintf("%s's share: lbsim %.1f%%, real %.1f%% (tolerance ±%.1f points)", labels[i], 100*sim[i], 100*real[i], 100*tol))
		}
	}
	for _, x := range []struct {
		what      string
		sim, real float64
	}{{"failed", c.Sim.Failed, c.Real.Failed}, {"retried", c.Sim.Retried, c.Real.Retried}, {"ejected", c.Sim.Ejected, c.Real.Ejected}} {
		if d := math.Abs(x.sim - x.real); d > countTolerance && d > countRelTolerance*x.real {
			bad = append(bad, fmt.Sprintf("%s: lbsim %.1f, real %.0f (tolerance ±%d or ±%.0f%%)", x.what, x.sim, x.real, countTolerance, 100*countRelTolerance))
		}
	}
	return bad
}

// shareTolerance is the tolerance on a real share p, whose lbsim runs
// vary with standard deviation sd (see shareTolerance).
func (c Comparison) shareTolerance(p, sd float64) float64 {
	se := 0.0
	if n := c.Real.Attempts; n > 0 {
		se = math.Sqrt(p * (1 - p) / n)
	}
	return max(shareTolerance, 3*max(se, sd))
}

// WriteComparisons writes the side-by-side table: each cell is lbsim's
// figure, then the real one. The largest share gap is over the classes of
// alike backends (their total shares); a focus backend's share marked *
// is one of a class, and not compared alone.
func WriteComparisons(w io.Writer, cs []Comparison) {
	fmt.Fprintln(w, "| scenario | strategy | requests | focus backend's share | largest share gap | failed | retried | ejected | hedges | p50 | p99 | within tolerance |")
	fmt.Fprintln(w, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
	for _, c := range cs {
		gap := 0.0
		sim, _, real, _ := c.matched()
		for i := range real {
			gap = max(gap, math.Abs(sim[i]-real[i]))
		}
		ok := "yes"
		if bad := c.Check(); len(bad) > 0 {
			ok = "**no**: " + strings.Join(bad, "; ")
		}
		if len(c.Notes) > 0 {
			ok += " (real fleet: " + strings.Join(c.Notes, "; ") + ")"
		}
		mark := ""
		for _, class := range c.Alike {
			if len(class) > 1 && slices.Contains(class, c.Focus) {
				mark = "*"
			}
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s: %s / %s%s | %.1f pt | %s | %s | %s | %s | %s / %s | %s / %s | %s |\n",
			c.Scenario, c.Strategy, pair(c.Sim.Requests, c.Real.Requests),
			c.Backends[c.Focus], pct(c.Sim.Shares[c.Focus]), pct(c.Real.Shares[c.Focus]), mark, 100*gap,
			pair(c.Sim.Failed, c.Real.Failed), pair(c.Sim.Retried, c.Real.Retried), pair(c.Sim.Ejected, c.Real.Ejected),
			pair(c.Sim.Hedged, c.Real.Hedged), ms(c.Sim.P50), ms(c.Real.P50), ms(c.Sim.P99), ms(c.Real.P99), ok)
	}
}

func pair(sim, real float64) string {
	return fmt.Sprintf("%s / %.0f", trimFloat(sim), real)
}

// trimFloat writes a mean count: whole when it is, else with one decimal.
func trimFloat(v float64) string {
	if v == math.Trunc(v) {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.1f", v)
}

// validationScenarios loads the scenarios of a directory (or one file).
func validationScenarios(path string) ([]*Scenario, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	files := []string{path}
	if st.IsDir() {
		if files, err = filepath.Glob(filepath.Join(path, "*.json")); err != nil {
			return nil, err
		}
		if len(files) == 0 {
			return nil, fmt.Errorf("%s: no scenario (*.json)", path)
		}
	}
	var out []*Scenario
	for _, f := range files {
		sc, err := LoadScenario(f)
		if err != nil {
			return nil, err
		}
		out = append(out, sc)
	}
	return out, nil
}

// chartBins is how many bins of time the share-over-time charts have.
const chartBins = 20

// focusOver returns backend focus's share of the attempts of runs rs in
// each of bins bins of time (NaN in a bin without attempts).
func focusOver(rs []*Result, focus, bins int) []float64 {
	mine := make([]float64, bins)
	all := make([]float64, bins)
	for _, r := range rs {
		for i, row := range r.PicksOver {
			for k, n := range row {
				b := k * bins / len(row)
				all[b] += float64(n)
				if i == focus {
					mine[b] += float64(n)
				}
			}
		}
	}
	out := make([]float64, bins)
	for b := range out {
		out[b] = math.NaN()
		if all[b] > 0 {
			out[b] = mine[b] / all[b]
		}
	}
	return out
}

// nanFloats are floats that may be NaN, which JSON writes as null.
type nanFloats []float64

// MarshalJSON writes the floats, NaN as null.
func (v nanFloats) MarshalJSON() ([]byte, error) {
	var b strings.Builder
	b.WriteByte('[')
	for i, x := range v {
		if i > 0 {
			b.WriteByte(',')
		}
		if math.IsNaN(x) {
			b.WriteString("null")
		} else {
			b.WriteString(strconv.FormatFloat(x, 'g', -1, 64))
		}
	}
	b.WriteByte(']')
	return []byte(b.String()), nil
}
