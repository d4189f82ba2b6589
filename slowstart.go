package lb

import (
	"fmt"
	"math"
	"time"

	"github.com/cespare/xxhash/v2"
)

// SlowStart ramps the share of a backend that joins or comes back (a new
// endpoint, a readmission after ejection, a health check marking it up)
// over a window, as Envoy's slow start does: its share of picks is
//
//	max(MinWeight, (t / Window)^(1/Aggression))
//
// of a full share, t after it joined, so that a cold cache or a JIT that is
// warming up is not handed its full load at once. Backends of the first
// endpoint set get their full share at once.
//
// The share is read at pick time (one field on the line a pick writes
// anyway) and updated by the Balancer's clock in steps of Window/50, so no
// picker is rebuilt on the way. It applies to every strategy: a pick that
// lands on a ramping backend keeps it with the probability of its share
// and otherwise picks again. For the hash strategies (Ring, Maglev) the
// choice is the key's, not a coin's: a key stays on a ramping backend if
// its hash falls in the share, and otherwise goes to its next backend, so
// each key has one place at a time and the backend's keys move onto it in
// a steady order as its share grows.
type SlowStart struct {
	// Window is how long the ramp lasts; required, from 1ms to 1h.
	Window time.Duration
	// Aggression shapes the ramp: 1 (the default) is linear, above 1
	// ramps faster at first. It must be from 0.1 to 10.
	Aggression float64
	// MinWeight is the share a backend starts with, from 0.01 to 1;
	// default 0.1.
	MinWeight float64
}

func (ss SlowStart) withDefaults() (SlowStart, error) {
	bad := func(format string, args ...any) (SlowStart, error) {
		return ss, fmt.Errorf("%w: SlowStart."+format, append([]any{ErrInvalidConfig}, args...)...)
	}
	switch {
	case ss.Window < time.Millisecond || ss.Window > time.Hour:
		return bad("Window is %v; it must be from 1ms to 1h", ss.Window)
	case ss.Aggression != 0 && !(ss.Aggression >= 0.1 && ss.Aggression <= 10):
		return bad("Aggression is %v; it must be 0 (default 1) or from 0.1 to 10", ss.Aggression)
	case ss.MinWeight != 0 && !(ss.MinWeight >= 0.01 && ss.MinWeight <= 1):
		return bad("MinWeight is %v; it must be 0 (default 0.1) or from 0.01 to 1", ss.MinWeight)
	}
	if ss.Aggression == 0 {
		ss.Aggression = 1
	}
	if ss.MinWeight == 0 {
		ss.MinWeight = 0.1
	}
	return ss, nil
}

// WithSlowStart ramps the share of backends that join or come back; see
// SlowStart. NewBalancer returns its validation error.
func WithSlowStart(ss SlowStart) Option {
	return optionFunc(func(o *options) {
		o.slowStart = ss
		o.slowStartSet = true
	})
}

// shareOne is a full slow-start share, in the units of Backend.share.
const shareOne = 1 << 16

// rampShare returns the share, in 1/65536ths (1 to 65535), of a backend t
// into its ramp, or 0 once the ramp is over.
func (ss *SlowStart) rampShare(t time.Duration) uint32 {
	if t >= ss.Window {
		return 0
	}
	f := math.Pow(max(float64(t), 0)/float64(ss.Window), 1/ss.Aggression)
	f = max(f, ss.MinWeight)
	return uint32(min(max(f*shareOne, 1), shareOne-1))
}

// startRamp puts be on the slow-start ramp from now. Called with b.mu held.
func (b *Balancer) startRamp(be *Backend) {
	if !b.opts.slowStartSet {
		return
	}
	be.ctl.rampFrom = b.opts.clock.Now()
	be.share.Store(b.opts.slowStart.rampShare(0))
	if b.ramping == nil {
		b.ramping = map[*Backend]struct{}{}
	}
	b.ramping[be] = struct{}{}
	if b.rampTimer == nil && !b.closed {
		b.rampTimer = b.opts.clock.AfterFunc(b.rampStep(), b.advanceRamps)
	}
}

// rampStep is how often the shares of ramping backends are updated.
func (b *Balancer) rampStep() time.Duration {
	return max(b.opts.slowStart.Window/50, time.Millisecond)
}

// advanceRamps updates the shares of the ramping backends, on the clock.
func (b *Balancer) advanceRamps() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.rampTimer = nil
	if b.closed {
		return
	}
	now := b.opts.clock.Now()
	for be := range b.ramping {
		sh := b.opts.slowStart.rampShare(now.Sub(be.ctl.rampFrom))
		be.share.Store(sh)
		if sh == 0 || be.ctl.removed {
			be.share.Store(0)
			delete(b.ramping, be)
		}
	}
	if len(b.ramping) > 0 {
		b.rampTimer = b.opts.clock.AfterFunc(b.rampStep(), b.advanceRamps)
	}
}

// ramped returns the backend a pick that landed on be, which is ramping
// with share sh, goes to: be itself with the probability of its share, or
// another backend of the picker. Hash pickers decide by the key's hash and
// go down its preference list; the others pick again, a few times.
func (b *Balancer) ramped(s *snapshot, key string, be *Backend, sh uint32) *Backend {
	if pl, ok := s.picker.(PreferenceLister); ok && key != "" {
		h := uint32(xxhash.Sum64String(key) >> 48) // the key's place in [0, 65536)
		var buf [8]*Backend
		for _, c := range pl.AppendPreferences(buf[:0], key, len(buf)) {
			if c.out.Load() != 0 && !s.all {
				continue
			}
			if csh := c.share.Load(); csh == 0 || h < csh {
				return c
			}
		}
		return be
	}
	for try := 0; try < 4; try++ {
		if uint32(mix64(b.rampSeq.Add(1))>>48) < sh {
			return be
		}
		c, err := s.picker.Pick(key)
		if err != nil || (c.out.Load() != 0 && !s.all) {
			continue
		}
		if sh = c.share.Load(); sh == 0 {
			return c
		}
		be = c
	}
	return be
}

// mix64 is SplitMix64's finaliser: a counter's value made into a random
// looking one, so that ramp decisions repeat in a run that repeats (lbsim)
// without a shared generator.
func mix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

// holdOff keeps picks off be for d (a Retry-After the backend sent), with
// no picker rebuild: picks go around it as around an ejected backend until
// then, unless every backend is out.
func (b *Balancer) holdOff(be *Backend, d time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed || be.ctl.removed || d <= 0 {
		return
	}
	if t := b.holds[be]; t != nil {
		t.Stop()
	}
	be.ctl.holding = true
	be.setOut()
	if b.holds == nil {
		b.holds = map[*Backend]Timer{}
	}
	b.holds[be] = b.opts.clock.AfterFunc(d, func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		delete(b.holds, be)
		be.ctl.holding = false
		be.setOut()
	})
}
