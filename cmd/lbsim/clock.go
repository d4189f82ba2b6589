package main

import (
	"time"

	"github.com/go-lb/lb"
)

// simClock is lb's Clock in simulated time: what the Balancers schedule
// (the picker rebuilds after a health change, readmissions) runs from the
// simulation's goroutine when the simulated time comes, in the order it was
// scheduled, so that a run repeats exactly from its seed.
type simClock struct {
	s       *sim
	pending []*simTimer
}

type simTimer struct {
	at      int64
	f       func()
	stopped bool
}

func (t *simTimer) Stop() bool {
	was := !t.stopped
	t.stopped = true
	return was
}

func (c *simClock) Now() time.Time { return time.Unix(0, c.s.now) }

func (c *simClock) AfterFunc(d time.Duration, f func()) lb.Timer {
	t := &simTimer{at: c.s.now + int64(max(d, 0)), f: f}
	c.pending = append(c.pending, t)
	return t
}

// runDue runs the calls due by now, those they schedule for now included.
func (c *simClock) runDue() {
	for {
		ran := false
		kept := c.pending[:0]
		var due []*simTimer
		for _, t := range c.pending {
			switch {
			case t.stopped:
			case t.at <= c.s.now:
				due = append(due, t)
			default:
				kept = append(kept, t)
			}
		}
		c.pending = kept
		for _, t := range due {
			t.stopped = true
			t.f()
			ran = true
		}
		if !ran {
			return
		}
	}
}
