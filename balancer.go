package lb

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
)

// Balancer owns a live set of backends and the Picker over them. Pick
// chooses a backend for a call and Pick.Done reports how the call went;
// Update replaces the endpoint set; outlier detection (see
// OutlierDetection) and health checks (SetHealthy) take failing backends
// out of the picker and put them back.
//
// Pick and Done take no lock and allocate nothing: the current Picker is an
// immutable snapshot published through an atomic pointer, rebuilt only when
// the set changes or a backend is ejected or readmitted. A Balancer is safe
// for concurrent use. Close stops its timers.
type Balancer struct {
	snap    atomic.Pointer[snapshot]
	builder Builder
	opts    options
	group   *loadGroup

	// buildMu serialises picker builds: Update's, and the background
	// rebuilds after ejections, readmissions and health changes. A build
	// can take milliseconds over thousands of backends; nothing on a
	// request's path waits for this lock.
	buildMu sync.Mutex
	// mu guards the fields below. It is held for O(1) work (or O(N) of
	// pointer copies in Update), never during a build, so an ejection
	// on a request's path takes it without waiting for one.
	mu       sync.Mutex
	members  []*Backend          // the current set, in the order given to Update
	byKey    map[string]*Backend // by canonicalAddr
	timers   map[*Backend]Timer
	ejected  int // members ejected now
	closed   bool
	closedCh chan struct{} // closed by Close

	ramping   map[*Backend]struct{} // on the slow-start ramp
	rampTimer Timer                 // the next update of their shares
	rampSeq   atomic.Uint64         // draws of the ramp decisions
	holds     map[*Backend]Timer    // backends holding off (Retry-After)

	intervalTimer Timer // the next success-rate interval

	// Background rebuilds: dirty says the picker is out of date with the
	// backends' availability; rebuilding that a goroutine applies it.
	dirty        atomic.Bool
	rebuilding   atomic.Bool
	rebuilds     sync.WaitGroup // the running rebuild goroutine, for Close
	rebuildTimer Timer          // the scheduled start of the rebuilds; guarded by mu
}

// snapshot is what a pick reads: one atomic load.
type snapshot struct {
	picker    Picker
	available []*Backend // what the picker was built over
	members   []*Backend // every backend of the set, ejected or not
	gen       uint64     // the membership version: changes with the set, not with availability
	// all: the picker is built over every member, because none is
	// available (the panic threshold): picks do not avoid any.
	all bool
	err error // non-nil: no picker (empty set, or closed)
	// tiers are the locality tiers the picker was built over (WithLocality;
	// see buildLocality), for Localities.
	tiers []LocalityStats
}

// Option configures a Balancer.
type Option interface {
	apply(*options)
}

type optionFunc func(*options)

func (f optionFunc) apply(o *options) { f(o) }

type options struct {
	outlier      OutlierDetection
	logger       *slog.Logger
	endpoints    []Endpoint
	clock        Clock
	slowStart    SlowStart
	slowStartSet bool
	subset       *Subset   // WithSubset (subset.go)
	locality     *Locality // WithLocality (locality.go)
}

// defaultOptions is the one place defaults are set.
func defaultOptions() options {
	return options{
		outlier: OutlierDetection{}, // off
		logger:  slog.New(discardHandler{}),
		clock:   systemClock{},
	}
}

// WithEndpoints sets the initial endpoint set, as an Update right after
// construction would; NewBalancer returns its validation error.
func WithEndpoints(eps []Endpoint) Option {
	eps = slices.Clone(eps)
	return optionFunc(func(o *options) { o.endpoints = eps })
}

// WithLogger sends ejections, readmissions and health changes to l (at
// Info and Warn level). The default logs nothing.
func WithLogger(l *slog.Logger) Option {
	return optionFunc(func(o *options) {
		if l != nil {
			o.logger = l
		}
	})
}

// WithOutlierDetection turns on passive outlier detection: a backend whose
// calls fail ConsecutiveFailures times in a row is ejected for a while.
// See OutlierDetection for the fields and their defaults.
func WithOutlierDetection(od OutlierDetection) Option {
	return optionFunc(func(o *options) {
		o.outlier = od
		o.outlier.enabled = true
	})
}

// NewBalancer returns a Balancer that builds its pickers with b. Without
// WithEndpoints its set is empty until the first Update, and Pick returns
// ErrNoEndpoints. The errors wrap ErrInvalidConfig (a nil Builder, bad
// outlier settings) or come from validating the initial endpoints.
func NewBalancer(b Builder, opts ...Option) (*Balancer, error) {
	if b == nil {
		return nil, fmt.Errorf("%w: the Builder is nil", ErrInvalidConfig)
	}
	o := defaultOptions()
	for _, opt := range opts {
		if opt != nil {
			opt.apply(&o)
		}
	}
	if o.outlier.enabled {
		od, err := o.outlier.withDefaults()
		if err != nil {
			return nil, err
		}
		o.outlier = od
	}
	if _, anchor := b.(*Anchor); anchor && o.locality != nil {
		// One Anchor keeps one history: a picker per locality tier would
		// interleave the tiers' sets in it.
		return nil, fmt.Errorf("%w: an Anchor keeps the history of one set, and WithLocality builds a picker per tier; use Ring or Maglev with WithLocality", ErrInvalidConfig)
	}
	if err := o.checkPlacement(); err != nil { // subsetting and locality (subset.go)
		return nil, err
	}
	if o.slowStartSet {
		ss, err := o.slowStart.withDefaults()
		if err != nil {
			return nil, err
		}
		o.slowStart = ss
	}
	bal := &Balancer{
		builder:  b,
		opts:     o,
		group:    new(loadGroup),
		byKey:    map[string]*Backend{},
		timers:   map[*Backend]Timer{},
		closedCh: make(chan struct{}),
	}
	if lt, ok := b.(TotalLoadBuilder); ok {
		bal.group.track = lt.NeedsTotalLoad()
	}
	bal.snap.Store(&snapshot{err: fmt.Errorf("%w: the balancer has no endpoints yet", ErrNoEndpoints)})
	bal.startIntervals()
	if o.endpoints != nil {
		if err := bal.Update(o.endpoints); err != nil {
			return nil, err
		}
	}
	return bal, nil
}

// Logger returns the balancer's logger (WithLogger; by default one that
// discards everything), for components that report on the balancer's
// behalf, like the Transport and resolvers.
func (b *Balancer) Logger() *slog.Logger { return b.opts.logger }

// Update replaces the endpoint set. It copies and validates eps (errors
// wrap ErrInvalidEndpoint or ErrDuplicateEndpoint, and leave the balancer
// as it was); backends whose address stays keep their counters and
// ejection state, taking the new weight and labels; the picker is rebuilt,
// and published before Update returns, unless the set is unchanged. An
// empty eps empties the balancer: Pick then returns ErrNoEndpoints. Two
// spellings of one destination ("Host:80" and "host:80", "[::1]:80" and
// "[0:0::1]:80") are the same endpoint: duplicates in eps, and the same
// backend across Updates when spelled alike.
func (b *Balancer) Update(eps []Endpoint) error {
	if err := validateSet(eps); err != nil {
		return err
	}
	// With WithSubset, the Balancer keeps only the client's subset of eps
	// (and with WithLocality, the locality labels of every endpoint are
	// checked): everything below works on what placement returns.
	eps, err := b.placement(eps)
	if err != nil {
		return err
	}
	b.buildMu.Lock()
	defer b.buildMu.Unlock()
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return ErrClosed
	}
	if b.sameSet(eps) {
		b.mu.Unlock()
		return nil
	}
	members := make([]*Backend, len(eps))
	byKey := make(map[string]*Backend, len(eps))
	for i, e := range eps {
		be := b.byKey[canonicalAddr(e.Addr)]
		if be == nil || be.addr != e.Addr {
			be = newBackend(e, b.group) // new, or respelled: its own counters
		}
		members[i] = be
		byKey[be.key] = be
	}
	gen := b.snap.Load().gen + 1
	b.mu.Unlock()

	// New weights and labels first (builders read them), put back if the
	// build fails: a Builder error leaves everything as it was. Only
	// Update writes meta, under buildMu.
	old := make(map[*Backend]*backendMeta)
	for i, e := range eps {
		if be := members[i]; !sameMeta(be.meta.Load(), e) {
			old[be] = be.meta.Load()
			be.meta.Store(newMeta(e))
		}
	}
	b.dirty.Store(false) // this build sees every availability change so far
	s, err := b.buildSnapshot(members, gen)
	if err != nil {
		for be, m := range old {
			be.meta.Store(m)
		}
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return ErrClosed
	}
	for key, be := range b.byKey {
		if byKey[key] != be {
			b.stopTimer(be)
			be.ctl.removed = true
			if be.ejected.Load() {
				b.ejected--
			}
			if t := b.holds[be]; t != nil {
				t.Stop()
				delete(b.holds, be)
			}
		}
	}
	if len(b.members) > 0 { // backends of the first set start at full share
		for _, be := range members {
			if b.byKey[be.key] != be {
				b.startRamp(be)
			}
		}
	}
	b.members, b.byKey = members, byKey
	b.snap.Store(s)
	return nil
}

// sameSet reports whether eps describes the current set exactly (order
// aside). Called with b.mu held.
func (b *Balancer) sameSet(eps []Endpoint) bool {
	if len(eps) != len(b.members) || b.members == nil {
		return false
	}
	for _, e := range eps {
		be := b.byKey[canonicalAddr(e.Addr)]
		if be == nil || be.addr != e.Addr || !sameMeta(be.meta.Load(), e) {
			return false
		}
	}
	return true
}

func sameMeta(m *backendMeta, e Endpoint) bool {
	w := e.Weight
	if w == 0 {
		w = 1
	}
	return m.weight == w && m.hashKey == e.HashKey && maps.Equal(m.labels, e.Labels)
}

// SetHealthy marks the backend at addr up or down, as an active health
// check decides: a backend marked down is left out of the picker (unless
// every backend is out) until it is marked up again. The picker is
// rebuilt in the background; picks avoid the backend at once. The error
// wraps ErrNoEndpoints when addr is not in the set.
func (b *Balancer) SetHealthy(addr string, healthy bool) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return ErrClosed
	}
	be := b.byKey[canonicalAddr(addr)]
	if be == nil {
		return fmt.Errorf("%w: %q is not in the set", ErrNoEndpoints, addr)
	}
	if be.down.Load() == !healthy {
		return nil
	}
	be.down.Store(!healthy)
	be.setOut()
	if healthy {
		be.streak.Store(0)
		b.startRamp(be)
		b.opts.logger.Info("lb: backend healthy", "addr", be.addr)
	} else {
		b.opts.logger.Warn("lb: backend unhealthy", "addr", be.addr)
	}
	b.rebuildLater()
	return nil
}

// backend returns the member at addr (any spelling), or nil.
func (b *Balancer) backend(addr string) *Backend {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.byKey[canonicalAddr(addr)]
}

// markDown marks be down for a health check, unless that would take more
// than pct percent of the set out (0: the Balancer's cap), and reports
// whether it did.
func (b *Balancer) markDown(be *Backend, pct int) bool {
	b.mu.Lock()
	limit := b.outLimit()
	if pct > 0 {
		limit = max(1, len(b.members)*pct/100)
	}
	if b.closed || be.ctl.removed || b.outCount() >= limit {
		b.mu.Unlock()
		return false
	}
	b.mu.Unlock()
	return b.SetHealthy(be.addr, false) == nil
}

// Backends returns the current set, in the order given to Update.
func (b *Balancer) Backends() []*Backend {
	return slices.Clone(b.snap.Load().members)
}

// Stats returns a snapshot of every backend's counters, in the order of
// the endpoint set.
func (b *Balancer) Stats() []Stats {
	members := b.snap.Load().members
	out := make([]Stats, len(members))
	for i, be := range members {
		out[i] = be.Stats()
	}
	return out
}

// Close stops the balancer's timers and waits for a background rebuild
// in progress; Pick then returns ErrClosed, and a Follower of the
// balancer stops. It is safe to call more than once.
func (b *Balancer) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		b.rebuilds.Wait()
		return nil
	}
	b.closed = true
	close(b.closedCh)
	if b.rebuildTimer != nil && b.rebuildTimer.Stop() {
		// Scheduled and not started (a Clock that has not run it): it
		// never will.
		b.rebuilding.Store(false)
		b.rebuilds.Done()
	}
	for be := range b.timers {
		b.stopTimer(be)
	}
	for _, t := range b.holds {
		t.Stop()
	}
	if b.rampTimer != nil {
		b.rampTimer.Stop()
	}
	if b.intervalTimer != nil {
		b.intervalTimer.Stop()
	}
	b.snap.Store(&snapshot{err: ErrClosed, members: b.members, gen: b.snap.Load().gen})
	b.mu.Unlock()
	b.rebuilds.Wait()
	return nil
}

func (b *Balancer) stopTimer(be *Backend) {
	if t := b.timers[be]; t != nil {
		t.Stop()
		delete(b.timers, be)
	}
}

// discardHandler is a slog.Handler that drops everything (slog's own
// DiscardHandler needs Go 1.24).
type discardHandler struct{}

func (discardHandler) Enabled(_ context.Context, _ slog.Level) bool { return false }

func (discardHandler) Handle(_ context.Context, _ slog.Record) error { return nil }

func (d discardHandler) WithAttrs([]slog.Attr) slog.Handler { return d }

func (d discardHandler) WithGroup(string) slog.Handler { return d }
