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
		b.present = true
		b.presentSince, b.everPresent = s.now, true
		if s.sc.Subset != nil && s.sc.Subset.Ordinals && b.ordinal < 0 {
			b.ordinal = s.nextOrdinal
			s.nextOrdinal++
		}
		s.update("add " + b.name)
	case evRemove:
		b.present = false
		b.presentTime += s.now - b.presentSince
		s.update("remove "+b.name, e.backend)
	case evReplace:
		for k, old := range e.list {
			ob, nb := &s.backends[old], &s.backends[e.with[k]]
			ob.present = false
			ob.presentTime += s.now - ob.presentSince
			nb.present, nb.presentSince, nb.everPresent = true, s.now, true
			if ob.ordinal >= 0 {
				nb.ordinal = ob.ordinal
			}
		}
		s.update(fmt.Sprintf("replace %d backends", len(e.list)), e.list...)
	case evFail:
		b.fault = e.fault
	case evRecover:
		b.fault = nil
	case evSlow:
		b.factor = e.factor
	case evKill:
		s.kill(b)
	case evStart:
		b.down = false
	}
}

// update gives every client's Balancer the current endpoint set; gone are
// the backends that left it.
func (s *sim) update(label string, gone ...int) {
	eps := s.endpoints()
	before := s.members()
	for _, c := range s.clients {
		if err := c.bal.Update(eps); err != nil {
			// The scenario was validated: an error here is a bug.
			panic(fmt.Sprintf("lbsim: Update: %v", err))
		}
	}
	g := map[int32]bool{}
	for _, b := range gone {
		g[int32(b)] = true
	}
	s.changed(label)
	mv := &s.res.Moves[len(s.res.Moves)-1]
	mv.PairsMoved, mv.PairsMust = pairsMoved(before, s.members(), g)
}

// changed records a change of the endpoint set: the share of the key
// space that moved (hash strategies), and the least share that had to
// move for the shares to follow the weights.
func (s *sim) changed(label string) {
	before := s.placed
	shares := s.availableShares()
	mv := Move{At: time.Duration(s.now), Label: label, Ideal: idealMoved(s.lastSet, shares), Moved: math.NaN()}
	s.lastSet = shares
	if err := s.placeKeys(); err != nil {
		panic(fmt.Sprintf("lbsim: placing keys: %v", err))
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

// present returns the backends in the endpoint set.
func (s *sim) present() []int {
	var out []int
	for i := range s.backends {
		if s.backends[i].present {
			out = append(out, i)
		}
	}
	return out
}

// availableShares returns each backend's share of the total weight of the
// endpoint set.
func (s *sim) availableShares() []float64 {
	shares := make([]float64, len(s.backends))
	var total float64
	for _, i := range s.present() {
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

// placeKeys places the probe keys with a picker built by the strategy's
// own Builder over the endpoint set, as every client's Balancer just did.
// For ring-bounded it is the keys' home placement (no load).
func (s *sim) placeKeys() error {
	if s.probeKey == nil {
		return nil
	}
	var eps []lb.Endpoint
	for _, i := range s.present() {
		eps = append(eps, s.backends[i].endpoint())
	}
	bs, err := lb.NewBackends(eps)
	if err != nil {
		return err
	}
	p, err := s.builder.Build(bs)
	if err != nil {
		return err
	}
	placed := make([]int32, len(s.probeKey))
	for i, k := range s.probeKey {
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

// finishRun closes the accounting at the end of the run.
func (s *sim) finishRun() {
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
		s.res.everPresent = append(s.res.everPresent, b.everPresent)
		if b.everPresent && b.presentTime > 0 {
			t := float64(b.presentTime) / 1e9
			s.res.pickRate[i] = float64(b.picks) / t / float64(b.weight)
			s.res.meanInflight[i] = b.totalArea / float64(b.presentTime) / float64(b.weight)
		} else {
			s.res.pickRate[i], s.res.meanInflight[i] = math.NaN(), math.NaN()
		}
	}
	for _, c := range s.clients {
		for _, st := range c.bal.Stats() {
			s.res.Ejections += int64(st.Ejections)
		}
	}
	if s.contacted != nil {
		s.res.Connections = make([]int, len(s.backends))
		for _, row := range s.contacted {
			for b, yes := range row {
				if yes {
					s.res.Connections[b]++
				}
			}
		}
	}
	s.res.summarise()
}
