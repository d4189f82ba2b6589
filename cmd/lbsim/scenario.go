package main

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"
)

// Scenario describes a fleet, its workload and what happens to it. It is
// read from a JSON file (see scenarios/) or built from flags. Zero fields
// take the defaults set in withDefaults.
type Scenario struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	// Seed seeds every random draw the simulator makes (arrivals, keys,
	// service times, failures); 0 means 1.
	Seed uint64 `json:"seed"`
	// Duration is how long requests arrive, in simulated time.
	Duration Duration `json:"duration"`
	// Rate is the mean arrival rate in requests per second (Poisson).
	Rate float64 `json:"rate"`
	// Clients is the number of client processes, each with its own
	// lb.Balancer (its own view of calls in flight); default 10.
	Clients int `json:"clients"`
	// Retries is how many times a failed request is retried on another
	// backend (Balancer.PickNext); default 2. Use 0 for none.
	Retries *int `json:"retries"`
	// FailLatency is how long a failing call takes (a refused connection, a
	// fast 503, a rejection by a full queue); default 1ms.
	FailLatency Duration `json:"fail_latency"`
	Keys        Keys     `json:"keys"`
	// HealthCheck, when set, runs active health checks in simulated time
	// and marks backends down and up with Balancer.SetHealthy.
	HealthCheck *HealthCheck   `json:"health_check"`
	Backends    []BackendGroup `json:"backends"`
	Events      []Event        `json:"events"`
	// Strategies to compare; default all (see strategyNames).
	Strategies []string `json:"strategies"`
	// SampleInterval is the resolution of the load-over-time chart;
	// default Duration/120.
	SampleInterval Duration `json:"sample_interval"`
}

// Keys describes the requests' hash keys.
type Keys struct {
	// Count is the size of the key space; default 100,000.
	Count int `json:"count"`
	// Dist is "uniform" (default) or "zipf" (a few hot keys).
	Dist string `json:"dist"`
	// S is the Zipf exponent, > 1; default 1.1. Larger is hotter.
	S float64 `json:"s"`
}

// HealthCheck is an active health check run by the simulator every
// Interval on every backend in the set: a check fails when the backend is
// killed, and with probability error_rate when it is failing.
type HealthCheck struct {
	Interval Duration `json:"interval"`
	// UnhealthyAfter failed checks in a row mark a backend down; default 2.
	UnhealthyAfter int `json:"unhealthy_after"`
	// HealthyAfter passed checks in a row mark it up again; default 1.
	HealthyAfter int `json:"healthy_after"`
}

// BackendGroup is Count backends alike. Backends are named b00, b01, ...
// (address "b00:80") in the order of the groups.
type BackendGroup struct {
	// Count is the number of backends in the group; default 1.
	Count int `json:"count"`
	// Weight is the endpoint weight given to lb; default 1.
	Weight int `json:"weight"`
	// Median and Sigma shape the log-normal service time: median × e^(σZ),
	// Z standard normal. Sigma default 0.5.
	Median Duration `json:"median"`
	Sigma  float64  `json:"sigma"`
	// Slots is how many calls the backend serves at once; default 8.
	Slots int `json:"slots"`
	// MaxQueue bounds the calls waiting for a slot; a call arriving at a
	// full queue is rejected (a fast failure). 0 means unbounded.
	MaxQueue int `json:"max_queue"`
	// Absent backends are defined but not in the set at the start (an
	// "add" event brings them in).
	Absent bool `json:"absent"`
}

// Event kinds.
const (
	evAdd            = "add"             // put the backend in the endpoint set (Balancer.Update)
	evRemove         = "remove"          // take it out of the set; its calls in flight finish
	evFail           = "fail"            // its calls fail with probability error_rate
	evRecover        = "recover"         // it stops failing
	evSlow           = "slow"            // its service times are multiplied by factor (1 restores)
	evKill           = "kill"            // the process dies: calls in flight fail, new ones are refused
	evStart          = "start"           // the process is back
	evRestart        = "restart"         // kill, then start after down
	evRollingRestart = "rolling_restart" // restart backends one after another, every apart
)

var eventKinds = []string{evAdd, evRemove, evFail, evRecover, evSlow, evKill, evStart, evRestart, evRollingRestart}

// Event is something that happens to the fleet at a simulated time.
type Event struct {
	At      Duration `json:"at"`
	Kind    string   `json:"kind"`
	Backend string   `json:"backend"`
	// Backends lists the backends of a rolling restart; empty means every
	// backend in the set at that time.
	Backends  []string `json:"backends"`
	ErrorRate float64  `json:"error_rate"` // fail: default 1
	Factor    float64  `json:"factor"`     // slow
	Down      Duration `json:"down"`       // restart, rolling_restart
	Every     Duration `json:"every"`      // rolling_restart
}

// Duration is a time.Duration written in JSON as a string ("250ms", "1m").
type Duration time.Duration

// UnmarshalJSON reads a duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("want a duration string such as \"10ms\", got %s", b)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q is not a duration (such as \"10ms\" or \"1m30s\")", s)
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// LoadScenario reads and validates a scenario file.
func LoadScenario(path string) (*Scenario, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc, err := ParseScenario(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return sc, nil
}

// ParseScenario decodes a JSON scenario (unknown fields are errors),
// applies the defaults and validates it. Errors name the field at fault.
func ParseScenario(r io.Reader) (*Scenario, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var sc Scenario
	if err := dec.Decode(&sc); err != nil {
		return nil, jsonError(data, err)
	}
	if dec.More() {
		return nil, errors.New("unexpected data after the scenario object")
	}
	if err := sc.withDefaults(); err != nil {
		return nil, err
	}
	return &sc, nil
}

// jsonError makes a decoding error say where: line and column, and the
// field.
func jsonError(data []byte, err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		line, col := position(data, syn.Offset-1) // Offset is just past the bad byte
		return fmt.Errorf("line %d, column %d: invalid JSON: %v", line, col, syn)
	case errors.As(err, &typ):
		line, _ := position(data, typ.Offset)
		return fmt.Errorf("line %d: %s: want %s, got a JSON %s", line, typ.Field, typ.Type, typ.Value)
	case errors.Is(err, io.EOF):
		return errors.New("empty scenario: want a JSON object")
	}
	// Errors of a field's UnmarshalJSON and unknown fields come as they are.
	return fmt.Errorf("invalid scenario: %s", strings.TrimPrefix(err.Error(), "json: "))
}

func position(data []byte, off int64) (line, col int) {
	off = min(max(off, 0), int64(len(data)))
	before := data[:off]
	line = bytes.Count(before, []byte("\n")) + 1
	col = int(off) - bytes.LastIndexByte(before, '\n')
	return line, col
}

// Limits on what one run may ask for.
const (
	maxBackends = 10_000
	maxClients  = 1_000
	maxKeys     = 10_000_000
	maxRetries  = 7
	maxRequests = 100_000_000
)

// withDefaults fills the zero fields and validates every field.
func (sc *Scenario) withDefaults() error {
	if sc.Seed == 0 {
		sc.Seed = 1
	}
	if sc.Duration <= 0 {
		return fmt.Errorf("duration is %v; it must be > 0 (for example \"60s\")", sc.Duration.D())
	}
	if !(sc.Rate > 0) {
		return fmt.Errorf("rate is %v; it must be > 0 requests per second", sc.Rate)
	}
	if n := sc.Rate * sc.Duration.D().Seconds(); n > maxRequests {
		return fmt.Errorf("rate × duration is %.0f requests; at most %d", n, maxRequests)
	}
	if sc.Clients == 0 {
		sc.Clients = 10
	}
	if sc.Clients < 0 || sc.Clients > maxClients {
		return fmt.Errorf("clients is %d; it must be 1 to %d", sc.Clients, maxClients)
	}
	if sc.Retries == nil {
		two := 2
		sc.Retries = &two
	}
	if *sc.Retries < 0 || *sc.Retries > maxRetries {
		return fmt.Errorf("retries is %d; it must be 0 to %d", *sc.Retries, maxRetries)
	}
	if sc.FailLatency == 0 {
		sc.FailLatency = Duration(time.Millisecond)
	}
	if sc.FailLatency < 0 {
		return fmt.Errorf("fail_latency is %v; it must be > 0", sc.FailLatency.D())
	}
	if err := sc.Keys.withDefaults(); err != nil {
		return err
	}
	if hc := sc.HealthCheck; hc != nil {
		if hc.Interval <= 0 {
			return fmt.Errorf("health_check.interval is %v; it must be > 0", hc.Interval.D())
		}
		if hc.UnhealthyAfter == 0 {
			hc.UnhealthyAfter = 2
		}
		if hc.HealthyAfter == 0 {
			hc.HealthyAfter = 1
		}
		if hc.UnhealthyAfter < 0 || hc.HealthyAfter < 0 {
			return fmt.Errorf("health_check: unhealthy_after (%d) and healthy_after (%d) must be >= 1", hc.UnhealthyAfter, hc.HealthyAfter)
		}
	}
	if err := sc.backendDefaults(); err != nil {
		return err
	}
	if len(sc.Strategies) == 0 {
		sc.Strategies = slices.Clone(strategyNames)
	}
	for i, s := range sc.Strategies {
		if _, err := builderFor(s, nil); err != nil {
			return fmt.Errorf("strategies[%d]: %w", i, err)
		}
	}
	if sc.SampleInterval == 0 {
		sc.SampleInterval = sc.Duration / 120
	}
	if sc.SampleInterval <= 0 || sc.Duration/sc.SampleInterval > 10_000 {
		return fmt.Errorf("sample_interval is %v; it must be > 0 and at least duration/10000", sc.SampleInterval.D())
	}
	_, err := sc.expandEvents()
	return err
}

func (k *Keys) withDefaults() error {
	if k.Count == 0 {
		k.Count = 100_000
	}
	if k.Count < 0 || k.Count > maxKeys {
		return fmt.Errorf("keys.count is %d; it must be 1 to %d", k.Count, maxKeys)
	}
	switch k.Dist {
	case "":
		k.Dist = "uniform"
	case "uniform":
	case "zipf":
		if k.S == 0 {
			k.S = 1.1
		}
		if !(k.S > 1 && k.S <= 10) {
			return fmt.Errorf("keys.s is %v; the Zipf exponent must be > 1 and <= 10", k.S)
		}
	default:
		return fmt.Errorf("keys.dist is %q; it must be \"uniform\" or \"zipf\"", k.Dist)
	}
	return nil
}

func (sc *Scenario) backendDefaults() error {
	if len(sc.Backends) == 0 {
		return errors.New("backends is empty; a scenario needs at least one backend group")
	}
	total, present := 0, 0
	for i := range sc.Backends {
		g := &sc.Backends[i]
		if g.Count == 0 {
			g.Count = 1
		}
		if g.Weight == 0 {
			g.Weight = 1
		}
		if g.Sigma == 0 {
			g.Sigma = 0.5
		}
		if g.Slots == 0 {
			g.Slots = 8
		}
		switch {
		case g.Count < 0:
			return fmt.Errorf("backends[%d].count is %d; it must be >= 1", i, g.Count)
		case g.Weight < 0 || g.Weight > 1<<20:
			return fmt.Errorf("backends[%d].weight is %d; it must be 1 to %d (0 means 1)", i, g.Weight, 1<<20)
		case g.Median <= 0:
			return fmt.Errorf("backends[%d].median is %v; it must be > 0 (for example \"10ms\")", i, g.Median.D())
		case !(g.Sigma >= 0 && g.Sigma <= 3):
			return fmt.Errorf("backends[%d].sigma is %v; it must be 0 to 3", i, g.Sigma)
		case g.Slots < 0 || g.Slots > 1_000_000:
			return fmt.Errorf("backends[%d].slots is %d; it must be 1 to 1000000 (0 means 8)", i, g.Slots)
		case g.MaxQueue < 0:
			return fmt.Errorf("backends[%d].max_queue is %d; it must be >= 0 (0 means unbounded)", i, g.MaxQueue)
		}
		total += g.Count
		if total > maxBackends {
			return fmt.Errorf("backends: %d backends or more; at most %d", total, maxBackends)
		}
		if !g.Absent {
			present += g.Count
		}
	}
	if present == 0 {
		return errors.New("backends: every group is absent; at least one backend must be in the set at the start")
	}
	return nil
}

// backendNames returns the names of the scenario's backends, in order.
func (sc *Scenario) backendNames() []string {
	total := 0
	for _, g := range sc.Backends {
		total += g.Count
	}
	width := max(len(fmt.Sprint(total-1)), 2)
	names := make([]string, 0, total)
	for i := range total {
		names = append(names, fmt.Sprintf("b%0*d", width, i))
	}
	return names
}

// timedEvent is one elementary event, after rolling restarts and restarts
// are expanded, with the backend resolved to its index.
type timedEvent struct {
	at      time.Duration
	kind    string // add, remove, fail, recover, slow, kill, start
	backend int
	rate    float64
	factor  float64
}

// expandEvents validates the events and expands them into elementary
// events sorted by time (stable: same-time events keep the file's order).
// It replays the set's membership to reject adding a backend already in the
// set, removing one that is not, or emptying the set.
func (sc *Scenario) expandEvents() ([]timedEvent, error) {
	names := sc.backendNames()
	index := make(map[string]int, len(names))
	for i, n := range names {
		index[n] = i
		index[n+":80"] = i
	}
	lookup := func(i int, field, name string) (int, error) {
		b, ok := index[name]
		if !ok {
			return 0, fmt.Errorf("events[%d].%s: backend %q is not defined (the backends are %s to %s)", i, field, name, names[0], names[len(names)-1])
		}
		return b, nil
	}
	var out []timedEvent
	for i := range sc.Events {
		e := &sc.Events[i]
		if e.At < 0 || e.At > sc.Duration {
			return nil, fmt.Errorf("events[%d].at is %v; it must be within the duration (0 to %v)", i, e.At.D(), sc.Duration.D())
		}
		if !slices.Contains(eventKinds, e.Kind) {
			return nil, fmt.Errorf("events[%d].kind is %q; it must be one of %s", i, e.Kind, strings.Join(eventKinds, ", "))
		}
		if e.Kind == evRollingRestart {
			if e.Backend != "" {
				return nil, fmt.Errorf("events[%d]: a rolling_restart takes \"backends\" (a list, empty for all), not \"backend\"", i)
			}
			if e.Every <= 0 || e.Down <= 0 {
				return nil, fmt.Errorf("events[%d]: rolling_restart needs every > 0 and down > 0 (got every %v, down %v)", i, e.Every.D(), e.Down.D())
			}
			list := e.Backends
			if len(list) == 0 {
				list = nil
				for j, g := 0, 0; g < len(sc.Backends); g++ {
					for range sc.Backends[g].Count {
						if !sc.Backends[g].Absent {
							list = append(list, names[j])
						}
						j++
					}
				}
			}
			for k, name := range list {
				b, err := lookup(i, fmt.Sprintf("backends[%d]", k), name)
				if err != nil {
					return nil, err
				}
				at := e.At.D() + time.Duration(k)*e.Every.D()
				out = append(out, timedEvent{at: at, kind: evKill, backend: b}, timedEvent{at: at + e.Down.D(), kind: evStart, backend: b})
			}
			continue
		}
		if len(e.Backends) > 0 {
			return nil, fmt.Errorf("events[%d]: \"backends\" is for rolling_restart; a %s takes one \"backend\"", i, e.Kind)
		}
		if e.Backend == "" {
			return nil, fmt.Errorf("events[%d]: a %s event needs \"backend\"", i, e.Kind)
		}
		b, err := lookup(i, "backend", e.Backend)
		if err != nil {
			return nil, err
		}
		te := timedEvent{at: e.At.D(), kind: e.Kind, backend: b}
		switch e.Kind {
		case evFail:
			if e.ErrorRate == 0 {
				e.ErrorRate = 1
			}
			if !(e.ErrorRate > 0 && e.ErrorRate <= 1) {
				return nil, fmt.Errorf("events[%d].error_rate is %v; it must be > 0 and <= 1", i, e.ErrorRate)
			}
			te.rate = e.ErrorRate
		case evSlow:
			if !(e.Factor > 0 && e.Factor <= 1e6) {
				return nil, fmt.Errorf("events[%d].factor is %v; a slow event needs a factor > 0 (1 restores the normal speed)", i, e.Factor)
			}
			te.factor = e.Factor
		case evRestart:
			if e.Down <= 0 {
				return nil, fmt.Errorf("events[%d].down is %v; a restart needs down > 0", i, e.Down.D())
			}
			out = append(out, timedEvent{at: te.at, kind: evKill, backend: b}, timedEvent{at: te.at + e.Down.D(), kind: evStart, backend: b})
			continue
		}
		out = append(out, te)
	}
	slices.SortStableFunc(out, func(a, b timedEvent) int { return cmp.Compare(a.at, b.at) })
	return out, sc.checkMembership(out, names)
}

// checkMembership replays add and remove events.
func (sc *Scenario) checkMembership(evs []timedEvent, names []string) error {
	in := make([]bool, len(names))
	n, j := 0, 0
	for _, g := range sc.Backends {
		for range g.Count {
			in[j] = !g.Absent
			if in[j] {
				n++
			}
			j++
		}
	}
	for _, e := range evs {
		switch e.kind {
		case evAdd:
			if in[e.backend] {
				return fmt.Errorf("event at %v: add %s, which is already in the set", e.at, names[e.backend])
			}
			in[e.backend] = true
			n++
		case evRemove:
			if !in[e.backend] {
				return fmt.Errorf("event at %v: remove %s, which is not in the set", e.at, names[e.backend])
			}
			if n == 1 {
				return fmt.Errorf("event at %v: remove %s would empty the set", e.at, names[e.backend])
			}
			in[e.backend] = false
			n--
		}
	}
	return nil
}
