package main

import (
	"sync/atomic"
	"time"

	"github.com/go-lb/lb"
)

// simClock is lb's Clock in simulated time. What the Balancers and the
// health checkers schedule (picker rebuilds, readmissions, ejection
// intervals, slow-start steps, Retry-After hold-offs, health checks) is an
// event of the simulation, run at its exact simulated time, in the order it
// was scheduled.
//
// lb's Clock runs each call in its own goroutine, and a health check
// blocks in its probe for as long as the check takes. So each call runs as
// a coroutine: the simulation starts its goroutine and waits until it
// ends or blocks in a simulated probe (see sim.probe), which hands control
// back until the probe's simulated end. One goroutine runs at a time, so a
// run repeats exactly from its seed.
type simClock struct {
	s     *sim
	yield chan struct{} // a coroutine ended or blocked
	stop  chan struct{} // closed at the end of the run
	ended atomic.Bool
}

type simTimer struct {
	f       func()
	stopped bool
}

func newSimClock(s *sim) *simClock {
	return &simClock{s: s, yield: make(chan struct{}), stop: make(chan struct{})}
}

// Stop prevents the call if it has not started. Calls to Stop come from
// lb's code under its own locks, on the simulation's goroutine or a
// coroutine (one at a time), or after the run.
func (t *simTimer) Stop() bool {
	was := !t.stopped
	t.stopped = true
	return was
}

// Now returns the simulated time.
func (c *simClock) Now() time.Time { return time.Unix(0, c.s.now) }

// AfterFunc schedules f as an event d from now. After the run it
// schedules nothing: the timer never fires, and its Stop reports that it
// prevented the call.
func (c *simClock) AfterFunc(d time.Duration, f func()) lb.Timer {
	t := &simTimer{f: f}
	if c.ended.Load() {
		return t
	}
	id := int32(len(c.s.timers))
	if n := len(c.s.freeTimers); n > 0 {
		id = c.s.freeTimers[n-1]
		c.s.freeTimers = c.s.freeTimers[:n-1]
		c.s.timers[id] = t
	} else {
		c.s.timers = append(c.s.timers, t)
	}
	c.s.push(event{t: c.s.now + int64(max(d, 0)), kind: kTimer, id: id})
	return t
}

// fire runs the timer of a kTimer event, unless it was stopped.
func (c *simClock) fire(id int32) {
	t := c.s.timers[id]
	c.s.timers[id] = nil
	c.s.freeTimers = append(c.s.freeTimers, id)
	if t.stopped {
		return
	}
	t.stopped = true
	c.run(t.f)
}

// run runs f as a coroutine and waits until it ends or blocks in a probe.
func (c *simClock) run(f func()) {
	go func() {
		f()
		c.handBack()
	}()
	<-c.yield
}

// handBack gives control back to the simulation (or, after the run, to
// nobody).
func (c *simClock) handBack() {
	select {
	case c.yield <- struct{}{}:
	case <-c.stop:
	}
}

// resume lets a coroutine blocked in a probe go on, and waits until it
// ends or blocks again.
func (c *simClock) resume(wake chan struct{}) {
	close(wake)
	<-c.yield
}

// end marks the end of the run: coroutines blocked in probes return, and
// none is started again.
func (c *simClock) end() {
	if c.ended.CompareAndSwap(false, true) {
		close(c.stop)
	}
}
