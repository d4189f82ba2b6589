package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"time"

	"github.com/go-lb/lb"
)

// The simulation: one goroutine, simulated time in nanoseconds, a heap of
// events. Each client has its own lb.Balancer over the same endpoint set
// (with the scenario's outlier detection and slow start, on a simulated
// Clock), its own lb.Policy and its own lb health checker; see client.go
// for how a request goes, backend.go for the backends, clock.go for lb's
// timers.

// event kinds
const (
	kArrival  uint8 = iota // an open-loop request is released (id: request)
	kWorker                // a closed-loop worker sends its next request (id: worker)
	kReach                 // an attempt reaches its backend (id: attempt)
	kAnswer                // the backend's answer reaches the client (id: attempt)
	kPerTry                // an attempt's per-try timeout (id: attempt)
	kBodyIdle              // a stalled body's idle timeout (id: attempt)
	kHedge                 // a request's hedge timer (id: request)
	kDeadline              // a request's deadline (id: request)
	kScenario              // a scenario event (id indexes the expanded events)
	kTimer                 // an lb Clock timer (id: timer)
	kProbe                 // a simulated health probe ends (id: probe)
	kSample                // end of a load sampling interval
)

type event struct {
	t    int64
	seq  uint64
	id   int32
	gen  uint32
	kind uint8
}

type sim struct {
	sc       *Scenario
	strategy string
	builder  lb.Builder
	keys     []string
	events   []timedEvent
	tmpl     *http.Request // what the Policy is asked about: the scenario's method, no body
	perTry   time.Duration
	bodyIdle time.Duration

	now  int64
	end  int64 // releases stop here
	stop int64 // the run stops here, finished or not
	seq  uint64
	heap []event

	work        *workload   // open loop
	workerLoads []*workload // closed loop, one per worker
	workersLeft int
	retryRand   *rand.Rand
	failRand    *rand.Rand
	probeRand   *rand.Rand

	backends  []simBackend
	byAddr    map[string]int32
	clock     *simClock
	clients   []*simClient
	responses map[string]*http.Response

	reqs        []request
	freeReqs    []int32
	atts        []attempt
	freeAtts    []int32
	active      int // requests sent and not finished
	released    bool
	timers      []*simTimer
	freeTimers  []int32
	probes      []chan struct{}
	freeProbes  []int32
	hcStop      context.CancelFunc
	nextOrdinal int      // the next new backend's ordinal
	contacted   [][]bool // [client][backend]: the client sent it an attempt

	res      *Result
	lastKey  []int32 // backend of each key's last successful request, -1: none
	probeKey []string
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
	s.loop()
	s.close()
	s.finishRun()
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
	tmpl, err := http.NewRequest(sc.Load.Method, "http://svc.internal/", nil)
	if err != nil {
		return nil, err
	}
	s := &sim{
		sc: sc, strategy: strategy, builder: b, events: evs, tmpl: tmpl,
		keys:      keyNames(sc.Keys.Count),
		end:       int64(sc.Duration),
		retryRand: newRand(sc.Seed, streamRetry),
		failRand:  newRand(sc.Seed, streamFailure),
		probeRand: newRand(sc.Seed, streamHealth),
		byAddr:    map[string]int32{},
		responses: map[string]*http.Response{},
	}
	s.stop = s.end + max(int64(sc.Duration), 2*int64(sc.Load.Timeout))
	if sc.Load.Arrivals == arrivalsClosed {
		for w := range sc.Clients * sc.Load.Workers {
			s.workerLoads = append(s.workerLoads, newWorkerLoad(sc, w))
		}
		s.workersLeft = len(s.workerLoads)
	} else {
		s.work = newWorkload(sc)
	}
	names := sc.backendNames()
	ordinals := 0
	for _, g := range sc.Backends {
		for range g.Count {
			i := len(s.backends)
			s.backends = append(s.backends, simBackend{
				name: names[i], addr: names[i] + ":80", zone: g.Zone, ordinal: -1, weight: g.Weight,
				median: g.Median.D(), sigma: g.Sigma, slots: g.Slots, maxQueue: g.MaxQueue,
				factor: 1, present: !g.Absent, everPresent: !g.Absent,
			})
			if sc.Subset != nil && sc.Subset.Ordinals && !g.Absent {
				s.backends[i].ordinal = ordinals
				ordinals++
			}
			s.byAddr[names[i]+":80"] = int32(i)
		}
	}
	s.nextOrdinal = ordinals
	// The last interval runs to the end: it is up to one interval longer.
	s.nSamples = max(int(sc.Duration/sc.SampleInterval), 1)
	s.res = newResult(sc, strategy, names, s.nSamples)
	s.lastKey = make([]int32, sc.Keys.Count)
	for i := range s.lastKey {
		s.lastKey[i] = -1
	}
	s.clock = newSimClock(s)
	if err := s.startClients(); err != nil {
		s.close()
		return nil, fmt.Errorf("%s: %w", strategy, err)
	}
	if hashes(strategy) {
		nProbe := min(sc.Keys.Count, probeKeys)
		s.probeKey = make([]string, nProbe)
		for i := range s.probeKey {
			s.probeKey[i] = s.keys[int(int64(i)*int64(sc.Keys.Count)/int64(nProbe))]
		}
	}
	s.lastSet = s.availableShares()
	if err := s.placeKeys(); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

// startClients makes every client's Balancer, Policy and health checker.
func (s *sim) startClients() error {
	eps := s.endpoints()
	topts := s.sc.Transport.options()
	bopts := append(s.sc.balancerOptions(), lb.WithEndpoints(eps), lb.WithClock(s.clock))
	var hcCtx context.Context
	hcCtx, s.hcStop = context.WithCancel(context.Background())
	for ci := range s.sc.Clients {
		bal, err := lb.NewBalancer(s.builder, append(slices.Clone(bopts), s.sc.clientOptions(ci)...)...)
		if err != nil {
			return err
		}
		pol, err := lb.NewPolicy(topts...)
		if err != nil {
			bal.Close()
			return err
		}
		c := &simClient{bal: bal, pol: pol, idle: s.sc.Load.Workers, zone: s.sc.clientZone(ci)}
		s.clients = append(s.clients, c)
		if hc := s.sc.HealthCheck; hc != nil {
			ci := int32(ci)
			h, err := lb.StartHealthChecks(hcCtx, bal, hc.lbHealthCheck(func(_ context.Context, addr string) error {
				return s.probe(ci, addr)
			}))
			if err != nil {
				return err
			}
			c.hc = h
		}
	}
	s.perTry, s.bodyIdle = s.sc.Transport.PerTryTimeout.D(), s.sc.Transport.BodyIdleTimeout.D()
	s.res.ClientsPerBackend = clientsPerBackend(s.members(), len(s.backends))
	for i := range s.backends {
		s.res.startPresent = append(s.res.startPresent, s.backends[i].present)
	}
	return nil
}

// probeKeys is how many keys of the key space are looked up to measure the
// keys moved by a membership change.
const probeKeys = 20_000

// close ends the run: probes blocked in simulated time return, health
// checkers and Balancers stop.
func (s *sim) close() {
	if s.hcStop != nil {
		s.hcStop()
	}
	s.clock.end()
	for _, c := range s.clients {
		if c.hc != nil {
			c.hc.Close()
		}
	}
	for _, c := range s.clients {
		c.bal.Close()
	}
}

// endpoints returns the endpoint set: the backends present, in order. An
// endpoint's hash name is the backend's name, so that keys are placed as
// on the real fleet of the validation, whose addresses differ.
func (s *sim) endpoints() []lb.Endpoint {
	var eps []lb.Endpoint
	for i := range s.backends {
		if b := &s.backends[i]; b.present {
			eps = append(eps, b.endpoint())
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
	if s.nSamples > 1 {
		s.push(event{t: int64(s.sc.SampleInterval), kind: kSample})
	} else {
		s.push(event{t: s.end, kind: kSample})
	}
	if s.work != nil {
		s.scheduleRelease()
	} else {
		for w := range s.workerLoads {
			s.push(event{t: 0, kind: kWorker, id: int32(w)})
		}
	}
	for len(s.heap) > 0 {
		e := s.pop()
		if e.t > s.stop || s.now >= s.end && s.samples >= s.nSamples && s.active == 0 && s.releasesDone() {
			break
		}
		s.now = e.t
		switch e.kind {
		case kArrival:
			s.scheduleRelease()
			s.release(e.id)
		case kWorker:
			s.startWorker(e.id)
		case kReach:
			if a := &s.atts[e.id]; a.gen == e.gen && a.state == atWire {
				s.arrive(e.id)
			}
		case kAnswer:
			if a := &s.atts[e.id]; a.gen == e.gen {
				s.answer(e.id)
			}
		case kPerTry:
			if s.atts[e.id].gen == e.gen {
				s.perTryTimeout(e.id)
			}
		case kBodyIdle:
			if a := &s.atts[e.id]; a.gen == e.gen && a.state == atStalled {
				s.bodyEnded(e.id, errStalled)
			}
		case kHedge:
			if r := &s.reqs[e.id]; r.gen == e.gen && r.active {
				s.hedgeTimer(e.id)
			}
		case kDeadline:
			if r := &s.reqs[e.id]; r.gen == e.gen && r.active {
				s.deadline(e.id)
			}
		case kScenario:
			s.scenarioEvent(s.events[e.id])
		case kTimer:
			s.clock.fire(e.id)
		case kProbe:
			s.wakeProbe(e.id)
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
	s.now = max(s.now, s.end)
	s.res.Unfinished = int64(s.active)
}

// releasesDone reports whether no request will be released any more.
func (s *sim) releasesDone() bool {
	if s.work != nil {
		return s.released
	}
	return s.workersLeft == 0
}

// scheduleRelease draws the next open-loop release and schedules it,
// unless it falls after the end.
func (s *sim) scheduleRelease() {
	a := s.work.next()
	if int64(a.at) > s.end {
		s.released = true
		return
	}
	id := s.newRequest()
	r := &s.reqs[id]
	r.release, r.key, r.client, r.z, r.worker = int64(a.at), a.key, a.client, a.z, -1
	s.push(event{t: int64(a.at), kind: kArrival, id: id})
}

func (s *sim) newRequest() int32 {
	if n := len(s.freeReqs); n > 0 {
		id := s.freeReqs[n-1]
		s.freeReqs = s.freeReqs[:n-1]
		return id
	}
	s.reqs = append(s.reqs, request{body: -1, worker: -1})
	return int32(len(s.reqs) - 1)
}

func (s *sim) newAttempt() int32 {
	if n := len(s.freeAtts); n > 0 {
		id := s.freeAtts[n-1]
		s.freeAtts = s.freeAtts[:n-1]
		return id
	}
	s.atts = append(s.atts, attempt{hereIdx: -1})
	return int32(len(s.atts) - 1)
}

// freeAttempt returns an attempt that is done at the client and at its
// backend.
func (s *sim) freeAttempt(aid int32) {
	a := &s.atts[aid]
	gen := a.gen + 1
	*a = attempt{gen: gen, hereIdx: -1}
	s.freeAtts = append(s.freeAtts, aid)
}

// keyServed records which backend served a successful request of key k,
// for the affinity figure.
func (s *sim) keyServed(k, backend int32) {
	if last := s.lastKey[k]; last >= 0 {
		s.res.keyRepeats++
		if last == backend {
			s.res.keySame++
		}
	}
	s.lastKey[k] = backend
}
