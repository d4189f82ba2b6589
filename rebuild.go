package lb

import (
	"fmt"
	"slices"
)

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
