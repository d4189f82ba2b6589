// Command lbsim compares lb's load-balancing strategies on a simulated
// fleet. It runs a discrete-event simulation, in simulated time, of
// clients sending requests through real lb Balancers (one per client) to
// backends with log-normal service times, a number of slots and a queue,
// while backends slow down, fail, restart, join and leave; and it reports
// per strategy the latency percentiles, errors, retries, load balance, key
// affinity and keys moved at each membership change, as Markdown tables
// and as charts (PNG and SVG).
//
// Usage:
//
//	lbsim -scenario scenarios/slow-backend.json -out ../../docs -prefix lbsim-slow-backend
//	lbsim -backends 100 -requests 1000000 -rate 50000
//
// See README.md.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "lbsim:", err)
		}
		os.Exit(2)
	}
}

// config is what the flags say.
type config struct {
	scenario     string
	validate     string
	validateJSON string
	seed         uint64
	requests     int64
	strategies   string
	out          string
	prefix       string
	charts       string
	parallel     int
	fleet        Scenario // the fleet when there is no scenario file
	median       time.Duration
	slowFactor   float64
	zipf         float64
	set          map[string]bool // flags given on the command line
}

func parseFlags(args []string, stderr io.Writer) (*config, error) {
	c := &config{set: map[string]bool{}}
	fs := flag.NewFlagSet("lbsim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.scenario, "scenario", "", "scenario file (JSON); without it, the fleet flags below describe a uniform fleet")
	fs.StringVar(&c.validate, "validate", "", "validation: run the scenarios of this directory (or file) in lbsim and on a real loopback fleet through lb's Transport, and print them side by side")
	fs.StringVar(&c.validateJSON, "validate-json", "", "with -validate: also write the comparisons to this file, as JSON")
	fs.Uint64Var(&c.seed, "seed", 0, "seed of the simulator's random draws (overrides the scenario's)")
	fs.Int64Var(&c.requests, "requests", 0, "number of requests: sets the duration to requests/rate (overrides the scenario's duration; its events must still fit)")
	fs.StringVar(&c.strategies, "strategies", "", "comma-separated strategies (default all: "+strings.Join(strategyNames, ",")+")")
	fs.StringVar(&c.out, "out", "", "directory for the charts (PNG and SVG); none when empty")
	fs.StringVar(&c.prefix, "prefix", "", "file name prefix of the charts (default lbsim-<scenario name>)")
	fs.StringVar(&c.charts, "charts", "", "comma-separated charts to write with -out: load, latency, keys-moved, share (default: every one that applies)")
	fs.IntVar(&c.parallel, "parallel", runtime.GOMAXPROCS(0), "strategies simulated at once")
	// The fleet without a scenario file; with one, these override it when given.
	f := &c.fleet
	fs.IntVar(&f.Clients, "clients", 10, "clients (each with its own lb.Balancer)")
	fs.Float64Var(&f.Load.Rate, "rate", 50_000, "release rate of an open loop, requests per second over all clients")
	fs.IntVar(&f.Keys.Count, "keys", 100_000, "size of the key space")
	fs.Float64Var(&c.zipf, "zipf", 0, "Zipf exponent (> 1) for hot keys; 0: uniform keys")
	// Fleet shape, only without a scenario file.
	backends := fs.Int("backends", 100, "backends (fleet without a scenario file)")
	fs.DurationVar(&c.median, "median", 10*time.Millisecond, "median service time (fleet without a scenario file)")
	sigma := fs.Float64("sigma", 0.5, "log-normal sigma of the service time (fleet without a scenario file)")
	slots := fs.Int("slots", 8, "calls served at once per backend (fleet without a scenario file)")
	maxQueue := fs.Int("max-queue", -1, "queue bound per backend, -1: none (fleet without a scenario file)")
	fs.Float64Var(&c.slowFactor, "slow", 1, "service time factor of the last backend, e.g. 5 for one slow backend (fleet without a scenario file)")
	maxAttempts := fs.Int("max-attempts", 3, "attempts per request, the first included (lb.WithMaxAttempts)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: lbsim [flags]\n\nSimulates a fleet under each of lb's strategies and prints Markdown tables.\n\nFlags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q (flags only; see -h)", fs.Args())
	}
	fs.Visit(func(fl *flag.Flag) { c.set[fl.Name] = true })
	f.Transport.MaxAttempts = *maxAttempts
	if c.set["max-attempts"] {
		f.Transport.given.set("max_attempts")
	}
	if c.scenario == "" {
		f.Name = "flags"
		f.Duration = Duration(time.Minute)
		g := BackendGroup{Count: *backends, Median: Duration(c.median), Sigma: *sigma, Slots: *slots, MaxQueue: *maxQueue}
		g.given.set("count", "sigma", "slots")
		if *maxQueue >= 0 {
			g.given.set("max_queue")
		} else {
			g.MaxQueue = 0
		}
		if *backends < 1 {
			return nil, fmt.Errorf("-backends is %d; it must be >= 1", *backends)
		}
		f.Backends = []BackendGroup{g}
		if c.slowFactor != 1 && *backends > 1 {
			f.Backends[0].Count--
			slow := g
			slow.Count = 1
			slow.Median = Duration(float64(g.Median) * c.slowFactor)
			f.Backends = append(f.Backends, slow)
		}
	}
	return c, nil
}

// scenario returns the scenario to run: the file's or the fleet flags',
// with the flags given on the command line applied over it.
func (c *config) loadScenario() (*Scenario, error) {
	var sc *Scenario
	if c.scenario != "" {
		var err error
		if sc, err = LoadScenario(c.scenario); err != nil {
			return nil, err
		}
		if c.set["clients"] {
			sc.Clients = c.fleet.Clients
		}
		if c.set["rate"] {
			sc.Load.Rate = c.fleet.Load.Rate
		}
		if c.set["keys"] {
			sc.Keys.Count = c.fleet.Keys.Count
		}
		if c.set["max-attempts"] {
			sc.Transport.MaxAttempts = c.fleet.Transport.MaxAttempts
			sc.Transport.given.set("max_attempts")
		}
		for _, name := range []string{"backends", "median", "sigma", "slots", "max-queue", "slow"} {
			if c.set[name] {
				return nil, fmt.Errorf("-%s describes the fleet without a scenario file; edit the scenario instead", name)
			}
		}
	} else {
		f := c.fleet
		sc = &f
	}
	if c.set["zipf"] || c.scenario == "" {
		if c.zipf != 0 {
			sc.Keys.Dist, sc.Keys.S = "zipf", c.zipf
		} else {
			sc.Keys.Dist, sc.Keys.S = "uniform", 0
		}
		sc.Keys.given.set("dist")
	}
	if c.set["seed"] {
		sc.Seed = c.seed
		sc.given.set("seed")
	}
	if c.requests != 0 {
		if c.requests < 0 {
			return nil, fmt.Errorf("-requests is %d; it must be > 0", c.requests)
		}
		if sc.Load.Arrivals == arrivalsClosed {
			return nil, errors.New("-requests sets the duration of an open loop from its rate; a closed loop has no rate")
		}
		if !(sc.Load.Rate > 0) {
			return nil, fmt.Errorf("-requests needs a rate > 0 (got %v)", sc.Load.Rate)
		}
		sc.Duration = Duration(float64(c.requests) / sc.Load.Rate * 1e9)
		sc.SampleInterval = 0
	}
	if c.strategies != "" {
		sc.Strategies = strings.Split(c.strategies, ",")
	}
	if err := sc.withDefaults(); err != nil {
		return nil, err
	}
	return sc, nil
}

func run(args []string, stdout, stderr io.Writer) error {
	c, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	if c.parallel < 1 {
		return fmt.Errorf("-parallel is %d; it must be >= 1", c.parallel)
	}
	if c.validate != "" {
		return runValidation(c.validate, c.validateJSON, c.out, stdout, stderr)
	}
	sc, err := c.loadScenario()
	if err != nil {
		return err
	}
	start := time.Now()
	results, err := RunAll(sc, c.parallel)
	if err != nil {
		return err
	}
	wall := time.Since(start)
	writeReport(stdout, sc, results, wall)
	if c.out != "" {
		prefix := c.prefix
		if prefix == "" {
			prefix = "lbsim-" + sc.Name
		}
		var only []string
		if c.charts != "" {
			only = strings.Split(c.charts, ",")
			for _, name := range only {
				if !slices.Contains(chartNames, name) {
					return fmt.Errorf("-charts: unknown chart %q; the charts are %s", name, strings.Join(chartNames, ", "))
				}
			}
		}
		files, err := WriteCharts(c.out, prefix, sc, results, only...)
		if err != nil {
			return err
		}
		for _, f := range files {
			fmt.Fprintln(stderr, "wrote", f)
		}
	}
	return nil
}

// RunAll simulates the scenario with each of its strategies, up to
// parallel at once, and returns the results in the scenario's order.
func RunAll(sc *Scenario, parallel int) ([]*Result, error) {
	results := make([]*Result, len(sc.Strategies))
	errs := make([]error, len(sc.Strategies))
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for i, name := range sc.Strategies {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			results[i], errs[i] = Run(sc, name)
		}()
	}
	wg.Wait()
	return results, errors.Join(errs...)
}

func writeReport(w io.Writer, sc *Scenario, results []*Result, wall time.Duration) {
	fmt.Fprintf(w, "## %s\n\n", sc.Name)
	if sc.Description != "" {
		fmt.Fprintf(w, "%s\n\n", sc.Description)
	}
	n := 0
	for _, g := range sc.Backends {
		n += g.Count
	}
	var reqs int64
	if len(results) > 0 {
		reqs = results[0].Requests
	}
	fmt.Fprintf(w, "%d requests over %v of simulated time (%s, %s keys, %d clients), %d backends, seed %d.\n\n",
		reqs, sc.Duration.D(), loadText(sc.Load), keysText(sc.Keys), sc.Clients, n, sc.Seed)
	WriteTable(w, results)
	fmt.Fprintln(w)
	var fleet strings.Builder
	WriteFleet(&fleet, sc, results)
	if fleet.Len() > 0 {
		fmt.Fprintf(w, "Clients per backend (their Balancers' subsets, at the start), connections per backend (clients that sent it an attempt), cross-zone attempts, p99 per client zone:\n\n%s\n", fleet.String())
	}
	var pairs strings.Builder
	WritePairs(&pairs, results)
	if pairs.Len() > 0 {
		fmt.Fprintf(w, "Client–backend pairs at each change of the set (new pairs, and those that had to be: one per pair of a backend that left):\n\n%s\n", pairs.String())
	}
	var moves strings.Builder
	WriteMoves(&moves, results)
	if moves.Len() > 0 {
		fmt.Fprintf(w, "Keys moved at each change of the picker's set (share of the key space; ideal: the least that had to move):\n\n%s\n", moves.String())
	}
	var sum time.Duration
	per := make([]string, len(results))
	for i, r := range results {
		sum += r.Wall
		per[i] = fmt.Sprintf("%s %.2fs", r.Strategy, r.Wall.Seconds())
	}
	fmt.Fprintf(w, "Simulated in %v of wall time (%v of simulation over %d strategies: %s).\n",
		wall.Round(time.Millisecond), sum.Round(time.Millisecond), len(results), strings.Join(per, ", "))
}

func keysText(k Keys) string {
	if k.Dist == "zipf" {
		return fmt.Sprintf("%d Zipf(s=%g)", k.Count, k.S)
	}
	return fmt.Sprintf("%d uniform", k.Count)
}

func loadText(l Load) string {
	var s string
	if l.Arrivals == arrivalsClosed {
		s = fmt.Sprintf("closed loop, %d workers per client", l.Workers)
		if l.Think > 0 {
			s += fmt.Sprintf(", %v think time", l.Think.D())
		}
	} else {
		s = fmt.Sprintf("%s %.0f/s", l.Arrivals, l.Rate)
		if l.Workers > 0 {
			s += fmt.Sprintf(", %d workers per client", l.Workers)
		}
	}
	if l.Timeout > 0 {
		s += fmt.Sprintf(", timeout %v", l.Timeout.D())
	}
	return s
}

// runValidation runs the validation scenarios and prints the side-by-side
// table, and each backend's share.
func runValidation(path, jsonPath, out string, w, stderr io.Writer) error {
	scs, err := validationScenarios(path)
	if err != nil {
		return err
	}
	var all []Comparison
	for _, sc := range scs {
		cs, err := Validate(sc)
		if err != nil {
			return err
		}
		all = append(all, cs...)
	}
	if jsonPath != "" {
		data, err := json.MarshalIndent(all, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(jsonPath, data, 0o644); err != nil {
			return err
		}
	}
	if out != "" {
		files, err := WriteValidationCharts(out, all)
		if err != nil {
			return err
		}
		for _, f := range files {
			fmt.Fprintln(stderr, "wrote", f)
		}
	}
	fmt.Fprintln(w, "Each cell: lbsim (mean of", simSeeds, "seeds) / real (lb's Transport on loopback). Shares are compared per class of alike backends (their total); * marks a focus backend that is one of such a class.")
	fmt.Fprintln(w)
	WriteComparisons(w, all)
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Shares of attempts per backend, lbsim / real:")
	fmt.Fprintln(w)
	for _, c := range all {
		parts := make([]string, len(c.Backends))
		for i, b := range c.Backends {
			parts[i] = fmt.Sprintf("%s %s / %s", b, pct(c.Sim.Shares[i]), pct(c.Real.Shares[i]))
		}
		fmt.Fprintf(w, "- %s, %s: %s\n", c.Scenario, c.Strategy, strings.Join(parts, ", "))
	}
	return nil
}
