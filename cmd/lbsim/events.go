package main

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Event kinds.
const (
	evAdd            = "add"             // put the backend in the endpoint set (Balancer.Update)
	evRemove         = "remove"          // take it out of the set; its calls in flight finish
	evFail           = "fail"            // its calls fail (mode, error_rate), until recover
	evRecover        = "recover"         // it stops failing
	evSlow           = "slow"            // its service times are multiplied by factor (1 restores)
	evKill           = "kill"            // the process dies: calls in flight are reset, dials refused
	evStart          = "start"           // the process is back
	evRestart        = "restart"         // kill, then start after down
	evRollingRestart = "rolling_restart" // restart backends one after another, every apart
	evFlap           = "flap"            // kill for down, start for up, again and again, until until
	evReplace        = "replace"         // take backends out of the set and others in, in one Update
)

var eventKinds = []string{evAdd, evRemove, evFail, evRecover, evSlow, evKill, evStart, evRestart, evRollingRestart, evFlap, evReplace}

// Failure modes of a fail event: how a failing call fails.
const (
	modeStatus    = "status"    // answers Status after Latency (a fast 503 by default)
	modeReset     = "reset"     // reads the request, and resets the connection after Latency
	modeBlackhole = "blackhole" // accepts the call and never answers
	modeStall     = "stall"     // sends 200 and its headers after Latency, then never the body
)

var failModes = []string{modeStatus, modeReset, modeBlackhole, modeStall}

// Event is something that happens to the fleet at a simulated time.
type Event struct {
	At      Duration `json:"at"`
	Kind    string   `json:"kind"`
	Backend string   `json:"backend"`
	// Backends lists the backends of a rolling restart; empty means every
	// backend in the set at the start.
	Backends []string `json:"backends"`
	// fail: Mode (default "status"), ErrorRate (the share of calls that
	// fail; default 1), Status (default 503), Latency (time at the backend
	// before the failure, or before a stall's headers; default 0),
	// RetryAfter (a Retry-After header sent with the status), Probe
	// ("fail", the default: health checks meet the fault as calls do;
	// "pass": the health endpoint still answers 200).
	Mode       string   `json:"mode"`
	ErrorRate  float64  `json:"error_rate"`
	Status     int      `json:"status"`
	Latency    Duration `json:"latency"`
	RetryAfter string   `json:"retry_after"`
	Probe      string   `json:"probe"`
	Factor     float64  `json:"factor"` // slow
	Down       Duration `json:"down"`   // restart, rolling_restart, flap
	Every      Duration `json:"every"`  // rolling_restart
	Up         Duration `json:"up"`     // flap
	Until      Duration `json:"until"`  // flap: when it stops (default: the end of the run)
	// replace: With lists the backends that take the places of Backends,
	// one for one (each takes its ordinal); or Count replaces that many
	// backends of the set, spread evenly over it, with absent backends
	// that were never in it, in order (as the events before it in the file
	// leave the set).
	With  []string `json:"with"`
	Count int      `json:"count"`

	given given
}

// fault is how a failing backend's calls fail.
type fault struct {
	mode       string
	rate       float64
	status     int
	latency    time.Duration
	retryAfter string
	probePass  bool // health checks pass all the same
}

// timedEvent is one elementary event, after restarts, rolling restarts
// and flaps are expanded, with the backend resolved to its index.
type timedEvent struct {
	at      time.Duration
	kind    string // add, remove, replace, fail, recover, slow, kill, start
	backend int
	factor  float64
	fault   *fault
	list    []int // replace: the backends that leave
	with    []int // replace: those that take their places
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
		if err := e.checkFields(i); err != nil {
			return nil, err
		}
		if e.Kind == evReplace {
			te, err := sc.replaceEvent(i, e, lookup, out)
			if err != nil {
				return nil, err
			}
			out = append(out, te)
			continue
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
			f, err := e.fault(i)
			if err != nil {
				return nil, err
			}
			te.fault = f
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
		case evFlap:
			until := sc.Duration.D()
			if e.given.has("until") || e.Until != 0 {
				until = e.Until.D()
			}
			switch {
			case e.Up <= 0 || e.Down <= 0:
				return nil, fmt.Errorf("events[%d]: flap needs up > 0 and down > 0 (got up %v, down %v)", i, e.Up.D(), e.Down.D())
			case until <= e.At.D() || until > sc.Duration.D():
				return nil, fmt.Errorf("events[%d].until is %v; it must be after at (%v) and within the duration (%v)", i, until, e.At.D(), sc.Duration.D())
			case int64((until-e.At.D())/(e.Up.D()+e.Down.D())) > 100_000:
				return nil, fmt.Errorf("events[%d]: flap from %v to %v every %v makes more than 100000 cycles", i, e.At.D(), until, e.Up.D()+e.Down.D())
			}
			for at := e.At.D(); at < until; at += e.Up.D() + e.Down.D() {
				out = append(out, timedEvent{at: at, kind: evKill, backend: b}, timedEvent{at: min(at+e.Down.D(), until), kind: evStart, backend: b})
			}
			continue
		}
		out = append(out, te)
	}
	slices.SortStableFunc(out, func(a, b timedEvent) int { return cmp.Compare(a.at, b.at) })
	return out, sc.checkMembership(out, names)
}

// checkFields refuses fields that the event's kind does not take, so that
// a misplaced field is not silently ignored.
func (e *Event) checkFields(i int) error {
	takes := map[string][]string{
		evFail:           {"mode", "error_rate", "status", "latency", "retry_after", "probe"},
		evSlow:           {"factor"},
		evRestart:        {"down"},
		evRollingRestart: {"down", "every", "backends"},
		evFlap:           {"up", "down", "until"},
		evReplace:        {"backends", "with", "count"},
	}
	set := map[string]bool{
		"mode": e.Mode != "", "error_rate": e.ErrorRate != 0, "status": e.Status != 0, "latency": e.Latency != 0,
		"retry_after": e.RetryAfter != "", "probe": e.Probe != "", "factor": e.Factor != 0, "down": e.Down != 0,
		"every": e.Every != 0, "up": e.Up != 0, "until": e.Until != 0, "backends": len(e.Backends) > 0,
		"with": len(e.With) > 0, "count": e.Count != 0,
	}
	for f := range e.given {
		set[f] = set[f] || f != "at" && f != "kind" && f != "backend"
	}
	for _, f := range slices.Sorted(maps.Keys(set)) {
		if set[f] && !slices.Contains(takes[e.Kind], f) {
			return fmt.Errorf("events[%d].%s: a %s event takes no %q", i, f, e.Kind, f)
		}
	}
	return nil
}

// fault returns the fault of a fail event.
func (e *Event) fault(i int) (*fault, error) {
	f := &fault{mode: e.Mode, rate: e.ErrorRate, status: e.Status, latency: e.Latency.D(), retryAfter: e.RetryAfter}
	if f.mode == "" && !e.given.has("mode") {
		f.mode = modeStatus
	}
	if !slices.Contains(failModes, f.mode) {
		return nil, fmt.Errorf("events[%d].mode is %q; it must be one of %s", i, f.mode, strings.Join(failModes, ", "))
	}
	if f.rate == 0 && !e.given.has("error_rate") {
		f.rate = 1
	}
	if !(f.rate > 0 && f.rate <= 1) {
		return nil, fmt.Errorf("events[%d].error_rate is %v; it must be > 0 and <= 1", i, f.rate)
	}
	if f.mode == modeStatus {
		if f.status == 0 && !e.given.has("status") {
			f.status = 503
		}
		if f.status < 400 || f.status > 599 {
			return nil, fmt.Errorf("events[%d].status is %d; a failing status must be 400 to 599", i, f.status)
		}
	} else if e.Status != 0 || e.RetryAfter != "" {
		return nil, fmt.Errorf("events[%d]: status and retry_after are for mode \"status\", not %q", i, f.mode)
	}
	if f.latency < 0 || f.latency > 0 && (f.mode == modeBlackhole) {
		return nil, fmt.Errorf("events[%d].latency is %v; it must be >= 0, and a blackhole has none (it never answers)", i, f.latency)
	}
	if f.retryAfter != "" {
		if n, err := strconv.Atoi(f.retryAfter); err != nil || n < 0 {
			return nil, fmt.Errorf("events[%d].retry_after is %q; it must be a number of seconds (an HTTP date would depend on the clock)", i, f.retryAfter)
		}
	}
	switch e.Probe {
	case "", "fail":
	case "pass":
		f.probePass = true
	default:
		return nil, fmt.Errorf("events[%d].probe is %q; it must be \"fail\" (health checks meet the fault) or \"pass\"", i, e.Probe)
	}
	return f, nil
}

// replaceEvent expands a replace event: the backends that leave and those
// that take their places.
func (sc *Scenario) replaceEvent(i int, e *Event, lookup func(int, string, string) (int, error), before []timedEvent) (timedEvent, error) {
	te := timedEvent{at: e.At.D(), kind: evReplace}
	if e.Backend != "" {
		return te, fmt.Errorf("events[%d]: a replace takes \"backends\" and \"with\" (or \"count\"), not \"backend\"", i)
	}
	switch {
	case e.Count != 0 && (len(e.Backends) > 0 || len(e.With) > 0):
		return te, fmt.Errorf("events[%d]: a replace takes \"count\" or the lists \"backends\" and \"with\", not both", i)
	case e.Count != 0:
		present, absent := sc.presentAt(e.At.D(), before)
		if e.Count < 0 || e.Count > len(present) || e.Count > len(absent) {
			return te, fmt.Errorf("events[%d].count is %d; it must be from 1 to the backends in the set (%d) and the absent ones never in it (%d)", i, e.Count, len(present), len(absent))
		}
		for k := range e.Count {
			te.list = append(te.list, present[k*len(present)/e.Count])
		}
		te.with = absent[:e.Count]
	default:
		if len(e.Backends) == 0 || len(e.Backends) != len(e.With) {
			return te, fmt.Errorf("events[%d]: a replace needs \"backends\" and \"with\" of the same length (got %d and %d), or \"count\"", i, len(e.Backends), len(e.With))
		}
		for k := range e.Backends {
			old, err := lookup(i, fmt.Sprintf("backends[%d]", k), e.Backends[k])
			if err != nil {
				return te, err
			}
			nb, err := lookup(i, fmt.Sprintf("with[%d]", k), e.With[k])
			if err != nil {
				return te, err
			}
			te.list, te.with = append(te.list, old), append(te.with, nb)
		}
	}
	return te, nil
}

// presentAt returns the backends in the set at time at, and the fresh
// ones (never in it yet), as the events of the file before this one (evs,
// expanded) leave them, in order.
func (sc *Scenario) presentAt(at time.Duration, evs []timedEvent) (present, fresh []int) {
	in := sc.initialSet()
	been := slices.Clone(in)
	for _, e := range evs {
		if e.at >= at {
			continue
		}
		switch e.kind {
		case evAdd:
			in[e.backend], been[e.backend] = true, true
		case evRemove:
			in[e.backend] = false
		case evReplace:
			for k, old := range e.list {
				in[old], in[e.with[k]], been[e.with[k]] = false, true, true
			}
		}
	}
	for b, yes := range in {
		if yes {
			present = append(present, b)
		} else if !been[b] {
			fresh = append(fresh, b)
		}
	}
	return present, fresh
}

// initialSet reports, per backend, whether it is in the set at the start.
func (sc *Scenario) initialSet() []bool {
	var in []bool
	for _, g := range sc.Backends {
		for range g.Count {
			in = append(in, !g.Absent)
		}
	}
	return in
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
		case evReplace:
			for k, old := range e.list {
				if !in[old] {
					return fmt.Errorf("event at %v: replace %s, which is not in the set", e.at, names[old])
				}
				if in[e.with[k]] {
					return fmt.Errorf("event at %v: replace with %s, which is already in the set", e.at, names[e.with[k]])
				}
				in[old], in[e.with[k]] = false, true
			}
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
