package main

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/go-lb/lb"
)

// The simulation: one goroutine, simulated time in nanoseconds, a heap of
// events. Each client has its own lb.Balancer over the same endpoint set;
// every request is picked by its client's Balancer (Pick, then PickNext for
// retries) and reported with Pick.Done when its attempt ends, with the
// attempt's simulated latency. Backends have Slots calls in service at
// once and a FIFO queue for the rest.

// errBackend is what Done is told when an attempt fails.
var errBackend = errors.New("lbsim: backend failure")

// event kinds
const (
	kArrival  uint8 = iota
	kDone           // an attempt ends (fail or not)
	kScenario       // a scenario event (id indexes the expanded events)
	kHealth         // a health-check round
	kSample         // end of a load sampling interval
)

type event struct {
	t      int64
	seq    uint64
	id     int32 // request, or scenario event
	gen    uint32
	kind   uint8
	fail   bool
	served bool // the attempt held a slot (free it)
}

type simBackend struct {
	name, addr      string
	weight          int
	median          time.Duration
	sigma           float64
	slots, maxQueue int

	factor  float64 // service time multiplier (slow events)
	errRate float64 // failing: probability an attempt fails
	present bool    // in the endpoint set
	down    bool    // process killed
	healthy bool    // as the health check last decided
	hcFails int
	hcOKs   int

	busy  int
	queue []int32
	qhead int

	// load accounting
	inflight     int     // in service + queued
	lastT        int64   // last change of inflight
	area         float64 // ∫ inflight dt since the last sample
	totalArea    float64
	picks        uint64
	presentSince int64
	presentTime  int64
	everPresent  bool
}

type request struct {
	arrival   int64
	attemptAt int64
	service   time.Duration // of the current attempt
	z         float64
	key       int32
	client    int32
	backend   int32
	gen       uint32
	state     uint8
	pick      lb.Pick
	tried     []*lb.Backend
}

type sim struct {
	sc       *Scenario
	strategy string
	builder  lb.Builder
	keys     []string
	events   []timedEvent
	retries  int
	failLat  int64

	now  int64
	end  int64 // arrivals stop after this
	seq  uint64
	heap []event

	work      *workload
	retryRand *rand.Rand
	failRand  *rand.Rand
	hcRand    *rand.Rand

	backends []simBackend
	byAddr   map[string]int32
	clock    *simClock
	bals     []*lb.Balancer
	index    []map[*lb.Backend]int32 // per client

	reqs []request
	free []int32

	res      *Result
	lastKey  []int32 // backend of each key's last successful request, -1: none
	probes   []string
	placed   []int32 // probe keys' placement after the last change
	lastSet  []float64
	samples  int
	nSamples int
}

// Run simulates the scenario with one strategy.
func Run(sc *Scenario, strategy string) (*Result, error) {
	start := time.Now()
	s, err := newSim(sc, strategy)
	if err != nil {
		return nil, err
	}
	defer s.close()
	s.loop()
	s.finish()
	s.res.Wall = time.Since(start)
	return s.res, nil
}

func newSim(sc *Scenario, strategy string) (*sim, error) {
	b, err := builderFor(strategy, newSource(sc.Seed, streamPicker))
	if err != nil {
		return nil, err
	}
	evs, err := sc.expandEvents()
	if err != nil {
		return nil, err
	}
	s := &sim{
		sc: sc, strategy: strategy, builder: b, events: evs,
		keys:      keyNames(sc.Keys.Count),
		retries:   *sc.Retries,
		failLat:   int64(sc.FailLatency),
		end:       int64(sc.Duration),
		work:      newWorkload(sc),
		retryRand: newRand(sc.Seed, streamRetry),
		failRand:  newRand(sc.Seed, streamFailure),
		hcRand:    newRand(sc.Seed, streamHealth),
		byAddr:    map[string]int32{},
	}
	names := sc.backendNames()
	for _, g := range sc.Backends {
		for range g.Count {
			i := len(s.backends)
			s.backends = append(s.backends, simBackend{
				name: names[i], addr: names[i] + ":80", weight: g.Weight,
				median: g.Median.D(), sigma: g.Sigma, slots: g.Slots, maxQueue: g.MaxQueue,
				factor: 1, present: !g.Absent, healthy: true, everPresent: !g.Absent,
			})
			s.byAddr[names[i]+":80"] = int32(i)
		}
	}
	// The last interval runs to the end: it is up to one interval longer.
	s.nSamples = max(int(sc.Duration/sc.SampleInterval), 1)
	s.res = newResult(sc, strategy, names, s.nSamples)
	s.lastKey = make([]int32, sc.Keys.Count)
	for i := range s.lastKey {
		s.lastKey[i] = -1
	}
	eps := s.endpoints()
	s.clock = &simClock{s: s}
	for range sc.Clients {
		bal, err := lb.NewBalancer(b, lb.WithEndpoints(eps), lb.WithClock(s.clock))
		if err != nil {
			s.close()
			return nil, fmt.Errorf("%s: %w", strategy, err)
		}
		s.bals = append(s.bals, bal)
		s.index = append(s.index, map[*lb.Backend]int32{})
	}
	if hashes(strategy) {
		nProbe := min(sc.Keys.Count, probeKeys)
		s.probes = make([]string, nProbe)
		for i := range s.probes {
			s.probes[i] = s.keys[int(int64(i)*int64(sc.Keys.Count)/int64(nProbe))]
		}
	}
	s.lastSet = s.availableShares()
	if err := s.probe(); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

// probeKeys is how many keys of the key space are looked up to measure the
// keys moved by a membership change.
const probeKeys = 20_000

func (s *sim) close() {
	for _, b := range s.bals {
		b.Close()
	}
}

// endpoints returns the endpoint set: the backends present, in order.
func (s *sim) endpoints() []lb.Endpoint {
	var eps []lb.Endpoint
	for i := range s.backends {
		if b := &s.backends[i]; b.present {
			eps = append(eps, lb.Endpoint{Addr: b.addr, Weight: b.weight})
		}
	}
	return eps
}

func (s *sim) push(e event) {
	s.seq++
	e.seq = s.seq
	h := append(s.heap, e)
	i := len(h) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !less(&h[i], &h[p]) {
			break
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
	s.heap = h
}

func (s *sim) pop() event {
	h := s.heap
	top := h[0]
	n := len(h) - 1
	h[0] = h[n]
	h = h[:n]
	for i := 0; ; {
		l := 2*i + 1
		if l >= n {
			break
		}
		m := l
		if r := l + 1; r < n && less(&h[r], &h[l]) {
			m = r
		}
		if !less(&h[m], &h[i]) {
			break
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
	s.heap = h
	return top
}

func less(a, b *event) bool {
	return a.t < b.t || (a.t == b.t && a.seq < b.seq)
}

func (s *sim) loop() {
	for i, e := range s.events {
		s.push(event{t: int64(e.at), kind: kScenario, id: int32(i)})
	}
	if hc := s.sc.HealthCheck; hc != nil {
		s.push(event{t: int64(hc.Interval), kind: kHealth})
	}
	if s.nSamples > 1 {
		s.push(event{t: int64(s.sc.SampleInterval), kind: kSample})
	} else {
		s.push(event{t: s.end, kind: kSample})
	}
	s.scheduleArrival()
	for len(s.heap) > 0 {
		e := s.pop()
		s.now = e.t
		s.clock.runDue()
		switch e.kind {
		case kArrival:
			s.arrive(e.id)
		case kDone:
			s.done(e)
		case kScenario:
			s.scenarioEvent(s.events[e.id])
		case kHealth:
			s.healthCheck()
			if next := s.now + int64(s.sc.HealthCheck.Interval); next <= s.end {
				s.push(event{t: next, kind: kHealth})
			}
		case kSample:
			s.sample()
			switch {
			case s.samples < s.nSamples-1:
				s.push(event{t: s.now + int64(s.sc.SampleInterval), kind: kSample})
			case s.samples == s.nSamples-1:
				s.push(event{t: s.end, kind: kSample})
			}
		}
	}
}

// scheduleArrival draws the next arrival and schedules it, unless it
// falls after the end.
func (s *sim) scheduleArrival() {
	a := s.work.next()
	if int64(a.at) > s.end {
		return
	}
	id := s.newRequest()
	r := &s.reqs[id]
	r.arrival, r.key, r.client, r.z = int64(a.at), a.key, a.client, a.z
	s.push(event{t: int64(a.at), kind: kArrival, id: id})
}

func (s *sim) newRequest() int32 {
	if n := len(s.free); n > 0 {
		id := s.free[n-1]
		s.free = s.free[:n-1]
		return id
	}
	s.reqs = append(s.reqs, request{tried: make([]*lb.Backend, 0, s.retries+1)})
	return int32(len(s.reqs) - 1)
}

func (s *sim) arrive(id int32) {
	s.scheduleArrival()
	s.res.Requests++
	s.attempt(id)
}
