package main

import (
	"fmt"
	"math"
	"time"

	"github.com/go-lb/lb"
)

// scenarioEvent applies one elementary scenario event.
func (s *sim) scenarioEvent(e timedEvent) {
	b := &s.backends[e.backend]
	switch e.kind {
	case evAdd:
		b.present, b.healthy, b.hcFails, b.hcOKs = true, true, 0, 0
		b.presentSince, b.everPresent = s.now, true
		s.update("add " + b.name)
	case evRemove:
		b.present = false
		b.presentTime += s.now - b.presentSince
		s.update("remove " + b.name)
	case evFail:
		b.errRate = e.rate
	case evRecover:
		b.errRate = 0
	case evSlow:
		b.factor = e.factor
	case evKill:
		s.kill(b, int32(e.backend))
	case evStart:
		b.down = false
	}
}

// update gives every client's Balancer the current endpoint set.
func (s *sim) update(label string) {
	eps := s.endpoints()
	for _, bal := range s.bals {
		if err := bal.Update(eps); err != nil {
			// The scenario was validated: an error here is a bug.
			panic(fmt.Sprintf("lbsim: Update: %v", err))
		}
	}
	s.changed(label)
}

// healthCheck runs one round of the active health check on every backend
// in the set, and marks backends down or up (Balancer.SetHealthy on every
// client) when their streak reaches the thresholds. This is lbsim's own
// checker in simulated time: lb's passive outlier ejection readmits
// backends on real-time timers, which a simulation cannot use.
func (s *sim) healthCheck() {
	hc := s.sc.HealthCheck
	for i := range s.backends {
		b := &s.backends[i]
		if !b.present {
			continue
		}
		ok := !b.down && !(b.errRate > 0 && s.hcRand.Float64() < b.errRate)
		if ok {
			b.hcOKs++
			b.hcFails = 0
		} else {
			b.hcFails++
			b.hcOKs = 0
		}
		switch {
		case b.healthy && b.hcFails >= hc.UnhealthyAfter:
			b.healthy = false
			s.setHealthy(b, "down")
		case !b.healthy && b.hcOKs >= hc.HealthyAfter:
			b.healthy = true
			s.setHealthy(b, "up")
		}
	}
}

func (s *sim) setHealthy(b *simBackend, what string) {
	for _, bal := range s.bals {
		if err := bal.SetHealthy(b.addr, b.healthy); err != nil {
			panic(fmt.Sprintf("lbsim: SetHealthy: %v", err))
		}
	}
	s.clock.runDue() // the pickers' rebuilds, before the keys are probed
	s.changed(b.name + " " + what)
}

// changed records a change of the set the pickers are built over: the
// share of the key space that moved (hash strategies), and the least share
// that had to move for the shares to follow the weights.
func (s *sim) changed(label string) {
	before := s.placed
	shares := s.availableShares()
	mv := Move{At: time.Duration(s.now), Label: label, Ideal: idealMoved(s.lastSet, shares), Moved: math.NaN()}
	s.lastSet = shares
	if err := s.probe(); err != nil {
		panic(fmt.Sprintf("lbsim: probe: %v", err))
	}
	if before != nil {
		n := 0
		for i, b := range before {
			if s.placed[i] != b {
				n++
			}
		}
		mv.Moved = float64(n) / float64(len(before))
	}
	s.res.Moves = append(s.res.Moves, mv)
}

// available returns the backends the Balancers build their pickers over:
// those present and healthy, or all present when none is healthy (lb's
// panic threshold).
func (s *sim) available() []int {
	var out, present []int
	for i := range s.backends {
		if b := &s.backends[i]; b.present {
			present = append(present, i)
			if b.healthy {
				out = append(out, i)
			}
		}
	}
	if len(out) == 0 {
		return present
	}
	return out
}

// availableShares returns each backend's share of the total weight of the
// available set.
func (s *sim) availableShares() []float64 {
	shares := make([]float64, len(s.backends))
	var total float64
	for _, i := range s.available() {
		shares[i] = float64(s.backends[i].weight)
		total += shares[i]
	}
	for i := range shares {
		shares[i] /= total
	}
	return shares
}

// idealMoved is the least share of keys that must move when the shares
// change from a to b: 1 - Σ min(a_i, b_i).
func idealMoved(a, b []float64) float64 {
	kept := 0.0
	for i := range a {
		kept += min(a[i], b[i])
	}
	return max(1-kept, 0)
}

// probe places the probe keys with a picker built by the strategy's own
// Builder over the available set, as every client's Balancer just did.
// For ring-bounded it is the keys' home placement (no load).
func (s *sim) probe() error {
	if s.probes == nil {
		return nil
	}
	var eps []lb.Endpoint
	for _, i := range s.available() {
		eps = append(eps, lb.Endpoint{Addr: s.backends[i].addr, Weight: s.backends[i].weight})
	}
	bs, err := lb.NewBackends(eps)
	if err != nil {
		return err
	}
	p, err := s.builder.Build(bs)
	if err != nil {
		return err
	}
	placed := make([]int32, len(s.probes))
	for i, k := range s.probes {
		b, err := p.Pick(k)
		if err != nil {
			return err
		}
		placed[i] = s.byAddr[b.Addr()]
	}
	s.placed = placed
	return nil
}

// sample closes a load sampling interval: each backend's mean number of
// calls in service or queued over it.
func (s *sim) sample() {
	start := int64(s.samples) * int64(s.sc.SampleInterval)
	length := float64(s.now - start)
	for i := range s.backends {
		b := &s.backends[i]
		s.addInflight(b, 0)
		if length > 0 {
			s.res.Load[i][s.samples] = b.area / length
		}
		b.totalArea += b.area
		b.area = 0
	}
	s.samples++
}

// finish closes the accounting at the end of the run.
func (s *sim) finish() {
	end := max(s.now, s.end)
	s.now = end
	for i := range s.backends {
		b := &s.backends[i]
		s.addInflight(b, 0)
		b.totalArea += b.area
		b.area = 0
		if b.present {
			b.presentTime += end - b.presentSince
		}
		s.res.Picks[i] = b.picks
		if b.everPresent && b.presentTime > 0 {
			t := float64(b.presentTime) / 1e9
			s.res.pickRate[i] = float64(b.picks) / t / float64(b.weight)
			s.res.meanInflight[i] = b.totalArea / float64(b.presentTime) / float64(b.weight)
		} else {
			s.res.pickRate[i], s.res.meanInflight[i] = math.NaN(), math.NaN()
		}
	}
	s.res.summarise()
}
