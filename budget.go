package lb

import (
	"fmt"
	"math"
	"sync/atomic"
	"time"
)

// RetryBudget caps a Transport's retries, as Finagle's and Linkerd's retry
// budgets do: over the last Window, retries may be at most Ratio times the
// requests, plus MinPerSecond per second of the window. When every backend
// fails, the budget turns a would-be retry storm into a trickle. Zero
// fields take the defaults; a negative Ratio or MinPerSecond turns that
// part off (RetryBudget{Ratio: -1, MinPerSecond: -1} allows no retry at
// all; WithMaxAttempts(1) says so more plainly).
type RetryBudget struct {
	// Ratio is the number of retries allowed per request; default 0.2
	// (one retry for five requests), at most 1000; negative: none.
	Ratio float64
	// MinPerSecond is the floor, so that a client with little traffic
	// can still retry; default 10, at most 1,000,000; negative: no floor.
	MinPerSecond int
	// Window is how far back requests and retries count; default 10s,
	// from 1s to 1h.
	Window time.Duration
}

func (rb RetryBudget) withDefaults() (RetryBudget, error) {
	if rb.Ratio != rb.Ratio || math.IsInf(rb.Ratio, 0) || rb.Ratio > 1000 {
		return rb, fmt.Errorf("%w: RetryBudget.Ratio is %v; it must be at most 1000 (0 means 0.2, negative none)", ErrInvalidConfig, rb.Ratio)
	}
	if rb.MinPerSecond > maxRetryFloor {
		return rb, fmt.Errorf("%w: RetryBudget.MinPerSecond is %d; it must be at most %d (0 means 10, negative no floor)", ErrInvalidConfig, rb.MinPerSecond, maxRetryFloor)
	}
	if rb.Window < 0 || (rb.Window > 0 && rb.Window < time.Second) || rb.Window > maxRetryWindow {
		return rb, fmt.Errorf("%w: RetryBudget.Window is %v; it must be from 1s to %v (0 means 10s)", ErrInvalidConfig, rb.Window, maxRetryWindow)
	}
	switch {
	case rb.Ratio == 0:
		rb.Ratio = 0.2
	case rb.Ratio < 0:
		rb.Ratio = 0
	}
	switch {
	case rb.MinPerSecond == 0:
		rb.MinPerSecond = 10
	case rb.MinPerSecond < 0:
		rb.MinPerSecond = 0
	}
	if rb.Window == 0 {
		rb.Window = 10 * time.Second
	}
	return rb, nil
}

// Bounds of RetryBudget's fields: past them a budget stops meaning
// anything (a floor no fleet could serve, a window longer than any outage).
const (
	maxRetryFloor  = 1_000_000
	maxRetryWindow = time.Hour
)

// budgetSlots is the number of time slots the window is cut into.
const budgetSlots = 10

// budget is a RetryBudget at work: a ring of time slots, each counting the
// requests (deposits) and retries (withdrawals) of its stretch of time. A
// deposit is one atomic add; a withdrawal sums the slots. No lock. A slot
// is reset by whoever first sees it in a new epoch; a count racing with the
// reset may be lost, which only errs by one request or retry.
//
// It has no clock of its own: every operation is given the time, as a
// duration since an origin of the caller's (the Transport's monotonic
// clock, or a simulation's time), so that it runs the same in simulated
// time.
type budget struct {
	ratio float64
	floor float64  // retries allowed per window by MinPerSecond
	width int64    // slot length in nanoseconds
	_     [64]byte // the fields above are read on every request, the slots written
	slots [budgetSlots]budgetSlot
}

type budgetSlot struct {
	epoch    atomic.Int64
	deposits atomic.Int64
	retries  atomic.Int64
	_        [40]byte // one slot per cache line
}

// newBudget returns the budget of rb, which must have its defaults.
func newBudget(rb RetryBudget) *budget {
	return &budget{
		ratio: rb.Ratio,
		floor: float64(rb.MinPerSecond) * rb.Window.Seconds(),
		width: int64(rb.Window) / budgetSlots,
	}
}

// slot returns the slot of time now, reset if it belongs to an old epoch,
// and its epoch.
func (b *budget) slot(now time.Duration) (*budgetSlot, int64) {
	e := int64(now) / b.width
	s := &b.slots[e%budgetSlots]
	if old := s.epoch.Load(); old != e && s.epoch.CompareAndSwap(old, e) {
		s.deposits.Store(0)
		s.retries.Store(0)
	}
	return s, e
}

// deposit counts one request, made at now.
func (b *budget) deposit(now time.Duration) {
	s, _ := b.slot(now)
	s.deposits.Add(1)
}

// withdraw takes one retry from the budget at now, and reports whether
// there was one to take. The retry is counted first and taken back if it
// was over the budget, so that concurrent withdrawals cannot overspend it.
func (b *budget) withdraw(now time.Duration) bool {
	s, e := b.slot(now)
	s.retries.Add(1)
	var deposits, retries int64
	for i := range b.slots {
		sl := &b.slots[i]
		if ep := sl.epoch.Load(); ep > e-budgetSlots && ep <= e {
			deposits += sl.deposits.Load()
			retries += sl.retries.Load()
		}
	}
	if float64(retries) > b.floor+b.ratio*float64(deposits) {
		s.retries.Add(-1)
		return false
	}
	return true
}

// refund gives back a retry withdrawn at now but not made.
func (b *budget) refund(now time.Duration) {
	s, _ := b.slot(now)
	s.retries.Add(-1)
}
