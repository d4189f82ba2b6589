package lb

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"
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

	mu      sync.Mutex // serialises Update, ejection, readmission, Close
	members []*Backend // the current set, in the order given to Update
	byAddr  map[string]*Backend
	timers  map[*Backend]*time.Timer
	closed  bool
}

// snapshot is what a pick reads: one atomic load.
type snapshot struct {
	picker    Picker
	available []*Backend // what the picker was built over
	members   []*Backend // every backend of the set, ejected or not
	err       error      // non-nil: no picker (empty set, or closed)
}

// Option configures a Balancer.
type Option interface {
	apply(*options)
}

type optionFunc func(*options)

func (f optionFunc) apply(o *options) { f(o) }

type options struct {
	outlier   OutlierDetection
	logger    *slog.Logger
	endpoints []Endpoint
	now       func() time.Time
}

// defaultOptions is the one place defaults are set.
func defaultOptions() options {
	return options{
		outlier: OutlierDetection{}, // off
		logger:  slog.New(discardHandler{}),
		now:     time.Now,
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
	bal := &Balancer{
		builder: b,
		opts:    o,
		group:   new(loadGroup),
		byAddr:  map[string]*Backend{},
		timers:  map[*Backend]*time.Timer{},
	}
	if lt, ok := b.(interface{ needsTotalLoad() bool }); ok {
		bal.group.track = lt.needsTotalLoad()
	}
	bal.snap.Store(&snapshot{err: fmt.Errorf("%w: the balancer has no endpoints yet", ErrNoEndpoints)})
	if o.endpoints != nil {
		if err := bal.Update(o.endpoints); err != nil {
			return nil, err
		}
	}
	return bal, nil
}

// Pick is one call's backend, and the handle that reports the call's end.
type Pick struct {
	// Backend is the chosen backend.
	Backend *Backend
	bal     *Balancer
}

// Addr returns the chosen backend's address ("" for the zero Pick).
func (p Pick) Addr() string {
	if p.Backend == nil {
		return ""
	}
	return p.Backend.addr
}

// Done reports the end of the call: err is nil for a success and non-nil
// for a failure of the backend (the caller decides what counts: a refused
// connection does, a 404 usually does not), latency is the call's duration
// (0 or less: not measured). Call it exactly once per successful Pick; it
// decrements the backend's in-flight count, feeds its latency EWMA and
// failure streak, and may eject it (see OutlierDetection). Done on the zero
// Pick does nothing. It allocates nothing unless it ejects.
func (p Pick) Done(err error, latency time.Duration) {
	b := p.Backend
	if b == nil {
		return
	}
	b.observe(err, latency)
	if err != nil && p.bal != nil {
		p.bal.failed(b)
	}
}

// Cancel ends a pick whose call never ran or whose caller gave up (a
// cancelled context, a request that could not be built): it lowers the
// in-flight count and records neither a success nor a failure, so the
// backend's streak and latency are left as they were. Call Cancel or Done,
// not both. It allocates nothing.
func (p Pick) Cancel() {
	if b := p.Backend; b != nil {
		b.end()
	}
}

// Logger returns the balancer's logger (WithLogger; by default one that
// discards everything), for components that report on the balancer's
// behalf, like the Transport and resolvers.
func (b *Balancer) Logger() *slog.Logger { return b.opts.logger }

// Pick chooses a backend for a call with the given hash key ("" when the
// call has none). The caller must call Done on the result when the call
// ends. The error wraps ErrNoEndpoints when the set is empty, or is
// ErrClosed after Close.
func (b *Balancer) Pick(key string) (Pick, error) {
	s := b.snap.Load()
	if s.err != nil {
		return Pick{}, s.err
	}
	be, err := s.picker.Pick(key)
	if err != nil {
		return Pick{}, err
	}
	be.begin()
	return Pick{Backend: be, bal: b}, nil
}

// PickNext chooses a backend for a retry: one that is not in tried. Hash
// strategies (pickers that implement PreferenceLister) go down the key's
// order of preference; the others pick again, and fall back to the first
// untried backend after the picker's last answer. Backends out of the picker
// (ejected, unhealthy) are used only when every other one was tried. The
// error wraps ErrNoEndpoints when every backend was tried.
func (b *Balancer) PickNext(key string, tried []*Backend) (Pick, error) {
	s := b.snap.Load()
	if s.err != nil {
		return Pick{}, s.err
	}
	be := nextUntried(s, key, tried)
	if be == nil {
		return Pick{}, fmt.Errorf("%w: all %d backends were tried", ErrNoEndpoints, len(s.members))
	}
	be.begin()
	return Pick{Backend: be, bal: b}, nil
}

func nextUntried(s *snapshot, key string, tried []*Backend) *Backend {
	var start *Backend // where the scans for an untried backend begin
	if len(tried) == 0 {
		if be, err := s.picker.Pick(key); err == nil {
			return be
		}
	}
	if pl, ok := s.picker.(PreferenceLister); ok {
		for _, be := range pl.AppendPreferences(make([]*Backend, 0, len(tried)+1), key, len(tried)+1) {
			if !containsBackend(tried, be) {
				return be
			}
			start = be
		}
	} else {
		var last *Backend
		for try := 0; try < 3; try++ {
			be, err := s.picker.Pick(key)
			if err == nil && !containsBackend(tried, be) {
				return be
			}
			last = be
		}
		// The scans below start after the picker's last answer: a position
		// as random as the picker's own draws (and as repeatable, when its
		// Builder has a seeded Rand).
		start = last
	}
	for _, set := range [][]*Backend{s.available, s.members} {
		off := 0
		if start != nil {
			off = slices.Index(set, start) + 1 // 0 when not in set
		}
		for i := range set {
			if be := set[(off+i)%len(set)]; !containsBackend(tried, be) {
				return be
			}
		}
	}
	return nil
}

// Update replaces the endpoint set. It copies and validates eps (errors
// wrap ErrInvalidEndpoint or ErrDuplicateEndpoint, and leave the balancer
// as it was); backends whose address stays keep their counters and
// ejection state, taking the new weight and labels; the picker is rebuilt
// unless the set is unchanged. An empty eps empties the balancer: Pick then
// returns ErrNoEndpoints.
func (b *Balancer) Update(eps []Endpoint) error {
	if err := validateSet(eps); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return ErrClosed
	}
	if b.sameSet(eps) {
		return nil
	}
	members := make([]*Backend, len(eps))
	byAddr := make(map[string]*Backend, len(eps))
	for i, e := range eps {
		be := b.byAddr[e.Addr]
		if be == nil {
			be = newBackend(e, b.group)
		}
		members[i] = be
		byAddr[e.Addr] = be
	}
	// New weights and labels first (builders read them), put back if the
	// build fails: a Builder error leaves everything as it was.
	old := make(map[*Backend]*backendMeta)
	for i, e := range eps {
		if be := members[i]; !sameMeta(be.meta.Load(), e) {
			old[be] = be.meta.Load()
			be.meta.Store(newMeta(e))
		}
	}
	s, err := b.buildSnapshot(members)
	if err != nil {
		for be, m := range old {
			be.meta.Store(m)
		}
		return err
	}
	for addr, be := range b.byAddr {
		if byAddr[addr] == nil {
			b.stopTimer(be)
		}
	}
	b.members, b.byAddr = members, byAddr
	b.snap.Store(s)
	return nil
}

// sameSet reports whether eps describes the current set exactly (order
// aside).
func (b *Balancer) sameSet(eps []Endpoint) bool {
	if len(eps) != len(b.members) || b.members == nil {
		return false
	}
	for _, e := range eps {
		be := b.byAddr[e.Addr]
		if be == nil || !sameMeta(be.meta.Load(), e) {
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

// buildSnapshot builds a picker over the members that are available (not
// ejected, not marked down) or, when none is, over all of them: a fleet
// that is entirely failing is still used (the panic threshold). It is
// called with b.mu held.
func (b *Balancer) buildSnapshot(members []*Backend) (*snapshot, error) {
	if len(members) == 0 {
		return &snapshot{err: fmt.Errorf("%w: the endpoint set is empty", ErrNoEndpoints)}, nil
	}
	avail := make([]*Backend, 0, len(members))
	for _, be := range members {
		if be.available() {
			avail = append(avail, be)
		}
	}
	if len(avail) == 0 {
		avail = append(avail, members...)
	}
	p, err := b.builder.Build(slices.Clone(avail))
	if err != nil {
		return nil, err
	}
	if p == nil {
		return nil, fmt.Errorf("%w: the Builder returned a nil Picker", ErrInvalidConfig)
	}
	return &snapshot{picker: p, available: avail, members: members}, nil
}

// rebuild publishes a new picker over the current members, after an
// ejection, readmission or health change. Called with b.mu held.
func (b *Balancer) rebuild() {
	s, err := b.buildSnapshot(b.members)
	if err != nil {
		// The builder accepted this set before; only a builder whose
		// answer depends on the subset can fail here. Keep the old picker.
		b.opts.logger.Error("lb: rebuilding the picker failed; keeping the previous one", "err", err)
		return
	}
	b.snap.Store(s)
}

// SetHealthy marks the backend at addr up or down, as an active health
// check decides: a backend marked down is left out of the picker (unless
// every backend is out) until it is marked up again. The error wraps
// ErrNoEndpoints when addr is not in the set.
func (b *Balancer) SetHealthy(addr string, healthy bool) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return ErrClosed
	}
	be := b.byAddr[addr]
	if be == nil {
		return fmt.Errorf("%w: %q is not in the set", ErrNoEndpoints, addr)
	}
	if be.down.Load() == !healthy {
		return nil
	}
	be.down.Store(!healthy)
	if healthy {
		be.streak.Store(0)
		b.opts.logger.Info("lb: backend healthy", "addr", addr)
	} else {
		b.opts.logger.Warn("lb: backend unhealthy", "addr", addr)
	}
	b.rebuild()
	return nil
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

// Close stops the balancer's timers; Pick then returns ErrClosed. It is
// safe to call more than once.
func (b *Balancer) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	for be := range b.timers {
		b.stopTimer(be)
	}
	b.snap.Store(&snapshot{err: ErrClosed, members: b.members})
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

func (discardHandler) Enabled(_ context.Context, _ slog.Level) bool  { return false }
func (discardHandler) Handle(_ context.Context, _ slog.Record) error { return nil }
func (d discardHandler) WithAttrs([]slog.Attr) slog.Handler          { return d }
func (d discardHandler) WithGroup(string) slog.Handler               { return d }
