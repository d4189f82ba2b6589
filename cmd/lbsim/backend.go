package main

import (
	"time"
)

// A simulated backend serves Slots calls at once and queues the rest
// (FIFO, up to MaxQueue; a call that finds the queue full is shed with a
// 503 at once). A call that a fault catches fails at the front, before it
// takes a slot: a status after the fault's latency, a reset, a blackhole
// (held until the client gives up on it), or a stall (200 and headers,
// then no body). A killed backend resets its calls and refuses dials until
// it starts again. A call the client abandons (a per-try timeout, a lost
// hedge, the caller's deadline) leaves the backend at once: its handler
// watches the request's context, as the real backends of the validation do.
type simBackend struct {
	name, addr      string
	zone            string
	ordinal         int // -1: none (see SubsetConfig.Ordinals)
	weight          int
	median          time.Duration
	sigma           float64
	slots, maxQueue int // maxQueue < 0: no bound

	factor  float64 // service time multiplier (slow events)
	fault   *fault  // nil: not failing
	present bool    // in the endpoint set
	down    bool    // process killed

	busy   int
	queue  []queueEntry // attempts waiting for a slot, in order; abandoned ones stay until reached
	qhead  int
	queued int     // attempts in the queue, abandoned ones not counted
	here   []int32 // every attempt at the backend (queued, served, failing, held, stalled)

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

// queueEntry is an attempt in a backend's queue: it is still there if its
// generation has not moved.
type queueEntry struct {
	id  int32
	gen uint32
}

// Where an attempt is.
const (
	atFree     uint8 = iota // not in use
	atWire                  // on its way to the backend (the client's overhead)
	atQueued                // waiting for a slot
	atServing               // in a slot
	atFailing               // a failure (status, reset) on its way back
	atHeld                  // blackholed: no answer will come
	atStalled               // headers received, body stalled
	atAnswered              // done at the backend, the client deciding
)

// arrive is attempt a reaching its backend: it is refused, caught by the
// backend's fault, served, queued or shed.
func (s *sim) arrive(id int32) {
	a := &s.atts[id]
	b := &s.backends[a.backend]
	if b.down {
		s.attemptEnded(id, nil, errRefused)
		return
	}
	s.addHere(b, id)
	if f := b.fault; f != nil && (f.rate >= 1 || s.failRand.Float64() < f.rate) {
		switch f.mode {
		case modeStatus:
			a.state, a.status, a.retryAfter = atFailing, f.status, f.retryAfter
			s.push(event{t: s.now + int64(f.latency), kind: kAnswer, id: id, gen: a.gen})
		case modeReset:
			a.state, a.err = atFailing, errReset
			s.push(event{t: s.now + int64(f.latency), kind: kAnswer, id: id, gen: a.gen})
		case modeBlackhole:
			a.state = atHeld
		case modeStall:
			a.state, a.status, a.stall = atFailing, 200, true
			s.push(event{t: s.now + int64(f.latency), kind: kAnswer, id: id, gen: a.gen})
		}
		return
	}
	a.service = serviceTime(b.median, b.factor, b.sigma, a.z)
	switch {
	case b.busy < b.slots:
		s.addInflight(b, 1)
		s.serve(b, id)
	case b.maxQueue < 0 || b.queued < b.maxQueue:
		a.state = atQueued
		b.queue = append(b.queue, queueEntry{id, a.gen})
		b.queued++
		s.addInflight(b, 1)
	default: // the queue is full: shed with a 503
		s.res.Shed++
		a.state, a.status = atFailing, 503
		s.push(event{t: s.now, kind: kAnswer, id: id, gen: a.gen})
	}
}

// serve starts attempt id in a free slot of b (counted in b's inflight).
func (s *sim) serve(b *simBackend, id int32) {
	a := &s.atts[id]
	b.busy++
	a.state = atServing
	s.push(event{t: s.now + int64(a.service), kind: kAnswer, id: id, gen: a.gen})
}

// answer is a kAnswer event: the backend's answer (or failure) reaches the
// client.
func (s *sim) answer(id int32) {
	a := &s.atts[id]
	b := &s.backends[a.backend]
	if a.state == atServing {
		b.busy--
		s.addInflight(b, -1)
		s.startQueued(b)
	}
	if a.stall {
		a.state = atStalled // headers now, a body never: it stays at the backend
	} else {
		s.removeHere(b, id)
		a.state = atAnswered
	}
	if a.err != nil {
		s.attemptEnded(id, nil, a.err)
		return
	}
	s.attemptEnded(id, s.response(a.status, a.retryAfter), nil)
}

// leave takes attempt id off its backend, wherever it is there: the client
// abandoned it, or the backend was killed. Its pending events are void.
func (s *sim) leave(id int32) {
	a := &s.atts[id]
	b := &s.backends[a.backend]
	switch a.state {
	case atWire, atAnswered, atFree:
		a.gen++
		return
	case atQueued:
		b.queued--
		s.addInflight(b, -1)
	case atServing:
		b.busy--
		s.addInflight(b, -1)
		defer s.startQueued(b)
	}
	s.removeHere(b, id)
	a.state = atAnswered
	a.gen++
}

// startQueued moves queued attempts into free slots.
func (s *sim) startQueued(b *simBackend) {
	for b.busy < b.slots && b.qhead < len(b.queue) {
		q := b.queue[b.qhead]
		b.qhead++
		if a := &s.atts[q.id]; a.gen != q.gen || a.state != atQueued {
			continue // abandoned
		}
		b.queued--
		s.serve(b, q.id)
	}
	if b.qhead == len(b.queue) {
		b.queue, b.qhead = b.queue[:0], 0
	} else if b.qhead > 1024 && b.qhead*2 > len(b.queue) {
		n := copy(b.queue, b.queue[b.qhead:])
		b.queue, b.qhead = b.queue[:n], 0
	}
}

// addHere and removeHere keep the list of b's attempts, for kill.
func (s *sim) addHere(b *simBackend, id int32) {
	s.atts[id].hereIdx = int32(len(b.here))
	b.here = append(b.here, id)
}

func (s *sim) removeHere(b *simBackend, id int32) {
	i := s.atts[id].hereIdx
	last := b.here[len(b.here)-1]
	b.here[i] = last
	s.atts[last].hereIdx = i
	b.here = b.here[:len(b.here)-1]
	s.atts[id].hereIdx = -1
}

// kill makes b's process die: the attempts there are reset (a stalled
// body breaks), and dials are refused until it starts again.
func (s *sim) kill(b *simBackend) {
	b.down = true
	b.queue, b.qhead = b.queue[:0], 0 // nothing more starts from it
	victims := append([]int32(nil), b.here...)
	for _, id := range victims {
		a := &s.atts[id]
		stalled := a.state == atStalled
		s.leave(id)
		if stalled {
			s.bodyEnded(id, errReset)
		} else {
			s.attemptEnded(id, nil, errReset)
		}
	}
}

// addInflight changes b's count of calls in service or queued, integrating
// it over time for the load figures.
func (s *sim) addInflight(b *simBackend, d int) {
	b.area += float64(b.inflight) * float64(s.now-b.lastT)
	b.lastT = s.now
	b.inflight += d
}
