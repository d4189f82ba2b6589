package main

import (
	"errors"
	"time"
)

// Health checks are lb's own (lb.StartHealthChecks on every client's
// Balancer, on the simulated Clock); only the probe, HealthCheck.Probe, is
// simulated. A probe meets the backend as a call would: a killed backend
// refuses it, a fault catches it with the fault's error rate (unless the
// fault's probe is "pass"), and the check takes simulated time: the
// probe latency for a backend that answers, the fault's latency for a
// failure, and the check's whole timeout for a blackhole. A stall sends
// 200 and its headers, which pass lb's check, after which lb reads the body
// until its timeout: the check passes, late.

var (
	errProbeRefused = errors.New("lbsim: probe refused")
	errProbeFailed  = errors.New("lbsim: probe failed")
	errProbeTimeout = errors.New("lbsim: probe timed out")
	errProbeStopped = errors.New("lbsim: run over")
)

// maxBlockedProbes bounds the probes of one client that wait in simulated
// time at once. lb's health checker runs at most 32 checks at a time and
// takes a slot before it calls the probe: with 32 probes waiting, a 33rd
// check would wait for a slot outside simulated time, which the
// simulation cannot see. Past the bound a probe returns its result at
// once (counted in Result.ProbesNotDelayed).
const maxBlockedProbes = 31

// probe is client ci's HealthCheck.Probe of the backend at addr. It runs
// on a coroutine of the simulated Clock (see simClock).
func (s *sim) probe(ci int32, addr string) error {
	i, ok := s.byAddr[addr]
	if !ok {
		return errProbeFailed
	}
	err, d := s.probeOutcome(&s.backends[i])
	if d <= 0 {
		return err
	}
	c := s.clients[ci]
	if c.probesBlocked >= maxBlockedProbes {
		s.res.ProbesNotDelayed++
		return err
	}
	c.probesBlocked++
	wake := make(chan struct{})
	id := s.newProbe(wake)
	s.push(event{t: s.now + int64(d), kind: kProbe, id: id})
	s.clock.handBack()
	select {
	case <-wake:
	case <-s.clock.stop:
		return errProbeStopped
	}
	c.probesBlocked--
	return err
}

// probeOutcome is what a probe of b meets now, and how long it takes.
func (s *sim) probeOutcome(b *simBackend) (error, time.Duration) {
	hc := s.sc.HealthCheck
	if b.down {
		return errProbeRefused, 0
	}
	if f := b.fault; f != nil && !f.probePass && (f.rate >= 1 || s.probeRand.Float64() < f.rate) {
		switch f.mode {
		case modeBlackhole:
			return errProbeTimeout, hc.timeout()
		case modeStall:
			return nil, hc.timeout()
		default:
			return errProbeFailed, min(f.latency, hc.timeout())
		}
	}
	return nil, min(hc.ProbeLatency.D(), hc.timeout())
}

func (s *sim) newProbe(wake chan struct{}) int32 {
	if n := len(s.freeProbes); n > 0 {
		id := s.freeProbes[n-1]
		s.freeProbes = s.freeProbes[:n-1]
		s.probes[id] = wake
		return id
	}
	s.probes = append(s.probes, wake)
	return int32(len(s.probes) - 1)
}

// wakeProbe is a kProbe event: the probe's simulated time is over, and
// its coroutine goes on.
func (s *sim) wakeProbe(id int32) {
	wake := s.probes[id]
	s.probes[id] = nil
	s.freeProbes = append(s.freeProbes, id)
	s.clock.resume(wake)
}
