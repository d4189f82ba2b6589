package lb

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// OutlierDetection configures passive outlier ejection (after Envoy's and
// gRFC A50): the Balancer watches the results reported to Pick.Done and
// ejects a backend (leaves it out of the picker) that is failing:
//
//   - Consecutive failures: ConsecutiveFailures failures in a row.
//   - Success rate, relative to the pool: every Interval, among backends
//     with at least SuccessRateRequestVolume calls in it (and at least
//     SuccessRateMinHosts of them), one whose success rate is below the
//     mean minus SuccessRateStdevFactor standard deviations.
//   - Failure percentage: every Interval, one with at least
//     FailurePercentageRequestVolume calls of which at least
//     FailurePercentageThreshold percent failed (when at least
//     FailurePercentageMinHosts backends have that volume). This catches a
//     backend that fails every second call, which never fails 5 in a row.
//   - Latency (off by default): one whose latency EWMA is more than
//     LatencyFactor times the median of the pool's.
//
// An ejection lasts BaseEjectionTime, doubled at each further ejection up
// to MaxEjectionTime; then the backend is readmitted with a clean streak
// and failure score (and, with WithSlowStart, ramps up). A passing active
// health check readmits it at once (StartHealthChecks). A backend that
// stays in for MaxEjectionTime after a readmission starts again from
// BaseEjectionTime. Never more than MaxEjectionPercent of the set is out at
// once, ejected or marked down by health checks together (but always at
// least one may be); and if every backend is out, the picker uses all of
// them (the panic threshold: a fleet that is entirely failing is still
// tried rather than failing every call).
//
// Zero fields take the defaults; a negative SuccessRateStdevFactor,
// FailurePercentageThreshold or LatencyFactor turns that rule off.
type OutlierDetection struct {
	// ConsecutiveFailures is how many failures in a row eject a backend;
	// default 5.
	ConsecutiveFailures int
	// BaseEjectionTime is the first ejection's length; default 30s.
	BaseEjectionTime time.Duration
	// MaxEjectionTime caps an ejection's length; default 5m, and at least
	// BaseEjectionTime.
	MaxEjectionTime time.Duration
	// MaxEjectionPercent caps the share of the set ejected (or marked
	// down) at once, from 1 to 100; default 50.
	MaxEjectionPercent int

	// Interval is how often success rates, failure percentages and
	// latencies are compared; default 10s.
	Interval time.Duration
	// SuccessRateStdevFactor: default 1.9 (Envoy's); negative: off.
	SuccessRateStdevFactor float64
	// SuccessRateMinHosts: default 5.
	SuccessRateMinHosts int
	// SuccessRateRequestVolume: calls in an Interval; default 100.
	SuccessRateRequestVolume int
	// FailurePercentageThreshold, from 1 to 100: default 50; negative:
	// off.
	FailurePercentageThreshold int
	// FailurePercentageMinHosts: default 2.
	FailurePercentageMinHosts int
	// FailurePercentageRequestVolume: calls in an Interval; default 20.
	FailurePercentageRequestVolume int
	// LatencyFactor, above 1, ejects a backend whose latency EWMA is more
	// than LatencyFactor times the pool's median (with at least 3
	// backends that have a latency); 0 (the default) or negative: off.
	LatencyFactor float64

	enabled bool
}

func (od OutlierDetection) withDefaults() (OutlierDetection, error) {
	bad := func(format string, args ...any) (OutlierDetection, error) {
		return od, fmt.Errorf("%w: OutlierDetection."+format, append([]any{ErrInvalidConfig}, args...)...)
	}
	switch {
	case od.ConsecutiveFailures < 0:
		return bad("ConsecutiveFailures is %d; it must be >= 1 (0 means 5)", od.ConsecutiveFailures)
	case od.BaseEjectionTime < 0:
		return bad("BaseEjectionTime is %v; it must not be negative (0 means 30s)", od.BaseEjectionTime)
	case od.MaxEjectionTime < 0:
		return bad("MaxEjectionTime is %v; it must not be negative (0 means 5m)", od.MaxEjectionTime)
	case od.MaxEjectionPercent < 0 || od.MaxEjectionPercent > 100:
		return bad("MaxEjectionPercent is %d; it must be 1 to 100 (0 means 50)", od.MaxEjectionPercent)
	case od.Interval < 0 || od.Interval > 0 && od.Interval < time.Millisecond:
		return bad("Interval is %v; it must be at least 1ms (0 means 10s)", od.Interval)
	case math.IsNaN(od.SuccessRateStdevFactor) || math.IsInf(od.SuccessRateStdevFactor, 0) || od.SuccessRateStdevFactor > 100:
		return bad("SuccessRateStdevFactor is %v; it must be at most 100 (0 means 1.9, negative turns it off)", od.SuccessRateStdevFactor)
	case od.SuccessRateMinHosts < 0 || od.SuccessRateRequestVolume < 0:
		return bad("SuccessRateMinHosts (%d) and SuccessRateRequestVolume (%d) must not be negative", od.SuccessRateMinHosts, od.SuccessRateRequestVolume)
	case od.FailurePercentageThreshold > 100:
		return bad("FailurePercentageThreshold is %d; it must be at most 100 (0 means 50, negative turns it off)", od.FailurePercentageThreshold)
	case od.FailurePercentageMinHosts < 0 || od.FailurePercentageRequestVolume < 0:
		return bad("FailurePercentageMinHosts (%d) and FailurePercentageRequestVolume (%d) must not be negative", od.FailurePercentageMinHosts, od.FailurePercentageRequestVolume)
	case math.IsNaN(od.LatencyFactor) || math.IsInf(od.LatencyFactor, 0) || od.LatencyFactor > 0 && od.LatencyFactor <= 1 || od.LatencyFactor > 1e6:
		return bad("LatencyFactor is %v; it must be above 1 and at most 1e6 (0 or negative turns it off)", od.LatencyFactor)
	}
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&od.ConsecutiveFailures, 5)
	def(&od.MaxEjectionPercent, 50)
	def(&od.SuccessRateMinHosts, 5)
	def(&od.SuccessRateRequestVolume, 100)
	def(&od.FailurePercentageThreshold, 50)
	def(&od.FailurePercentageMinHosts, 2)
	def(&od.FailurePercentageRequestVolume, 20)
	if od.BaseEjectionTime == 0 {
		od.BaseEjectionTime = 30 * time.Second
	}
	if od.MaxEjectionTime == 0 {
		od.MaxEjectionTime = max(5*time.Minute, od.BaseEjectionTime)
	}
	if od.MaxEjectionTime < od.BaseEjectionTime {
		return bad("MaxEjectionTime %v is shorter than BaseEjectionTime %v", od.MaxEjectionTime, od.BaseEjectionTime)
	}
	if od.Interval == 0 {
		od.Interval = 10 * time.Second
	}
	if od.SuccessRateStdevFactor == 0 {
		od.SuccessRateStdevFactor = 1.9
	}
	return od, nil
}

// interval reports whether any rule runs on the interval.
func (od *OutlierDetection) interval() bool {
	return od.SuccessRateStdevFactor > 0 || od.FailurePercentageThreshold > 0 || od.LatencyFactor > 1
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
	b.mu.Lock()
	var d time.Duration
	if be.streak.Load() >= k {
		d = b.ejectLocked(be, "consecutive failures")
	}
	b.mu.Unlock()
	if d > 0 {
		b.logEjection(be, "consecutive failures", d)
	}
}

// outLimit is how many members may be out at once (ejected or marked
// down). Called with b.mu held.
func (b *Balancer) outLimit() int {
	pct := 50
	if b.opts.outlier.enabled {
		pct = b.opts.outlier.MaxEjectionPercent
	}
	return max(1, len(b.members)*pct/100)
}

// outCount is how many members are out now. Called with b.mu held.
func (b *Balancer) outCount() int {
	n := b.ejected
	for _, m := range b.members {
		if m.down.Load() && !m.ejected.Load() {
			n++
		}
	}
	return n
}

// ejectLocked takes be out of the picker, if the cap allows, and returns
// for how long (0: it did not). It runs on the goroutine of the Done that failed (or of
// the interval's check), so it does O(1) work under b.mu and leaves the
// picker's rebuild to the background (rebuildLater); picks avoid be from
// now on. Called with b.mu held.
func (b *Balancer) ejectLocked(be *Backend, why string) time.Duration {
	od := &b.opts.outlier
	if b.closed || be.ejected.Load() || be.ctl.removed {
		return 0
	}
	if limit := b.outLimit(); b.outCount() >= limit {
		b.opts.logger.Debug("lb: not ejecting: too many backends out already",
			"addr", be.addr, "why", why, "limit", limit)
		return 0
	}
	now := b.opts.clock.Now()
	if r := be.readmittedAt.Load(); r != 0 && now.Sub(time.Unix(0, r)) >= od.MaxEjectionTime {
		be.ctl.level = 0
	}
	d := od.BaseEjectionTime << be.ctl.level
	if d > od.MaxEjectionTime || d <= 0 {
		d = od.MaxEjectionTime
	} else if be.ctl.level < 30 {
		be.ctl.level++
	}
	be.ejected.Store(true)
	be.setOut()
	b.ejected++
	be.ejectedUntil.Store(now.Add(d).UnixNano())
	be.ejections.Add(1)
	be.streak.Store(0)
	b.timers[be] = b.opts.clock.AfterFunc(d, func() { b.readmit(be, "ejection over") })
	b.rebuildLater()
	return d
}

func (b *Balancer) logEjection(be *Backend, why string, d time.Duration) {
	b.opts.logger.Warn("lb: backend ejected", "addr", be.addr, "why", why, "for", d,
		"ejections", be.ejections.Load())
}

// readmit puts an ejected backend back: its ejection is over, or an active
// health check passed.
func (b *Balancer) readmit(be *Backend, why string) {
	b.mu.Lock()
	if t := b.timers[be]; t != nil {
		t.Stop()
		delete(b.timers, be)
	}
	if b.closed || !be.ejected.Load() || be.ctl.removed {
		b.mu.Unlock()
		return
	}
	be.ejected.Store(false)
	be.setOut()
	b.ejected--
	be.ejectedUntil.Store(0)
	be.streak.Store(0)
	be.fail.Store(0) // a fresh start: its failures got it ejected already
	be.readmittedAt.Store(b.opts.clock.Now().UnixNano())
	b.startRamp(be)
	b.rebuildLater()
	b.mu.Unlock()
	b.opts.logger.Info("lb: backend readmitted", "addr", be.addr, "why", why)
}

// startIntervals schedules the interval's checks, if a rule needs them.
// Called with b.mu held (or before the Balancer is shared).
func (b *Balancer) startIntervals() {
	od := &b.opts.outlier
	if !od.enabled || !od.interval() || b.closed {
		return
	}
	b.intervalTimer = b.opts.clock.AfterFunc(od.Interval, b.checkInterval)
}

// checkInterval compares the backends' outcomes over the interval just
// ended, ejects the outliers, and schedules the next interval.
func (b *Balancer) checkInterval() {
	b.mu.Lock()
	var ejected []outlier
	var ds []time.Duration
	if !b.closed {
		for _, o := range b.intervalOutliers() {
			if d := b.ejectLocked(o.be, o.why); d > 0 {
				ejected, ds = append(ejected, o), append(ds, d)
			}
		}
		b.startIntervals()
	}
	b.mu.Unlock()
	for i, o := range ejected {
		b.logEjection(o.be, o.why, ds[i])
	}
}

type outlier struct {
	be  *Backend
	why string
}

// intervalOutliers returns the backends the interval's rules find failing,
// and starts a new interval. Called with b.mu held.
func (b *Balancer) intervalOutliers() []outlier {
	od := &b.opts.outlier
	type window struct {
		be             *Backend
		calls, success uint64
	}
	ws := make([]window, 0, len(b.members))
	var lats []float64
	for _, be := range b.members {
		s, f := be.success.Load(), be.failures.Load()
		c := be.ctl
		w := window{be: be, success: s - c.lastSuccess}
		w.calls = w.success + f - c.lastFailures
		c.lastSuccess, c.lastFailures = s, f
		if be.ejected.Load() {
			continue
		}
		ws = append(ws, w)
		if l := be.Latency(); l > 0 {
			lats = append(lats, float64(l))
		}
	}
	var out []outlier
	seen := map[*Backend]bool{}
	add := func(be *Backend, why string) {
		if !seen[be] {
			seen[be] = true
			out = append(out, outlier{be, why})
		}
	}
	if od.SuccessRateStdevFactor > 0 {
		var rates []float64
		var sum float64
		for _, w := range ws {
			if w.calls >= uint64(od.SuccessRateRequestVolume) {
				r := float64(w.success) / float64(w.calls)
				rates = append(rates, r)
				sum += r
			}
		}
		if len(rates) >= od.SuccessRateMinHosts && len(rates) > 0 {
			mean := sum / float64(len(rates))
			var v float64
			for _, r := range rates {
				v += (r - mean) * (r - mean)
			}
			limit := mean - od.SuccessRateStdevFactor*math.Sqrt(v/float64(len(rates)))
			for _, w := range ws {
				if w.calls >= uint64(od.SuccessRateRequestVolume) && float64(w.success)/float64(w.calls) < limit {
					add(w.be, "success rate")
				}
			}
		}
	}
	if od.FailurePercentageThreshold > 0 {
		n := 0
		for _, w := range ws {
			if w.calls >= uint64(od.FailurePercentageRequestVolume) {
				n++
			}
		}
		if n >= od.FailurePercentageMinHosts {
			for _, w := range ws {
				if w.calls >= uint64(od.FailurePercentageRequestVolume) &&
					(w.calls-w.success)*100 >= uint64(od.FailurePercentageThreshold)*w.calls {
					add(w.be, "failure percentage")
				}
			}
		}
	}
	if od.LatencyFactor > 1 && len(lats) >= 3 {
		slices.Sort(lats)
		limit := od.LatencyFactor * lats[len(lats)/2]
		for _, w := range ws {
			if l := float64(w.be.Latency()); l > limit {
				add(w.be, "latency")
			}
		}
	}
	return out
}
