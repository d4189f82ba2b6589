package main

import (
	"context"
	"io"
	"math"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-lb/lb"
)

// RunReal runs the scenario with one strategy on a real loopback fleet
// (realBackend), in real time: every client has a real lb.Balancer (with
// the scenario's outlier detection and slow start), a real lb.Transport
// (with the scenario's options) under an http.Client, and, with
// health_check, lb's real HTTP health checks; the scenario's workload
// (the same releases, keys and request sizes lbsim draws) is sent through
// them, and its events happen to the servers. It is what lbsim's
// predictions are held against (validate.go): it takes the scenario's
// duration in wall time, and more while requests drain.
func RunReal(sc *Scenario, strategy string) (*Result, error) {
	start := time.Now()
	evs, err := sc.expandEvents()
	if err != nil {
		return nil, err
	}
	names := sc.backendNames()
	f := &realRun{sc: sc, res: newResult(sc, strategy, names, max(int(sc.Duration/sc.SampleInterval), 1)), picks: make([]atomic.Uint64, len(names)), slowed: make([]atomic.Bool, len(names)), start: time.Now()}
	defer f.stopBackends()
	probe := time.Duration(0)
	if sc.HealthCheck != nil {
		probe = sc.HealthCheck.ProbeLatency.D()
	}
	i := 0
	for _, g := range sc.Backends {
		for range g.Count {
			b, err := startRealBackend(names[i], g, probe, sc.Seed)
			if err != nil {
				return nil, err
			}
			if g.Absent {
				b.kill()
			}
			f.backends = append(f.backends, b)
			f.present = append(f.present, !g.Absent)
			i++
		}
	}
	f.byAddr = map[string]int{}
	for i, b := range f.backends {
		f.byAddr[b.addr] = i
		f.ordinals = append(f.ordinals, -1)
		if sc.Subset != nil && sc.Subset.Ordinals && f.present[i] {
			f.ordinals[i] = f.nextOrdinal
			f.nextOrdinal++
		}
	}
	if err := f.startClients(strategy); err != nil {
		f.stopClients()
		return nil, err
	}
	lagDone := make(chan struct{})
	lag := make(chan time.Duration, 1)
	go func() { lag <- watchLag(lagDone) }()
	f.run(evs)
	close(lagDone)
	f.res.lag = <-lag
	f.stopClients()
	f.finish()
	f.res.Wall = time.Since(start)
	return f.res, nil
}

type realRun struct {
	sc          *Scenario
	start       time.Time
	res         *Result
	backends    []*realBackend
	present     []bool
	ordinals    []int // per backend, -1: none
	byAddr      map[string]int
	nextOrdinal int
	picks       []atomic.Uint64 // attempts per backend, from the attempt observer
	slowed      []atomic.Bool   // a slow event changed the backend's speed
	clients     []*realClient

	mu      sync.Mutex // guards res's counts and latencies
	pending sync.WaitGroup
}

type realClient struct {
	bal    *lb.Balancer
	tr     *lb.Transport
	hc     *lb.HealthChecker
	http   *http.Client
	queue  chan realRequest // an open loop with a worker cap
	hcStop context.CancelFunc
}

type realRequest struct {
	release time.Time
	key     int32
	z       float64
}

// endpoints returns the real fleet's endpoint set, labelled as lbsim's
// (simBackend.endpoint): the backends' names as hash names, their zones
// and ordinals.
func (f *realRun) endpoints() []lb.Endpoint {
	var eps []lb.Endpoint
	for i, b := range f.backends {
		if f.present[i] {
			g := f.groupOf(i)
			e := (&simBackend{name: b.name, addr: b.addr, weight: g.Weight, zone: g.Zone, ordinal: f.ordinals[i]}).endpoint()
			eps = append(eps, e)
		}
	}
	return eps
}

func (f *realRun) groupOf(i int) BackendGroup {
	for _, g := range f.sc.Backends {
		if i < g.Count {
			return g
		}
		i -= g.Count
	}
	panic("lbsim: backend index out of range")
}

func (f *realRun) startClients(strategy string) error {
	sc := f.sc
	b, err := builderFor(strategy, nil)
	if err != nil {
		return err
	}
	fastest := time.Duration(math.MaxInt64)
	for _, g := range sc.Backends {
		fastest = min(fastest, g.Median.D())
	}
	observe := lb.WithAttemptObserver(func(a lb.AttemptInfo) {
		if i, ok := f.byAddr[a.Backend]; ok {
			f.picks[i].Add(1)
			f.mu.Lock()
			f.res.pickAt(i, time.Since(f.start)-a.Duration)
			if g := f.groupOf(i); g.Median.D() == fastest && a.Err == nil && a.StatusCode == http.StatusOK && !f.slowed[i].Load() {
				f.res.overheads = append(f.res.overheads, int64(a.Duration-fastest))
			}
			f.mu.Unlock()
		}
	})
	topts := append(sc.Transport.options(), lb.WithKey(lb.HeaderKey(keyHeader)), observe)
	for ci := range sc.Clients {
		bal, err := lb.NewBalancer(b, append(append(sc.balancerOptions(), lb.WithEndpoints(f.endpoints())), sc.clientOptions(ci)...)...)
		if err != nil {
			return err
		}
		tr, err := lb.NewTransport(bal, topts...)
		if err != nil {
			bal.Close()
			return err
		}
		c := &realClient{bal: bal, tr: tr, http: &http.Client{Transport: tr}}
		f.clients = append(f.clients, c)
		if hc := sc.HealthCheck; hc != nil {
			ctx, cancel := context.WithCancel(context.Background())
			c.hcStop = cancel
			h, err := lb.StartHealthChecks(ctx, bal, hc.lbHealthCheck(nil))
			if err != nil {
				return err
			}
			c.hc = h
		}
	}
	return nil
}

// run sends the workload and applies the events, until the duration is
// over and the requests have drained (or the stop time has come: those
// still going are then cancelled, and count as unfinished).
func (f *realRun) run(evs []timedEvent) {
	sc := f.sc
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f.start = time.Now()
	start := f.start
	stopAt := start.Add(sc.Duration.D() + max(sc.Duration.D(), 2*sc.Load.Timeout.D()))
	var timers []*time.Timer
	var evMu sync.Mutex // events apply one at a time, in order
	for _, e := range evs {
		timers = append(timers, time.AfterFunc(time.Until(start.Add(e.at)), func() {
			evMu.Lock()
			defer evMu.Unlock()
			if ctx.Err() == nil {
				f.apply(e)
			}
		}))
	}
	defer func() {
		for _, t := range timers {
			t.Stop()
		}
		evMu.Lock() // an event being applied finishes first
		evMu.Unlock()
	}()

	var workers sync.WaitGroup
	if sc.Load.Arrivals == arrivalsClosed {
		for ci, c := range f.clients {
			for k := range sc.Load.Workers {
				w := ci*sc.Load.Workers + k
				load := newWorkerLoad(sc, w)
				workers.Add(1)
				go func() {
					defer workers.Done()
					for time.Since(start) < sc.Duration.D() && ctx.Err() == nil {
						key, z := load.request()
						f.do(ctx, c, realRequest{release: time.Now(), key: key, z: z})
						if !sleep(ctx, sc.Load.Think.D()) {
							return
						}
					}
				}()
			}
		}
	} else {
		if sc.Load.Workers > 0 {
			for _, c := range f.clients {
				c.queue = make(chan realRequest, sc.requestsHint())
				for range sc.Load.Workers {
					workers.Add(1)
					go func() {
						defer workers.Done()
						for r := range c.queue {
							f.do(ctx, c, r)
						}
					}()
				}
			}
		}
		w := newWorkload(sc)
		timer := time.NewTimer(time.Hour)
		for {
			a := w.next()
			if a.at > sc.Duration.D() {
				break
			}
			if d := time.Until(start.Add(a.at)); d > 0 {
				timer.Reset(d)
				<-timer.C
			}
			r := realRequest{release: start.Add(a.at), key: a.key, z: a.z}
			c := f.clients[a.client]
			if c.queue != nil {
				c.queue <- r
				continue
			}
			f.pending.Add(1)
			go func() {
				defer f.pending.Done()
				f.do(ctx, c, r)
			}()
		}
		timer.Stop()
		for _, c := range f.clients {
			if c.queue != nil {
				close(c.queue)
			}
		}
	}
	done := make(chan struct{})
	go func() {
		workers.Wait()
		f.pending.Wait()
		close(done)
	}()
	if d := time.Until(start.Add(sc.Duration.D())); d > 0 {
		sleep(ctx, d) // the events up to the end still happen
	}
	select {
	case <-done:
	case <-time.After(time.Until(stopAt)):
		cancel()
		<-done
	}
}

// do sends one request and records how it ended.
func (f *realRun) do(run context.Context, c *realClient, r realRequest) {
	f.res.countRequest(&f.mu)
	ctx := run
	if t := f.sc.Load.Timeout.D(); t > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(run, t)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, f.sc.Load.Method, "http://svc.internal/", http.NoBody)
	if err != nil {
		panic(err) // a constant URL and a validated method
	}
	req.Header.Set(keyHeader, "user-"+strconv.Itoa(int(r.key)))
	req.Header.Set(sizeHeader, strconv.FormatFloat(r.z, 'g', -1, 64))
	resp, err := c.http.Do(req)
	out := outOK
	if err == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		switch {
		case err != nil:
			out = outBody
		case resp.StatusCode >= 400:
			out = outStatus
		}
	} else {
		out = outError
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case run.Err() != nil:
		f.res.Unfinished++
	case out == outOK:
		f.res.lat = append(f.res.lat, int64(time.Since(r.release)))
	case out == outError:
		f.res.Errors++
	case out == outStatus:
		f.res.StatusFailures++
		f.res.statusCount(resp.StatusCode)
	case out == outBody:
		f.res.BodyFailures++
	}
}

func (r *Result) countRequest(mu *sync.Mutex) {
	mu.Lock()
	r.Requests++
	mu.Unlock()
}

// apply makes one elementary event happen to the real fleet.
func (f *realRun) apply(e timedEvent) {
	b := f.backends[e.backend]
	switch e.kind {
	case evAdd, evRemove, evReplace:
		switch e.kind {
		case evAdd:
			f.present[e.backend] = true
			if f.sc.Subset != nil && f.sc.Subset.Ordinals && f.ordinals[e.backend] < 0 {
				f.ordinals[e.backend] = f.nextOrdinal
				f.nextOrdinal++
			}
			_ = b.start()
		case evRemove:
			f.present[e.backend] = false
		case evReplace:
			for k, old := range e.list {
				nb := e.with[k]
				f.present[old], f.present[nb] = false, true
				if f.ordinals[old] >= 0 {
					f.ordinals[nb] = f.ordinals[old]
				}
				_ = f.backends[nb].start()
			}
		}
		eps := f.endpoints()
		for _, c := range f.clients {
			_ = c.bal.Update(eps)
		}
	case evFail:
		b.fault.Store(e.fault)
	case evRecover:
		b.fault.Store(nil)
	case evSlow:
		b.factor.Store(floatBits(e.factor))
		f.slowed[e.backend].Store(true)
	case evKill:
		b.kill()
	case evStart:
		if err := b.start(); err != nil {
			f.mu.Lock()
			f.res.realErrors = append(f.res.realErrors, err)
			f.mu.Unlock()
		}
	}
}

func (f *realRun) stopClients() {
	for _, c := range f.clients {
		if c.hc != nil {
			c.hcStop()
			c.hc.Close()
		}
	}
	for _, c := range f.clients {
		st := c.tr.Stats()
		f.res.Retries += int64(st.Retries)
		f.res.RetriesDenied += int64(st.RetriesDenied)
		f.res.Hedges += int64(st.Hedges)
		f.res.HedgeWins += int64(st.HedgeWins)
		f.res.PerTryTimeouts += int64(st.PerTryTimeouts)
		f.res.BodyStalls += int64(st.BodyStalls)
		for _, s := range c.bal.Stats() {
			f.res.Ejections += int64(s.Ejections)
		}
		c.tr.CloseIdleConnections()
		c.bal.Close()
	}
}

func (f *realRun) stopBackends() {
	for _, b := range f.backends {
		b.stop()
	}
}

func (f *realRun) finish() {
	for i := range f.backends {
		f.res.Picks[i] = f.picks[i].Load()
		f.res.Shed += f.backends[i].shed.Load()
		f.res.Attempts += int64(f.res.Picks[i])
		f.res.pickRate[i], f.res.meanInflight[i] = math.NaN(), math.NaN()
	}
	f.res.summarise()
}

// keyHeader carries a request's hash key on the real fleet.
const keyHeader = "X-Lbsim-Key"

// floatBits and floatFrom store a float64 in an atomic.Uint64.
func floatBits(v float64) uint64 { return math.Float64bits(v) }
func floatFrom(b uint64) float64 { return math.Float64frombits(b) }

// watchLag measures, until done is closed, the longest time the process
// went without running a goroutine that asked to run every millisecond:
// how long the machine left the real fleet (servers, clients, lb's
// timers) without a CPU. A real run whose lag exceeds the scenario's time
// scales did not keep the scenario's timing.
func watchLag(done <-chan struct{}) time.Duration {
	const every = time.Millisecond
	t := time.NewTicker(every)
	defer t.Stop()
	last := time.Now()
	var worst time.Duration
	for {
		select {
		case <-done:
			return worst
		case <-t.C:
			now := time.Now()
			worst = max(worst, now.Sub(last)-every)
			last = now
		}
	}
}
