package main

import (
	"time"

	"github.com/go-lb/lb"
)

// attempt picks a backend for request id (Pick for the first attempt,
// PickNext for a retry) and sends the attempt there.
func (s *sim) attempt(id int32) {
	r := &s.reqs[id]
	bal := s.bals[r.client]
	key := s.keys[r.key]
	var p lb.Pick
	var err error
	if len(r.tried) == 0 {
		p, err = bal.Pick(key)
	} else {
		p, err = bal.PickNext(key, r.tried)
	}
	if err != nil { // no backend left to try
		s.complete(id, false)
		return
	}
	bi := s.backendIndex(r.client, p.Backend)
	b := &s.backends[bi]
	if len(r.tried) == 0 {
		r.service = serviceTime(b.median, b.factor, b.sigma, r.z)
	} else {
		r.service = serviceTime(b.median, b.factor, b.sigma, s.retryRand.NormFloat64())
		s.res.Retries++
	}
	r.tried = append(r.tried, p.Backend)
	r.pick, r.backend, r.attemptAt = p, bi, s.now
	r.gen++
	b.picks++
	s.res.Attempts++
	switch {
	case b.down: // connection refused
		r.state = stFailing
		s.push(event{t: s.now + s.failLat, kind: kDone, id: id, gen: r.gen, fail: true})
	case b.errRate > 0 && s.failRand.Float64() < b.errRate: // a fast error
		r.state = stFailing
		s.push(event{t: s.now + s.failLat, kind: kDone, id: id, gen: r.gen, fail: true})
	case b.busy < b.slots:
		s.addInflight(b, 1)
		s.serve(b, id)
	case b.maxQueue == 0 || len(b.queue)-b.qhead < b.maxQueue:
		r.state = stQueued
		b.queue = append(b.queue, id)
		s.addInflight(b, 1)
	default: // queue full: rejected
		s.res.Rejected++
		r.state = stFailing
		s.push(event{t: s.now + s.failLat, kind: kDone, id: id, gen: r.gen, fail: true})
	}
}

// Attempt states.
const (
	stNone    uint8 = iota
	stFailing       // a failure is on its way back
	stQueued
	stServing
)

// serve starts request id's attempt in a free slot of b (the caller has
// counted it in b's inflight).
func (s *sim) serve(b *simBackend, id int32) {
	r := &s.reqs[id]
	b.busy++
	r.state = stServing
	s.push(event{t: s.now + int64(r.service), kind: kDone, id: id, gen: r.gen, served: true})
}

// backendIndex maps a client's *lb.Backend to the simulated backend.
func (s *sim) backendIndex(client int32, b *lb.Backend) int32 {
	m := s.index[client]
	if i, ok := m[b]; ok {
		return i
	}
	i := s.byAddr[b.Addr()]
	m[b] = i
	return i
}

// done ends an attempt: frees its slot, reports it to the Balancer with
// Pick.Done, and completes the request or retries it.
func (s *sim) done(e event) {
	r := &s.reqs[e.id]
	if r.gen != e.gen {
		return // the attempt was cut short by a kill
	}
	b := &s.backends[r.backend]
	if e.served {
		b.busy--
		s.addInflight(b, -1)
		s.startQueued(b)
	}
	var err error
	if e.fail {
		err = errBackend
	}
	r.pick.Done(err, time.Duration(s.now-r.attemptAt))
	r.pick, r.state = lb.Pick{}, stNone
	switch {
	case !e.fail:
		s.complete(e.id, true)
	case len(r.tried) <= s.retries:
		s.attempt(e.id)
	default:
		s.complete(e.id, false)
	}
}

// startQueued moves queued attempts into free slots.
func (s *sim) startQueued(b *simBackend) {
	for b.busy < b.slots && b.qhead < len(b.queue) {
		id := b.queue[b.qhead]
		b.qhead++
		s.serve(b, id)
	}
	if b.qhead == len(b.queue) {
		b.queue, b.qhead = b.queue[:0], 0
	} else if b.qhead > 1024 && b.qhead*2 > len(b.queue) {
		n := copy(b.queue, b.queue[b.qhead:])
		b.queue, b.qhead = b.queue[:n], 0
	}
}

// complete records the end of request id and frees it.
func (s *sim) complete(id int32, ok bool) {
	r := &s.reqs[id]
	if ok {
		s.res.lat = append(s.res.lat, s.now-r.arrival)
		if last := s.lastKey[r.key]; last >= 0 {
			s.res.keyRepeats++
			if last == r.backend {
				s.res.keySame++
			}
		}
		s.lastKey[r.key] = r.backend
	} else {
		s.res.Errors++
	}
	r.tried = r.tried[:0]
	r.gen++
	s.free = append(s.free, id)
}

// addInflight changes b's count of calls in service or queued, integrating
// it over time for the load figures.
func (s *sim) addInflight(b *simBackend, d int) {
	b.area += float64(b.inflight) * float64(s.now-b.lastT)
	b.lastT = s.now
	b.inflight += d
}

// kill makes b's process die: the attempts in service or queued there fail
// (a reset connection, after FailLatency), and new ones are refused until
// it starts again.
func (s *sim) kill(b *simBackend, bi int32) {
	b.down = true
	cut := func(id int32) {
		r := &s.reqs[id]
		r.gen++
		r.state = stFailing
		s.push(event{t: s.now + s.failLat, kind: kDone, id: id, gen: r.gen, fail: true})
	}
	for _, id := range b.queue[b.qhead:] {
		cut(id)
	}
	if b.busy > 0 {
		for id := range s.reqs {
			if r := &s.reqs[id]; r.backend == bi && r.state == stServing {
				cut(int32(id))
			}
		}
	}
	s.addInflight(b, -b.inflight)
	b.busy, b.queue, b.qhead = 0, b.queue[:0], 0
}
