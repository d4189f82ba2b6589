package main

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"syscall"
	"time"

	"github.com/go-lb/lb"
)

// A client plays lb's Transport in simulated time: each decision is made
// by the client's lb.Policy (the rules NewTransport follows, built from
// the same options), in the order the Transport makes them, and each pick
// and its end go through the client's lb.Balancer. Only the sending is
// simulated: attempts travel to simulated backends and come back as
// simulated responses and errors, which are real values (a *net.OpError
// for a refused dial, an *http.Response for a 503), judged by the Policy.

// The errors of simulated attempts, as net/http and lb would give them.
var (
	errRefused = &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	errReset   = &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}
	errPerTry  = fmt.Errorf("lbsim: %w", lb.ErrPerTryTimeout)
	errStalled = fmt.Errorf("lbsim: %w", lb.ErrBodyStalled)
	// errStatus is what Pick.Done is told of a response the failure
	// policy counts as a failure, as the Transport does.
	errStatus = errors.New("lbsim: failure status")
)

// simClient is one client process: its Balancer, its Policy (and so its
// own retry budget and hedge delay), its health checker and its workers.
type simClient struct {
	bal  *lb.Balancer
	pol  *lb.Policy
	hc   *lb.HealthChecker
	zone string // where it runs (client_zones)

	// An open loop with a worker cap: released requests wait here.
	waiting []int32
	whead   int
	idle    int // free workers

	probesBlocked int // its health checks waiting in a simulated probe
}

type request struct {
	release  int64 // when it was released: its latency counts from here
	client   int32
	key      int32
	worker   int32 // closed loop: its worker; -1 otherwise
	z        float64
	gen      uint32  // moves when the request ends: voids its deadline and hedge timer
	live     []int32 // its attempts waiting for an answer
	tried    []*lb.Backend
	hedged   bool // it takes the Transport's hedged path
	hedges   int
	fallback int   // status of the failure response the Transport keeps to return (0: none)
	body     int32 // the attempt whose stalled body the caller reads; -1: none
	active   bool
}

type attempt struct {
	req        int32
	backend    int32
	pick       lb.Pick
	start      int64
	lat        time.Duration // time to the answer (headers or error)
	n          int           // the attempt's number in its request, from 1
	hedged     bool
	gen        uint32 // moves when it leaves a place: voids its pending events
	state      uint8
	z          float64
	service    time.Duration
	status     int
	retryAfter string
	err        error
	stall      bool
	hereIdx    int32
}

// response returns a shared, read-only response of the status (and
// Retry-After), for the Policy to judge.
func (s *sim) response(status int, retryAfter string) *http.Response {
	k := strconv.Itoa(status) + "/" + retryAfter
	if r := s.responses[k]; r != nil {
		return r
	}
	r := &http.Response{StatusCode: status, Header: http.Header{}}
	if retryAfter != "" {
		r.Header.Set("Retry-After", retryAfter)
	}
	s.responses[k] = r
	return r
}

// release is an open-loop request's release: it goes at once, or waits
// for a worker.
func (s *sim) release(id int32) {
	r := &s.reqs[id]
	c := s.clients[r.client]
	s.res.Requests++
	s.active++
	if s.sc.Load.Workers == 0 {
		s.send(id)
		return
	}
	if c.idle > 0 {
		c.idle--
		s.send(id)
		return
	}
	c.waiting = append(c.waiting, id)
}

// startWorker sends closed-loop worker w's next request, if the run is
// still releasing requests.
func (s *sim) startWorker(w int32) {
	if s.now >= s.end {
		s.workersLeft--
		return
	}
	id := s.newRequest()
	r := &s.reqs[id]
	r.release, r.worker = s.now, w
	r.client = w / int32(s.sc.Load.Workers)
	r.key, r.z = s.workerLoads[w].request()
	s.res.Requests++
	s.active++
	s.send(id)
}

// send is the caller's RoundTrip: the deadline starts, the request counts
// in the budget, the first backend is picked.
func (s *sim) send(id int32) {
	r := &s.reqs[id]
	c := s.clients[r.client]
	r.active = true
	if t := s.sc.Load.Timeout; t > 0 {
		s.push(event{t: s.now + int64(t), kind: kDeadline, id: id, gen: r.gen})
	}
	c.pol.Begin(time.Duration(s.now))
	pick, err := c.bal.Pick(s.keys[r.key])
	if err != nil {
		s.finish(id, outError)
		return
	}
	if c.pol.Hedges(s.tmpl) > 0 {
		r.hedged = true
		s.launch(id, pick, false)
		if d := c.pol.HedgeDelay(); d > 0 {
			s.push(event{t: s.now + int64(d), kind: kHedge, id: id, gen: r.gen})
		}
		return
	}
	s.launch(id, pick, false)
}

// launch starts an attempt of request id on pick's backend.
func (s *sim) launch(id int32, pick lb.Pick, hedged bool) {
	aid := s.newAttempt()
	r := &s.reqs[id]
	a := &s.atts[aid]
	r.tried = append(r.tried, pick.Backend)
	r.live = append(r.live, aid)
	a.req, a.pick, a.start, a.n, a.hedged = id, pick, s.now, len(r.tried), hedged
	a.backend = s.byAddr[pick.Backend.Addr()]
	s.contact(r.client, a.backend)
	a.state = atWire
	a.z = r.z
	if a.n > 1 {
		a.z = s.retryRand.NormFloat64()
	}
	s.backends[a.backend].picks++
	s.res.pickAt(int(a.backend), time.Duration(s.now))
	s.res.Attempts++
	if pt := s.perTry; pt > 0 {
		s.push(event{t: s.now + int64(pt), kind: kPerTry, id: aid, gen: a.gen})
	}
	s.push(event{t: s.now + int64(s.sc.Load.Overhead), kind: kReach, id: aid, gen: a.gen})
}

// perTryTimeout is an attempt's per-try timeout: if it has no answer yet,
// it is abandoned and fails with an error wrapping lb.ErrPerTryTimeout.
func (s *sim) perTryTimeout(aid int32) {
	a := &s.atts[aid]
	switch a.state {
	case atWire, atQueued, atServing, atFailing, atHeld:
	default:
		return // headers came first
	}
	s.leave(aid)
	s.res.PerTryTimeouts++
	s.attemptEnded(aid, nil, errPerTry)
}

// attemptEnded is the end of an attempt at the client: a response (resp)
// or an error.
func (s *sim) attemptEnded(aid int32, resp *http.Response, err error) {
	a := &s.atts[aid]
	a.lat = time.Duration(s.now - a.start)
	r := &s.reqs[a.req]
	for i, l := range r.live {
		if l == aid {
			r.live = append(r.live[:i], r.live[i+1:]...)
			break
		}
	}
	if r.hedged {
		s.hedgedResult(aid, resp, err)
	} else {
		s.result(aid, resp, err)
	}
}

// result follows an attempt of a request that is not hedged, as
// Transport.roundTrip does.
func (s *sim) result(aid int32, resp *http.Response, err error) {
	a := &s.atts[aid]
	id := a.req
	r := &s.reqs[id]
	c := s.clients[r.client]
	failed, maybe := c.pol.Failed(resp, err)
	if !failed {
		c.pol.Observe(a.lat)
		s.answered(aid, resp)
		return
	}
	if resp != nil {
		c.pol.HoldOff(a.pick, resp)
	}
	if reason := c.pol.Retryable(s.tmpl, a.n, maybe); reason != "" {
		if resp != nil {
			a.pick.Done(errStatus, a.lat)
			s.freeAttempt(aid)
			s.finishStatus(id, resp.StatusCode)
			return
		}
		a.pick.Done(err, a.lat)
		s.freeAttempt(aid)
		s.finish(id, outError)
		return
	}
	if resp != nil {
		a.pick.Done(errStatus, a.lat)
		r.fallback = resp.StatusCode
	} else {
		a.pick.Done(err, a.lat)
	}
	s.freeAttempt(aid)
	next, reason := c.pol.Next(c.bal, s.keys[r.key], r.tried, time.Duration(s.now))
	if reason != "" {
		if reason == reasonBudget {
			s.res.RetriesDenied++
		}
		s.giveUp(id)
		return
	}
	s.res.Retries++
	s.launch(id, next, false)
}

// reasonBudget is lb's Error.Reason of a retry the budget refused.
const reasonBudget = "retry budget exhausted"

// hedgedResult follows an attempt of a hedged request, as
// Transport.roundTripHedged does: the first success wins and the other
// attempts are cancelled; a failure is retried while the attempt limit and
// the budget allow.
func (s *sim) hedgedResult(aid int32, resp *http.Response, err error) {
	a := &s.atts[aid]
	id := a.req
	r := &s.reqs[id]
	c := s.clients[r.client]
	if failed, _ := c.pol.Failed(resp, err); !failed {
		s.drain(id)
		if a.hedged {
			s.res.HedgeWins++
		}
		c.pol.Observe(a.lat)
		s.answered(aid, resp)
		return
	}
	if resp != nil {
		c.pol.HoldOff(a.pick, resp)
		a.pick.Done(errStatus, a.lat)
		r.fallback = resp.StatusCode
	} else {
		a.pick.Done(err, a.lat)
	}
	s.freeAttempt(aid)
	if s.hedgeNext(id, false) {
		s.res.Retries++
		return
	}
	if len(r.live) == 0 {
		s.giveUp(id)
	}
}

// hedgeNext launches another attempt of a hedged request (a hedge, or a
// retry after a failure), if the Policy allows one.
func (s *sim) hedgeNext(id int32, hedged bool) bool {
	r := &s.reqs[id]
	c := s.clients[r.client]
	next, reason := c.pol.Next(c.bal, s.keys[r.key], r.tried, time.Duration(s.now))
	if reason != "" {
		if reason == reasonBudget {
			s.res.RetriesDenied++
		}
		return false
	}
	s.launch(id, next, hedged)
	return true
}

// hedgeTimer is a kHedge event: a hedge goes out, and the next is armed.
func (s *sim) hedgeTimer(id int32) {
	r := &s.reqs[id]
	c := s.clients[r.client]
	max := c.pol.Hedges(s.tmpl)
	if r.hedges < max && s.hedgeNext(id, true) {
		r.hedges++
		s.res.Hedges++
		if r.hedges < max {
			s.push(event{t: s.now + int64(c.pol.HedgeDelay()), kind: kHedge, id: id, gen: r.gen})
		}
	}
}

// drain cancels the attempts of a hedged request still waiting for an
// answer, as the Transport does once one has won: they count as neither a
// success nor a failure, and their time so far is a floor for their
// backends' latency (Policy.Lost).
func (s *sim) drain(id int32) {
	r := &s.reqs[id]
	c := s.clients[r.client]
	for _, aid := range r.live {
		a := &s.atts[aid]
		s.leave(aid)
		c.pol.Lost(a.pick, time.Duration(s.now-a.start))
		s.freeAttempt(aid)
	}
	r.live = r.live[:0]
}

// cancelAll cancels the attempts of request id still waiting for an
// answer, for the caller's deadline: neither a success nor a failure.
func (s *sim) cancelAll(id int32) {
	r := &s.reqs[id]
	for _, aid := range r.live {
		s.leave(aid)
		s.atts[aid].pick.Cancel()
		s.freeAttempt(aid)
	}
	r.live = r.live[:0]
}

// answered is a response the Transport returns: the request ends when its
// body has been read, at once, or, for a stalled body, when the body idle
// timeout or the caller's deadline ends it.
func (s *sim) answered(aid int32, resp *http.Response) {
	a := &s.atts[aid]
	id := a.req
	if a.state == atStalled {
		s.reqs[id].body = aid
		if d := s.bodyIdle; d > 0 {
			s.push(event{t: s.now + int64(d), kind: kBodyIdle, id: aid, gen: a.gen})
		}
		return
	}
	a.pick.Done(nil, a.lat)
	served := a.backend
	s.freeAttempt(aid)
	if resp.StatusCode >= 400 {
		s.finishStatus(id, resp.StatusCode)
		return
	}
	s.keyServed(s.reqs[id].key, served)
	s.finish(id, outOK)
}

// bodyEnded ends a stalled body: the body idle timeout (errStalled) or a
// kill of its backend (errReset), the backend's failure either way.
func (s *sim) bodyEnded(aid int32, err error) {
	a := &s.atts[aid]
	id := a.req
	s.reqs[id].body = -1
	if err == errStalled {
		s.res.BodyStalls++
		s.leave(aid)
	}
	a.pick.Done(err, a.lat)
	s.freeAttempt(aid)
	s.finish(id, outBody)
}

// deadline is the caller's deadline: its attempts are cancelled (neither
// a success nor a failure), and the request fails.
func (s *sim) deadline(id int32) {
	r := &s.reqs[id]
	if aid := r.body; aid >= 0 {
		r.body = -1
		s.leave(aid)
		s.atts[aid].pick.Cancel()
		s.freeAttempt(aid)
		s.finish(id, outBody)
		return
	}
	s.cancelAll(id)
	s.finish(id, outError)
}

// giveUp ends a request that has no attempt left: the Transport returns
// the last failure response it kept, or its error.
func (s *sim) giveUp(id int32) {
	if st := s.reqs[id].fallback; st != 0 {
		s.finishStatus(id, st)
		return
	}
	s.finish(id, outError)
}

// How a request ended, for the caller.
const (
	outOK     = iota // a 2xx or 3xx response, body read
	outError         // no response: the Transport's error
	outStatus        // a 4xx or 5xx response
	outBody          // the body failed after the headers
)

func (s *sim) finishStatus(id int32, status int) {
	s.res.statusCount(status)
	s.finish(id, outStatus)
}

// finish records the end of request id, frees it, and gives its worker
// the next request.
func (s *sim) finish(id int32, out int) {
	r := &s.reqs[id]
	switch out {
	case outOK:
		s.res.lat = append(s.res.lat, s.now-r.release)
		if z := s.clients[r.client].zone; z != "" {
			s.res.zoneLat(z, s.now-r.release)
		}
	case outError:
		s.res.Errors++
		s.res.failLat = append(s.res.failLat, s.now-r.release)
	case outStatus:
		s.res.StatusFailures++
		s.res.failLat = append(s.res.failLat, s.now-r.release)
	case outBody:
		s.res.BodyFailures++
		s.res.failLat = append(s.res.failLat, s.now-r.release)
	}
	r.active = false
	s.active--
	r.gen++
	r.tried, r.live, r.fallback, r.body, r.hedged, r.hedges = r.tried[:0], r.live[:0], 0, -1, false, 0
	w, c := r.worker, s.clients[r.client]
	s.freeReqs = append(s.freeReqs, id)
	switch {
	case w >= 0:
		s.push(event{t: s.now + max(int64(s.sc.Load.Think), 1), kind: kWorker, id: w})
	case s.sc.Load.Workers > 0:
		if c.whead < len(c.waiting) {
			next := c.waiting[c.whead]
			c.whead++
			if c.whead == len(c.waiting) {
				c.waiting, c.whead = c.waiting[:0], 0
			}
			s.send(next)
		} else {
			c.idle++
		}
	}
}

// contact records an attempt of client ci on backend b: the pairs that
// had a connection, and the attempts that crossed zones.
func (s *sim) contact(ci, b int32) {
	if s.contacted == nil {
		s.contacted = make([][]bool, len(s.clients))
	}
	row := s.contacted[ci]
	if row == nil {
		row = make([]bool, len(s.backends))
		s.contacted[ci] = row
	}
	row[b] = true
	if z := s.clients[ci].zone; z != "" {
		if s.res.ZoneAttemptsOver == nil {
			s.res.ZoneAttemptsOver = make([]uint64, s.nSamples)
			s.res.CrossZoneOver = make([]uint64, s.nSamples)
		}
		k := min(int(s.now/max(int64(s.sc.SampleInterval), 1)), s.nSamples-1)
		s.res.ZoneAttempts++
		s.res.ZoneAttemptsOver[k]++
		if s.backends[b].zone != z {
			s.res.CrossZone++
			s.res.CrossZoneOver[k]++
		}
	}
}
