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

// Pick is one call's backend, and the handle that reports the call's end.
// Done and Cancel finish it: the first call of either wins, and later
// calls (on the Pick or on any copy of it) do nothing, so a pick is never
// counted twice.
type Pick struct {
	// Backend is the chosen backend.
	Backend *Backend
	bal     *Balancer
	tok     *pickToken
	gen     uint64
}

// pickToken makes finishing a pick idempotent without an allocation: a
// pick takes a token from a pool and notes its generation; finishing
// advances the generation (only the first finish can) and returns the
// token. A stale copy's generation no longer matches, however often the
// token has been reused since.
type pickToken struct{ gen atomic.Uint64 }

var pickTokens = sync.Pool{New: func() any { return new(pickToken) }}

func (b *Balancer) newPick(be *Backend) Pick {
	be.begin()
	t := pickTokens.Get().(*pickToken)
	return Pick{Backend: be, bal: b, tok: t, gen: t.gen.Load()}
}

// claim reports whether this call is the first to finish the pick.
func (p *Pick) claim() bool {
	if p.Backend == nil {
		return false
	}
	if t := p.tok; t != nil {
		if !t.gen.CompareAndSwap(p.gen, p.gen+1) {
			return false
		}
		pickTokens.Put(t)
	}
	return true
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
// (0 or less: not measured). It decrements the backend's in-flight count,
// feeds its latency EWMA and failure streak, and may eject it (see
// OutlierDetection). Only the first Done or Cancel of a pick counts; Done
// on the zero Pick does nothing. It allocates nothing, and never waits for
// a picker rebuild (an ejection is applied in the background).
func (p Pick) Done(err error, latency time.Duration) {
	if !p.claim() {
		return
	}
	b := p.Backend
	b.observe(err, latency)
	if err != nil && p.bal != nil {
		p.bal.failed(b)
	}
}

// Cancel ends a pick whose call never ran or whose caller gave up (a
// cancelled context, a request that could not be built): it lowers the
// in-flight count and records neither a success nor a failure, so the
// backend's streak and latency are left as they were. Only the first Done
// or Cancel of a pick counts. It allocates nothing.
func (p Pick) Cancel() {
	if p.claim() {
		p.Backend.cancels.Add(1)
		p.Backend.end()
	}
}

// cancelSlow is Cancel for a call that was abandoned after latency (a
// hedge's loser): its latency EWMA takes latency as a lower bound of the
// call's, a sample that never lowers it.
func (p Pick) cancelSlow(latency time.Duration) {
	if p.claim() {
		b := p.Backend
		b.cancels.Add(1)
		b.end()
		if latency > 0 {
			b.observeLatency(latency, true)
		}
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
	if be.out.Load() != 0 && !s.all {
		be = avoid(s, key, be)
	}
	if sh := be.share.Load(); sh != 0 {
		be = b.ramped(s, key, be, sh)
	}
	return b.newPick(be), nil
}

// avoid returns a backend to use instead of be, which left the picker's
// set (ejected, marked down) since the picker was built: a rebuild is on
// its way, and until then picks go around be. Hash pickers go down the
// key's order of preference, which on a ring is where the rebuilt picker
// will send the key; the others pick again. If every backend of the
// picker is out, be is kept.
func avoid(s *snapshot, key string, be *Backend) *Backend {
	if pl, ok := s.picker.(PreferenceLister); ok {
		var buf [16]*Backend
		for _, c := range pl.AppendPreferences(buf[:0], key, len(buf)) {
			if c.out.Load() == 0 {
				return c
			}
		}
	} else {
		for try := 0; try < 3; try++ {
			if c, err := s.picker.Pick(key); err == nil && c.out.Load() == 0 {
				return c
			}
		}
	}
	// Many backends out at once (rare, and only until the rebuild): the
	// next one available after be, without allocating.
	for _, set := range [][]*Backend{s.available, s.members} {
		off := slices.Index(set, be) + 1
		for i := range set {
			if c := set[(off+i)%len(set)]; c.out.Load() == 0 {
				return c
			}
		}
	}
	return be
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
	return b.newPick(be), nil
}

func nextUntried(s *snapshot, key string, tried []*Backend) *Backend {
	var start *Backend // where the scans for an untried backend begin
	usable := func(be *Backend) bool { return !containsBackend(tried, be) && (s.all || be.out.Load() == 0) }
	if len(tried) == 0 {
		if be, err := s.picker.Pick(key); err == nil && usable(be) {
			return be
		}
	}
	if pl, ok := s.picker.(PreferenceLister); ok {
		for _, be := range pl.AppendPreferences(make([]*Backend, 0, len(tried)+1), key, len(tried)+1) {
			if usable(be) {
				return be
			}
			start = be
		}
	} else {
		var last *Backend
		for try := 0; try < 3; try++ {
			be, err := s.picker.Pick(key)
			if err == nil && usable(be) {
				return be
			}
			last = be
		}
		// The scans below start after the picker's last answer: a position
		// as random as the picker's own draws (and as repeatable, when its
		// Builder has a seeded Rand).
		start = last
	}
	for pass, set := range [][]*Backend{s.available, s.available, s.members} {
		off := 0
		if start != nil {
			off = slices.Index(set, start) + 1 // 0 when not in set
		}
		for i := range set {
			// The first pass takes backends still available, the others
			// any untried one.
			if be := set[(off+i)%len(set)]; !containsBackend(tried, be) && (pass > 0 || s.all || be.out.Load() == 0) {
				return be
			}
		}
	}
	return nil
}

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

// buildSnapshot builds a picker over the members that are available (not
// ejected, not marked down) or, when none is, over all of them: a fleet
// that is entirely failing is still used (the panic threshold). It is
// called with b.buildMu held, and not b.mu.
func (b *Balancer) buildSnapshot(members []*Backend, gen uint64) (*snapshot, error) {
	if len(members) == 0 {
		return &snapshot{gen: gen, err: fmt.Errorf("%w: the endpoint set is empty", ErrNoEndpoints)}, nil
	}
	if b.opts.locality != nil {
		// A picker per locality tier, each over the tier's available
		// backends (or its whole set, in panic); see locality.go.
		return b.buildLocality(members, gen)
	}
	avail := make([]*Backend, 0, len(members))
	for _, be := range members {
		if be.available() {
			avail = append(avail, be)
		}
	}
	all := len(avail) == 0
	if all {
		avail = append(avail, members...)
	}
	p, err := b.builder.Build(slices.Clone(avail))
	if err != nil {
		return nil, err
	}
	if p == nil {
		return nil, fmt.Errorf("%w: the Builder returned a nil Picker", ErrInvalidConfig)
	}
	return &snapshot{picker: p, available: avail, members: members, gen: gen, all: all}, nil
}

// rebuildLater marks the picker out of date with the backends'
// availability, and makes sure a goroutine rebuilds it: the caller (an
// ejection on a request's path, a health check) does not wait. Changes
// that come while a rebuild runs are applied by one more rebuild, so k
// changes cost at most a few builds, not k. Called with b.mu held.
func (b *Balancer) rebuildLater() {
	b.dirty.Store(true)
	if b.closed || !b.rebuilding.CompareAndSwap(false, true) {
		return
	}
	b.rebuilds.Add(1)
	b.rebuildTimer = b.opts.clock.AfterFunc(0, b.runRebuilds)
}

// runRebuilds rebuilds the picker until it is up to date.
func (b *Balancer) runRebuilds() {
	for {
		b.buildMu.Lock()
		for b.dirty.Swap(false) {
			b.rebuild()
		}
		b.buildMu.Unlock()
		b.rebuilding.Store(false)
		if !b.dirty.Load() || !b.rebuilding.CompareAndSwap(false, true) {
			b.rebuilds.Done()
			return
		}
	}
}

// settle applies pending availability changes to the picker now, on the
// caller's goroutine: for tests that look at the picker right after an
// ejection or a health change.
func (b *Balancer) settle() {
	b.buildMu.Lock()
	defer b.buildMu.Unlock()
	for b.dirty.Swap(false) {
		b.rebuild()
	}
}

// rebuild publishes a new picker over the current members, after
// ejections, readmissions or health changes. Called with b.buildMu held.
func (b *Balancer) rebuild() {
	b.mu.Lock()
	members, closed := b.members, b.closed
	cur := b.snap.Load()
	b.mu.Unlock()
	if closed || len(members) == 0 {
		return
	}
	s, err := b.buildSnapshot(members, cur.gen)
	if err != nil {
		// The builder accepted this set before; only a builder whose
		// answer depends on the subset can fail here. Keep the old picker.
		b.opts.logger.Error("lb: rebuilding the picker failed; keeping the previous one", "err", err)
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.closed && b.snap.Load() == cur { // Update holds buildMu: nothing else stores
		b.snap.Store(s)
	}
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

func (discardHandler) Enabled(_ context.Context, _ slog.Level) bool  { return false }
func (discardHandler) Handle(_ context.Context, _ slog.Record) error { return nil }
func (d discardHandler) WithAttrs([]slog.Attr) slog.Handler          { return d }
func (d discardHandler) WithGroup(string) slog.Handler               { return d }
