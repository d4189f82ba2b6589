package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"
)

// Scenario describes a fleet, its clients, the lb configuration they run
// and what happens to the fleet. It is read from a JSON file (see
// scenarios/) or built from flags. A field that is missing takes its
// default; a field that is written means what it says (a sigma of 0 is no
// spread), and a value that means nothing (0 slots) is an error naming the
// field. The blocks that configure lb (transport, outlier_detection,
// slow_start, health_check) are handed to lb as they are, and mean what lb
// says: there, as in lb, a zero field takes lb's default.
type Scenario struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	// Seed seeds every random draw the simulator makes; default 1.
	Seed uint64 `json:"seed"`
	// Duration is how long requests are released, in simulated time.
	Duration Duration `json:"duration"`
	// Clients is the number of client processes, each with its own
	// lb.Balancer, Policy (retry budget) and health checker; default 10.
	Clients int `json:"clients"`
	// Load is how the clients send requests.
	Load Load `json:"load"`
	Keys Keys `json:"keys"`
	// Transport is the lb.Transport configuration of every client.
	Transport TransportConfig `json:"transport"`
	// OutlierDetection, when present, turns on lb's passive outlier
	// ejection (lb.WithOutlierDetection) on every client's Balancer.
	OutlierDetection *OutlierConfig `json:"outlier_detection"`
	// SlowStart, when present, is lb.WithSlowStart.
	SlowStart *SlowStartConfig `json:"slow_start"`
	// HealthCheck, when present, runs lb's active health checks
	// (lb.StartHealthChecks) from every client, with simulated probes.
	HealthCheck *HealthConfig `json:"health_check"`
	// Subset, when present, is lb.WithSubset on every client's Balancer,
	// each client with its own index.
	Subset *SubsetConfig `json:"subset"`
	// ClientZones, when given, are the zones the clients run in, spread
	// over them in blocks (client i runs in ClientZones[i×len/clients]):
	// the cross-zone share of the attempts and each zone's latency are
	// reported, and Locality uses them.
	ClientZones []string `json:"client_zones"`
	// Locality, when present, is lb.WithLocality on every client's
	// Balancer, with the client's zone (ClientZones, required).
	Locality *LocalityConfig `json:"locality"`
	Backends []BackendGroup  `json:"backends"`
	Events   []Event         `json:"events"`
	// Strategies to compare; default all (see strategyNames).
	Strategies []string `json:"strategies"`
	// SampleInterval is the resolution of the load-over-time chart;
	// default Duration/120.
	SampleInterval Duration `json:"sample_interval"`

	given given
}

// Load is how the clients send requests.
type Load struct {
	// Arrivals is "poisson" (the default: requests released at random
	// times, at Rate per second over all clients), "paced" (released at
	// exact intervals of 1/Rate) or "closed" (each of a client's Workers
	// sends a request, waits for its end, pauses Think, and sends the
	// next).
	Arrivals string `json:"arrivals"`
	// Rate is the release rate of an open loop (poisson, paced), in
	// requests per second over all clients.
	Rate float64 `json:"rate"`
	// Workers is how many requests a client has in flight at most: with
	// an open loop, released requests wait (FIFO) for a free worker, and
	// their latency counts from their release; missing means no cap.
	// Required for a closed loop.
	Workers int `json:"workers"`
	// Think is a closed-loop worker's pause between two requests.
	Think Duration `json:"think"`
	// Timeout is the caller's deadline for one request, from the moment a
	// worker sends it (http.Client.Timeout, or a context deadline); missing
	// means none.
	Timeout Duration `json:"timeout"`
	// Overhead is the client's and the network's time per attempt, before
	// it reaches its backend (a refused dial takes this long); default 0.
	Overhead Duration `json:"overhead"`
	// Method is the requests' method: "GET" (the default; idempotent, so
	// retried and hedged) or "POST" (retried only when never sent).
	Method string `json:"method"`

	given given
}

// Arrival processes.
const (
	arrivalsPoisson = "poisson"
	arrivalsPaced   = "paced"
	arrivalsClosed  = "closed"
)

// Keys describes the requests' hash keys.
type Keys struct {
	// Count is the size of the key space; default 100,000.
	Count int `json:"count"`
	// Dist is "uniform" (default) or "zipf" (a few hot keys).
	Dist string `json:"dist"`
	// S is the Zipf exponent, > 1; default 1.1. Larger is hotter.
	S float64 `json:"s"`

	given given
}

// BackendGroup is Count backends alike. Backends are named b00, b01, ...
// in the order of the groups.
type BackendGroup struct {
	// Count is the number of backends in the group; default 1.
	Count int `json:"count"`
	// Weight is the endpoint weight given to lb; default 1.
	Weight int `json:"weight"`
	// Median and Sigma shape the log-normal service time: median × e^(σZ),
	// Z standard normal. Sigma default 0.5; 0 makes every call take the
	// median.
	Median Duration `json:"median"`
	Sigma  float64  `json:"sigma"`
	// Slots is how many calls the backend serves at once; default 8.
	Slots int `json:"slots"`
	// MaxQueue bounds the calls waiting for a slot: a call that finds
	// the queue full is shed with a 503 at once. Missing means no bound;
	// 0 means no queue. After the defaults, -1 stands for no bound.
	MaxQueue int `json:"max_queue"`
	// Absent backends are defined but not in the set at the start (an
	// "add" or "replace" event brings them in).
	Absent bool `json:"absent"`
	// Zone is the backends' zone (the endpoints' lb.LabelZone).
	Zone string `json:"zone"`

	given given
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
	sc, err := decodeScenario(r)
	if err != nil {
		return nil, err
	}
	if err := sc.withDefaults(); err != nil {
		return nil, err
	}
	return sc, nil
}

// decodeScenario decodes a JSON scenario and records the fields it has,
// without the defaults.
func decodeScenario(r io.Reader) (*Scenario, error) {
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
	sc.markGiven(data)
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
	maxRequests = 100_000_000
	maxWorkers  = 100_000
)

// withDefaults fills the missing fields and validates every field.
func (sc *Scenario) withDefaults() error {
	if !sc.given.has("seed") && sc.Seed == 0 {
		sc.Seed = 1
	}
	if sc.Duration <= 0 {
		return fmt.Errorf("duration is %v; it must be > 0 (for example \"60s\")", sc.Duration.D())
	}
	if !sc.given.has("clients") && sc.Clients == 0 {
		sc.Clients = 10
	}
	if sc.Clients < 1 || sc.Clients > maxClients {
		return fmt.Errorf("clients is %d; it must be 1 to %d", sc.Clients, maxClients)
	}
	if err := sc.Load.withDefaults(sc); err != nil {
		return err
	}
	if err := sc.Keys.withDefaults(); err != nil {
		return err
	}
	if err := sc.backendDefaults(); err != nil {
		return err
	}
	if err := sc.fleetDefaults(); err != nil {
		return err
	}
	if err := sc.lbDefaults(); err != nil {
		return err
	}
	if len(sc.Strategies) == 0 {
		if sc.given.has("strategies") {
			return errors.New("strategies is empty; omit it for all of them")
		}
		sc.Strategies = slices.Clone(strategyNames)
	}
	for i, s := range sc.Strategies {
		if _, err := builderFor(s, nil); err != nil {
			return fmt.Errorf("strategies[%d]: %w", i, err)
		}
	}
	if !sc.given.has("sample_interval") && sc.SampleInterval == 0 {
		sc.SampleInterval = sc.Duration / 120
	}
	if sc.SampleInterval <= 0 || sc.Duration/sc.SampleInterval > 10_000 {
		return fmt.Errorf("sample_interval is %v; it must be > 0 and at least duration/10000", sc.SampleInterval.D())
	}
	_, err := sc.expandEvents()
	return err
}

func (l *Load) withDefaults(sc *Scenario) error {
	if !l.given.has("arrivals") && l.Arrivals == "" {
		l.Arrivals = arrivalsPoisson
	}
	open := true
	switch l.Arrivals {
	case arrivalsPoisson, arrivalsPaced:
	case arrivalsClosed:
		open = false
	default:
		return fmt.Errorf("load.arrivals is %q; it must be %q, %q or %q", l.Arrivals, arrivalsPoisson, arrivalsPaced, arrivalsClosed)
	}
	if open {
		if !(l.Rate > 0) {
			return fmt.Errorf("load.rate is %v; an open loop (%s) needs a rate > 0 requests per second", l.Rate, l.Arrivals)
		}
		if n := l.Rate * sc.Duration.D().Seconds(); n > maxRequests {
			return fmt.Errorf("load.rate × duration is %.0f requests; at most %d", n, maxRequests)
		}
		if l.Think != 0 {
			return fmt.Errorf("load.think is %v; it is for a closed loop, not %s arrivals", l.Think.D(), l.Arrivals)
		}
	} else if l.Rate != 0 {
		return fmt.Errorf("load.rate is %v; a closed loop has no rate (its workers send as fast as they are answered)", l.Rate)
	}
	switch {
	case !open && l.Workers < 1, l.given.has("workers") && l.Workers < 1:
		return fmt.Errorf("load.workers is %d; it must be 1 to %d (for an open loop, omit it for no cap)", l.Workers, maxWorkers)
	case l.Workers < 0 || l.Workers > maxWorkers:
		return fmt.Errorf("load.workers is %d; it must be 1 to %d", l.Workers, maxWorkers)
	case l.Think < 0:
		return fmt.Errorf("load.think is %v; it must be >= 0", l.Think.D())
	case l.given.has("timeout") && l.Timeout <= 0, l.Timeout < 0:
		return fmt.Errorf("load.timeout is %v; it must be > 0 (omit it for no deadline)", l.Timeout.D())
	case l.Overhead < 0:
		return fmt.Errorf("load.overhead is %v; it must be >= 0", l.Overhead.D())
	}
	if !l.given.has("method") && l.Method == "" {
		l.Method = "GET"
	}
	if l.Method != "GET" && l.Method != "POST" {
		return fmt.Errorf("load.method is %q; it must be \"GET\" or \"POST\"", l.Method)
	}
	return nil
}

func (k *Keys) withDefaults() error {
	if !k.given.has("count") && k.Count == 0 {
		k.Count = 100_000
	}
	if k.Count < 1 || k.Count > maxKeys {
		return fmt.Errorf("keys.count is %d; it must be 1 to %d", k.Count, maxKeys)
	}
	if !k.given.has("dist") && k.Dist == "" {
		k.Dist = "uniform"
	}
	switch k.Dist {
	case "uniform":
		if k.S != 0 {
			return fmt.Errorf("keys.s is %v; it is for \"dist\": \"zipf\"", k.S)
		}
	case "zipf":
		if !k.given.has("s") && k.S == 0 {
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
		if !g.given.has("count") && g.Count == 0 {
			g.Count = 1
		}
		if !g.given.has("weight") && g.Weight == 0 {
			g.Weight = 1
		}
		if !g.given.has("sigma") && g.Sigma == 0 {
			g.Sigma = 0.5
		}
		if !g.given.has("slots") && g.Slots == 0 {
			g.Slots = 8
		}
		if !g.given.has("max_queue") {
			g.MaxQueue = -1
		} else if g.MaxQueue < 0 {
			return fmt.Errorf("backends[%d].max_queue is %d; it must be >= 0 (omit it for no bound)", i, g.MaxQueue)
		}
		switch {
		case g.Count < 1:
			return fmt.Errorf("backends[%d].count is %d; it must be >= 1", i, g.Count)
		case g.Weight < 1 || g.Weight > 1<<20:
			return fmt.Errorf("backends[%d].weight is %d; it must be 1 to %d", i, g.Weight, 1<<20)
		case g.Median <= 0:
			return fmt.Errorf("backends[%d].median is %v; it must be > 0 (for example \"10ms\")", i, g.Median.D())
		case !(g.Sigma >= 0 && g.Sigma <= 3):
			return fmt.Errorf("backends[%d].sigma is %v; it must be 0 to 3", i, g.Sigma)
		case g.Slots < 1 || g.Slots > 1_000_000:
			return fmt.Errorf("backends[%d].slots is %d; it must be 1 to 1000000", i, g.Slots)
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

// requestsHint is about how many requests a run releases (to size
// buffers): exact for an open loop, a guess for a closed one.
func (sc *Scenario) requestsHint() int {
	if sc.Load.Arrivals != arrivalsClosed {
		return int(sc.Load.Rate*sc.Duration.D().Seconds()*1.01) + 16
	}
	return min(sc.Clients*sc.Load.Workers*int(sc.Duration.D()/(10*time.Millisecond)), 1<<20) + 16
}
