package lb

import (
	"fmt"
	"time"
)

// OutlierDetection configures passive outlier ejection (after Envoy's):
// the Balancer watches the results reported to Pick.Done, and a backend
// whose calls fail ConsecutiveFailures times in a row is ejected (left out
// of the picker) for BaseEjectionTime, doubled at each further ejection up
// to MaxEjectionTime, then readmitted with a clean streak. A backend that
// stays in for MaxEjectionTime after a readmission starts again from
// BaseEjectionTime. Never more than MaxEjectionPercent of the set is
// ejected at once (but always at least one may be); and if every backend
// is out, the picker uses all of them (the panic threshold: a fleet that is
// entirely failing is still tried rather than failing every call).
//
// Zero fields take the defaults.
type OutlierDetection struct {
	// ConsecutiveFailures is how many failures in a row eject a backend;
	// default 5.
	ConsecutiveFailures int
	// BaseEjectionTime is the first ejection's length; default 30s.
	BaseEjectionTime time.Duration
	// MaxEjectionTime caps an ejection's length; default 5m, and at least
	// BaseEjectionTime.
	MaxEjectionTime time.Duration
	// MaxEjectionPercent caps the share of the set ejected at once, from 1
	// to 100; default 50.
	MaxEjectionPercent int

	enabled bool
}

func (od OutlierDetection) withDefaults() (OutlierDetection, error) {
	if od.ConsecutiveFailures < 0 {
		return od, fmt.Errorf("%w: OutlierDetection.ConsecutiveFailures is %d; it must be >= 1 (0 means 5)", ErrInvalidConfig, od.ConsecutiveFailures)
	}
	if od.BaseEjectionTime < 0 || od.MaxEjectionTime < 0 {
		return od, fmt.Errorf("%w: OutlierDetection ejection times must not be negative (base %v, max %v)", ErrInvalidConfig, od.BaseEjectionTime, od.MaxEjectionTime)
	}
	if od.MaxEjectionPercent < 0 || od.MaxEjectionPercent > 100 {
		return od, fmt.Errorf("%w: OutlierDetection.MaxEjectionPercent is %d; it must be 1 to 100 (0 means 50)", ErrInvalidConfig, od.MaxEjectionPercent)
	}
	if od.ConsecutiveFailures == 0 {
		od.ConsecutiveFailures = 5
	}
	if od.BaseEjectionTime == 0 {
		od.BaseEjectionTime = 30 * time.Second
	}
	if od.MaxEjectionTime == 0 {
		od.MaxEjectionTime = max(5*time.Minute, od.BaseEjectionTime)
	}
	if od.MaxEjectionTime < od.BaseEjectionTime {
		return od, fmt.Errorf("%w: OutlierDetection.MaxEjectionTime %v is shorter than BaseEjectionTime %v", ErrInvalidConfig, od.MaxEjectionTime, od.BaseEjectionTime)
	}
	if od.MaxEjectionPercent == 0 {
		od.MaxEjectionPercent = 50
	}
	return od, nil
}

// failed is called by Pick.Done after a failure was counted on be. It takes
// the lock only when the streak reaches a multiple of the threshold.
func (b *Balancer) failed(be *Backend) {
	od := &b.opts.outlier
	if !od.enabled {
		return
	}
	k := int64(od.ConsecutiveFailures)
	if s := be.streak.Load(); s < k || s%k != 0 || be.ejected.Load() {
		return
	}
	b.eject(be)
}

// eject takes be out of the picker, if the cap allows. It runs on the
// goroutine of the Done that failed, so it does O(1) work under b.mu and
// leaves the picker's rebuild to the background (rebuildLater); picks
// avoid be from now on.
func (b *Balancer) eject(be *Backend) {
	b.mu.Lock()
	od := &b.opts.outlier
	if b.closed || be.ejected.Load() || be.removed || be.streak.Load() < int64(od.ConsecutiveFailures) {
		b.mu.Unlock()
		return
	}
	if limit := max(1, len(b.members)*od.MaxEjectionPercent/100); b.ejected >= limit {
		ejected := b.ejected
		b.mu.Unlock()
		b.opts.logger.Debug("lb: not ejecting: too many backends ejected already",
			"addr", be.addr, "ejected", ejected, "limit", limit)
		return
	}
	now := b.opts.clock.Now()
	if r := be.readmittedAt.Load(); r != 0 && now.Sub(time.Unix(0, r)) >= od.MaxEjectionTime {
		be.level = 0
	}
	d := od.BaseEjectionTime << be.level
	if d > od.MaxEjectionTime || d <= 0 {
		d = od.MaxEjectionTime
	} else if be.level < 30 {
		be.level++
	}
	be.ejected.Store(true)
	be.setOut()
	b.ejected++
	be.ejectedUntil.Store(now.Add(d).UnixNano())
	n := be.ejections.Add(1)
	be.streak.Store(0)
	b.timers[be] = b.opts.clock.AfterFunc(d, func() { b.readmit(be) })
	b.rebuildLater()
	b.mu.Unlock()
	b.opts.logger.Warn("lb: backend ejected", "addr", be.addr, "for", d,
		"consecutive_failures", od.ConsecutiveFailures, "ejections", n)
}

func (b *Balancer) readmit(be *Backend) {
	b.mu.Lock()
	delete(b.timers, be)
	if b.closed || !be.ejected.Load() || be.removed {
		b.mu.Unlock()
		return
	}
	be.ejected.Store(false)
	be.setOut()
	b.ejected--
	be.ejectedUntil.Store(0)
	be.streak.Store(0)
	be.readmittedAt.Store(b.opts.clock.Now().UnixNano())
	b.rebuildLater()
	b.mu.Unlock()
	b.opts.logger.Info("lb: backend readmitted", "addr", be.addr)
}
