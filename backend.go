package lb

import (
	"fmt"
	"math"
	"sync/atomic"
	"time"
	"unsafe"
)

// Backend is a live endpoint: its address, weight and labels, plus the
// counters the Balancer keeps for it (in-flight calls, picks, failures,
// latency EWMA, ejection). Backends are created by NewBackends or by a
// Balancer; the same *Backend lives as long as its address stays in the
// Balancer's endpoint set, across picker rebuilds. All methods are safe for
// concurrent use.
type Backend struct {
	backendCold
	_ [128 - unsafe.Sizeof(backendCold{})]byte
	backendHot
	_ [128 - unsafe.Sizeof(backendHot{})]byte
}

// backendCold is the first 128 bytes of a Backend: fields read on every
// pick and written rarely.
type backendCold struct {
	addr string
	key  string // canonicalAddr(addr): what duplicate checks compare
	// meta holds the weight and labels: Update may change them while the
	// address (and so the counters) stay. Pickers read it when built.
	meta atomic.Pointer[backendMeta]
	// conns is the connection pool of the first Transport's default base
	// that sent to the backend, kept here so that finding it costs no map
	// lookup and no extra cache line.
	conns atomic.Pointer[backendConns]
	// ejection state, written only under the Balancer's lock, read anywhere.
	ejected      atomic.Bool
	ejections    atomic.Uint32
	ejectedUntil atomic.Int64  // unix nanoseconds
	readmittedAt atomic.Int64  // unix nanoseconds
	down         atomic.Bool   // marked unhealthy by an active health check
	cancels      atomic.Uint64 // picks ended by Cancel
	picksSeen    atomic.Uint64 // the most Picks reported by Stats, so that it never goes down
	ctl          *backendCtl   // the Balancer's control state of the backend
}

// backendCtl is the state the Balancer's control path keeps for a
// backend (ejection, slow start, hold-off, success-rate windows), guarded
// by the Balancer's lock and never read by a pick.
type backendCtl struct {
	removed  bool      // left the Balancer's set
	level    uint      // ejection length doubling
	holding  bool      // holding off picks (Retry-After)
	rampFrom time.Time // start of the slow-start ramp
	// counts at the start of the success-rate interval
	lastSuccess, lastFailures uint64
}

// backendHot is the second 128 bytes of a Backend: the counters, alone.
// A pick writes inflight, and its Done writes inflight and the rest, so
// each moves one cache line between cores, and no other field, nor
// another Backend's counters, shares that line or its prefetch pair. A
// Backend is 256 bytes, one of Go's size classes, so the allocator places
// it on a 128-byte boundary (TestBackendLayout checks the sizes).
type backendHot struct {
	inflight atomic.Int64
	ewma     atomic.Uint64 // float64 bits of the latency EWMA in nanoseconds
	streak   atomic.Int64  // consecutive failures
	fail     atomic.Uint64 // float64 bits of the failure score (see observe)
	failures atomic.Uint64
	success  atomic.Uint64
	group    *loadGroup
	// out is 1 while the backend is ejected, marked down or holding off
	// (Retry-After): a pick reads it on this line, which it writes anyway,
	// to avoid a backend that left the picker's set before the picker is
	// rebuilt, or that asked for a pause.
	out atomic.Uint32
	// share is the backend's slow-start share, in 1/65536ths: 0 when it is
	// not ramping (a full share).
	share atomic.Uint32
}

// NewBackends validates eps and returns a fresh Backend for each, in order.
// It is how a strategy is used alone, without a Balancer:
//
//	bs, err := lb.NewBackends(lb.Addrs("a:80", "b:80"))
//	p, err := lb.RoundRobin{}.Build(bs)
//
// The errors wrap ErrNoEndpoints, ErrInvalidEndpoint or ErrDuplicateEndpoint.
func NewBackends(eps []Endpoint) ([]*Backend, error) {
	if len(eps) == 0 {
		return nil, fmt.Errorf("%w: the endpoint set is empty", ErrNoEndpoints)
	}
	if err := validateSet(eps); err != nil {
		return nil, err
	}
	g := new(loadGroup)
	bs := make([]*Backend, len(eps))
	for i, e := range eps {
		bs[i] = newBackend(e, g)
	}
	return bs, nil
}

// checkBackends is the common precondition of every Builder.
func checkBackends(bs []*Backend) error {
	if len(bs) == 0 {
		return fmt.Errorf("%w: no backends to build a picker over", ErrNoEndpoints)
	}
	seen := make(map[string]struct{}, len(bs))
	for i, b := range bs {
		if b == nil {
			return fmt.Errorf("%w: backend %d is nil", ErrInvalidEndpoint, i)
		}
		if b.meta.Load() == nil {
			return fmt.Errorf("%w: backend %d was not made by NewBackends or a Balancer", ErrInvalidEndpoint, i)
		}
		if _, dup := seen[b.key]; dup {
			return fmt.Errorf("%w: address %q appears twice", ErrDuplicateEndpoint, b.addr)
		}
		seen[b.key] = struct{}{}
	}
	return nil
}

type backendMeta struct {
	weight  int
	hashKey string // "" means the address
	labels  map[string]string
}

func newMeta(e Endpoint) *backendMeta {
	w := e.Weight
	if w == 0 {
		w = 1
	}
	return &backendMeta{weight: w, hashKey: e.HashKey, labels: copyLabels(e.Labels)}
}

// loadGroup is shared by the backends of one Balancer (or one NewBackends
// call): the total of their in-flight calls, kept only when a strategy
// needs it (bounded loads), since one shared counter costs contention.
type loadGroup struct {
	_     [64]byte
	total atomic.Int64
	track bool
	_     [48]byte
}

// begin counts a call picked on b.
func (b *Backend) begin() {
	b.inflight.Add(1)
	if g := b.group; g != nil && g.track {
		g.total.Add(1)
	}
}

func newBackend(e Endpoint, g *loadGroup) *Backend {
	b := &Backend{backendCold: backendCold{addr: e.Addr, key: canonicalAddr(e.Addr), ctl: new(backendCtl)}, backendHot: backendHot{group: g}}
	b.meta.Store(newMeta(e))
	return b
}

// Addr returns the backend's "host:port".
func (b *Backend) Addr() string { return b.addr }

// Weight returns the backend's weight (at least 1).
func (b *Backend) Weight() int { return b.meta.Load().weight }

// Label returns the value of the label k and whether it is set.
func (b *Backend) Label(k string) (string, bool) {
	v, ok := b.meta.Load().labels[k]
	return v, ok
}

// Endpoint returns the endpoint the backend was created from, with the
// weight normalised (0 became 1) and a copy of the labels.
func (b *Backend) Endpoint() Endpoint {
	m := b.meta.Load()
	return Endpoint{Addr: b.addr, Weight: m.weight, HashKey: m.hashKey, Labels: copyLabels(m.labels)}
}

// HashName returns the name hash strategies place the backend by: its
// endpoint's HashKey, or its address when that is empty.
func (b *Backend) HashName() string {
	if k := b.meta.Load().hashKey; k != "" {
		return k
	}
	return b.addr
}

// TotalInFlight returns the calls in flight over every backend of the
// backend's Balancer (or NewBackends call), when its Builder asked for
// the total (TotalLoadBuilder); otherwise 0.
func (b *Backend) TotalInFlight() int64 {
	if g := b.group; g != nil && g.track {
		return g.total.Load()
	}
	return 0
}

// InFlight returns the number of calls picked on this backend whose Done
// has not been called yet.
func (b *Backend) InFlight() int64 { return b.inflight.Load() }

// Latency returns the exponentially weighted moving average of the
// latencies reported to Done (0 until the first report).
func (b *Backend) Latency() time.Duration {
	return time.Duration(math.Float64frombits(b.ewma.Load()))
}

// Ejected reports whether outlier detection currently keeps the backend out
// of the picker.
func (b *Backend) Ejected() bool { return b.ejected.Load() }

// Healthy reports whether the backend is not marked down by a health check
// (Balancer.SetHealthy). It says nothing of outlier ejection: see Ejected.
func (b *Backend) Healthy() bool { return !b.down.Load() }

// available reports whether pickers should include the backend.
func (b *Backend) available() bool { return !b.ejected.Load() && !b.down.Load() }

// setOut updates the flag picks read (out) from ejected, down and
// holding. Called with the Balancer's lock held, after one changed.
func (b *Backend) setOut() {
	if b.available() && !b.ctl.holding {
		b.out.Store(0)
	} else {
		b.out.Store(1)
	}
}

// String returns the address.
func (b *Backend) String() string { return b.addr }

// Stats is a point-in-time copy of a backend's counters.
type Stats struct {
	Endpoint  Endpoint
	InFlight  int64         // calls picked and not yet done
	Picks     uint64        // calls picked in total: Successes, Failures, the cancelled and those in flight
	Successes uint64        // calls done without error
	Failures  uint64        // calls done with an error
	Streak    int64         // consecutive failures up to now
	Latency   time.Duration // latency EWMA
	Ejected   bool          // kept out of the picker by outlier detection
	Unhealthy bool          // marked down by a health check (SetHealthy)
	Ejections uint32        // times ejected since the backend joined
	// EjectedUntil is when the current ejection ends (zero when not ejected).
	EjectedUntil time.Time
	// FailureScore is the recent failure average (see
	// Backend.FailureScore), from 0 to 1.
	FailureScore float64
	// Share is the slow-start share of a full share the backend gets now,
	// from 0 to 1 (1 when it is not ramping; see SlowStart).
	Share float64
}

// Stats returns a snapshot of the backend's counters.
func (b *Backend) Stats() Stats {
	s := Stats{
		Endpoint:  b.Endpoint(),
		Successes: b.success.Load(),
		Failures:  b.failures.Load(),
		Streak:    b.streak.Load(),
		Latency:   b.Latency(),
		Ejected:   b.ejected.Load(),
		Ejections: b.ejections.Load(),
		Unhealthy: b.down.Load(),
	}
	s.Picks = b.picks(s.Successes, s.Failures, &s.InFlight)
	s.FailureScore = b.FailureScore()
	s.Share = 1
	if sh := b.share.Load(); sh != 0 {
		s.Share = float64(sh) / shareOne
	}
	if s.Ejected {
		s.EjectedUntil = time.Unix(0, b.ejectedUntil.Load())
	}
	return s
}

// picks returns the number of picks of the backend so far, from the
// counts of their ends (read by the caller first) and the calls in flight
// (read here, after them), and stores the calls in flight in inflight. Read
// in that order, the sum is never more than the true count; the most ever
// reported is kept, so that Picks never goes down. A pick counts nothing
// more on the hot path than its in-flight increment.
func (b *Backend) picks(success, failures uint64, inflight *int64) uint64 {
	cancels := b.cancels.Load()
	*inflight = b.inflight.Load()
	n := success + failures + cancels + uint64(max(*inflight, 0))
	for {
		seen := b.picksSeen.Load()
		if n <= seen {
			return seen
		}
		if b.picksSeen.CompareAndSwap(seen, n) {
			return n
		}
	}
}

// ewmaAlpha is the weight of the newest latency sample in the EWMA.
const ewmaAlpha = 0.2

// failAlpha is the weight of the newest outcome in the failure score.
const failAlpha = 0.25

// end counts the end of a call picked on b (see begin).
func (b *Backend) end() {
	b.inflight.Add(-1)
	if g := b.group; g != nil && g.track {
		g.total.Add(-1)
	}
}

// observe records the end of one call on the backend. It allocates nothing.
//
// Two averages feed load-aware picks (P2C, bounded loads): the latency
// EWMA and the failure score, an EWMA of outcomes (1 a failure, 0 a
// success). A failure never lowers the latency EWMA: its sample is the
// larger of its latency and the EWMA, so a backend that fails fast does
// not look fast. Both are updated by a load and a store, not a
// compare-and-swap loop: under contention a sample may be lost, which an
// average can afford.
func (b *Backend) observe(err error, latency time.Duration) {
	b.end()
	if latency > 0 {
		b.observeLatency(latency, err != nil)
	}
	f := b.fail.Load()
	if err != nil {
		b.failures.Add(1)
		b.streak.Add(1)
		fs := math.Float64frombits(f)
		b.fail.Store(math.Float64bits(fs + failAlpha*(1-fs)))
		return
	}
	b.success.Add(1)
	if b.streak.Load() != 0 {
		b.streak.Store(0)
	}
	if f != 0 {
		if fs := math.Float64frombits(f) * (1 - failAlpha); fs > 1e-3 {
			b.fail.Store(math.Float64bits(fs))
		} else {
			b.fail.Store(0)
		}
	}
}

// observeLatency feeds one latency sample to the EWMA; a lower bound
// (a failure's, an abandoned call's) never lowers it.
func (b *Backend) observeLatency(latency time.Duration, lowerBound bool) {
	old := b.ewma.Load()
	prev := math.Float64frombits(old)
	sample := float64(latency)
	if lowerBound {
		sample = max(sample, prev)
	}
	next := sample
	if old != 0 {
		next = prev + ewmaAlpha*(sample-prev)
	}
	b.ewma.Store(math.Float64bits(next))
}

// FailureScore returns the backend's failure score: an exponentially
// weighted average of its recent outcomes, from 0 (its recent calls
// succeeded) to 1 (they failed). P2C and bounded loads weigh it, so that
// a backend that fails fast never draws traffic by looking idle.
func (b *Backend) FailureScore() float64 { return math.Float64frombits(b.fail.Load()) }
