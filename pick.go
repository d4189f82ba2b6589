package lb

import (
	"fmt"
	"slices"
	"sync/atomic"
	"time"
)

// Pick is one call's backend, and the handle that reports the call's end.
// Done and Cancel finish it: the first call of either wins, and later
// calls (on the Pick or on any copy of it) do nothing, so a pick is never
// counted twice.
type Pick struct {
	// Backend is the chosen backend.
	Backend *Backend
	bal     *Balancer
	tok     *atomic.Uint64 // the pick's ticket (see ticket.go)
	gen     uint64         // the ticket's generation when the pick took it
}

func (b *Balancer) newPick(be *Backend) Pick {
	be.begin()
	t, g := takeTicket()
	return Pick{Backend: be, bal: b, tok: t, gen: g}
}

// claim reports whether this call is the first to finish the pick.
func (p *Pick) claim() bool {
	if p.Backend == nil {
		return false
	}
	return p.tok == nil || finishTicket(p.tok, p.gen)
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
