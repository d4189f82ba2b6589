package lb

import "time"

// Clock is the time a Balancer and its health checks run on: ejection
// lengths, readmission timers, slow-start ramps, background picker
// rebuilds. The default is the system clock. A simulation gives its own
// (cmd/lbsim runs lb's real ejection and slow start in simulated time),
// and tests can too. A Clock must be safe for concurrent use.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// AfterFunc calls f in its own goroutine once d has passed (at once
	// when d <= 0), unless the returned Timer is stopped first.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a pending call of Clock.AfterFunc.
type Timer interface {
	// Stop prevents the call if it has not started, and reports whether
	// it did so.
	Stop() bool
}

// WithClock makes the Balancer run on c instead of the system clock. A nil
// c means the system clock.
func WithClock(c Clock) Option {
	return optionFunc(func(o *options) {
		if c != nil {
			o.clock = c
		}
	})
}

// systemClock is the default Clock: time.Now and time.AfterFunc.
type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

func (systemClock) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }
