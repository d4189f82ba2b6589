package lb

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
)

// Resolver is a source of endpoint sets: a fixed list (Static), DNS (DNS),
// a registry (the discovery/etcd module), or your own. Follow and
// StartFollower wire a Resolver to a Balancer.
//
// Watch reports the service's endpoint set to update, first when it is
// known and again each time it changes, until ctx ends. Every Resolver in
// this module keeps these rules, and a Resolver of your own should too:
//
//   - update is called from one goroutine at a time, and the slice it gets
//     is its own to keep.
//   - A set equal to the previous one is not reported again.
//   - A transient error of the source (a timeout, a server failure, a lost
//     connection) is logged and retried; the last good set stays, so a
//     failing source never empties the balancer.
//   - An empty set is reported only when the source says authoritatively
//     that there are no endpoints.
//   - Watch returns ctx.Err() when ctx ends, the error of update when that
//     is not nil, or a permanent error (an invalid configuration), and it
//     leaves no goroutine behind when it returns.
type Resolver interface {
	Watch(ctx context.Context, update func([]Endpoint) error) error
}

// Follow reports every endpoint set r resolves to bal.Update, until ctx
// ends (it returns ctx.Err()), bal is closed (an error wrapping ErrClosed),
// or r fails permanently (r's error). Run it in its own goroutine, or use
// StartFollower.
//
// A set that bal rejects (invalid or duplicate endpoints from a Resolver of
// your own) is logged through the Balancer's logger and skipped; the
// balancer keeps its previous set.
func Follow(ctx context.Context, r Resolver, bal *Balancer) error {
	return follow(ctx, r, bal, nil)
}

func follow(ctx context.Context, r Resolver, bal *Balancer, applied func()) error {
	if r == nil || bal == nil {
		return fmt.Errorf("%w: Follow needs a Resolver and a Balancer", ErrInvalidConfig)
	}
	if ctx == nil {
		return fmt.Errorf("%w: Follow needs a context, got nil", ErrInvalidConfig)
	}
	// The watch ends when bal is closed, even if the resolver has nothing
	// more to report (a Static set waits for its context).
	ctx, cancel := context.WithCancel(ctx)
	watching := make(chan struct{})
	defer func() {
		cancel()
		<-watching
	}()
	go func() {
		defer close(watching)
		select {
		case <-bal.closedCh:
			cancel()
		case <-ctx.Done():
		}
	}()
	err := r.Watch(ctx, func(eps []Endpoint) error {
		err := bal.Update(eps)
		switch {
		case err == nil:
			if applied != nil {
				applied()
			}
			return nil
		case errors.Is(err, ErrClosed):
			return err
		default:
			bal.Logger().Warn("lb: resolver reported a set the balancer rejects; keeping the previous set",
				"endpoints", len(eps), "err", err)
			return nil
		}
	})
	select {
	case <-bal.closedCh:
		if !errors.Is(err, ErrClosed) {
			err = fmt.Errorf("%w: the balancer was closed", ErrClosed)
		}
	default:
	}
	return err
}

// Follower runs Follow in its own goroutine: see StartFollower.
type Follower struct {
	cancel    context.CancelFunc
	ready     chan struct{}
	readyOnce sync.Once
	done      chan struct{}
	stopped   bool // set by Stop before cancel; read after done
	stopMu    sync.Mutex
	err       error // written before done is closed
}

// StartFollower starts following r into bal in a new goroutine, which ends
// when ctx ends, when Stop is called, when bal is closed or when r fails
// permanently. Ready tells when the first set has been applied, so a
// program can wait for its backends before it serves:
//
//	f := lb.StartFollower(ctx, resolver, bal)
//	defer f.Stop()
//	select {
//	case <-f.Ready():
//	case <-f.Done():
//		return f.Err()
//	case <-time.After(5 * time.Second):
//		return errors.New("no backends after 5s")
//	}
func StartFollower(ctx context.Context, r Resolver, bal *Balancer) *Follower {
	ctx, cancel := context.WithCancel(ctx)
	f := &Follower{cancel: cancel, ready: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(f.done)
		defer cancel()
		err := follow(ctx, r, bal, func() { f.readyOnce.Do(func() { close(f.ready) }) })
		f.stopMu.Lock()
		if f.stopped && errors.Is(err, context.Canceled) {
			err = nil
		}
		f.stopMu.Unlock()
		f.err = err
	}()
	return f
}

// Ready returns a channel closed once the first endpoint set has been
// applied to the balancer.
func (f *Follower) Ready() <-chan struct{} { return f.ready }

// Done returns a channel closed when the follower's goroutine has ended.
func (f *Follower) Done() <-chan struct{} { return f.done }

// Err returns why the follower ended, once Done is closed: nil after Stop,
// ctx.Err() when its context ended, an error wrapping ErrClosed when the
// balancer was closed, or the resolver's permanent error. Before Done is
// closed it returns nil.
func (f *Follower) Err() error {
	select {
	case <-f.done:
		return f.err
	default:
		return nil
	}
}

// Stop ends the follower, waits for its goroutine to return, and returns
// Err. The balancer keeps the last set applied. Stop is safe to call more
// than once.
func (f *Follower) Stop() error {
	f.stopMu.Lock()
	f.stopped = true
	f.stopMu.Unlock()
	f.cancel()
	<-f.done
	return f.err
}

// Static is a Resolver over a fixed endpoint set: Watch reports it once
// (an empty Static reports the empty set, which is authoritative) and
// waits for its context to end. Watch returns an error wrapping
// ErrInvalidEndpoint or ErrDuplicateEndpoint, at once, for an invalid set.
type Static []Endpoint

// Watch implements Resolver.
func (s Static) Watch(ctx context.Context, update func([]Endpoint) error) error {
	if err := validateSet(s); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := update(CloneEndpoints(s)); err != nil {
		return err
	}
	<-ctx.Done()
	return ctx.Err()
}

// CloneEndpoints returns a deep copy of eps (labels too): what a Resolver
// hands to update must not share memory with what it keeps.
func CloneEndpoints(eps []Endpoint) []Endpoint {
	out := make([]Endpoint, len(eps))
	for i, e := range eps {
		out[i] = Endpoint{Addr: e.Addr, Weight: e.Weight, HashKey: e.HashKey, Labels: copyLabels(e.Labels)}
	}
	return out
}

// sortEndpoints sorts eps by address, in place: resolvers report sorted
// sets, so that equal sets compare equal with EqualEndpoints.
func sortEndpoints(eps []Endpoint) {
	sort.Slice(eps, func(i, j int) bool { return eps[i].Addr < eps[j].Addr })
}

// EqualEndpoints reports whether a and b hold the same endpoints in the
// same order, comparing addresses, weights (0 and 1 are the same weight),
// hash keys and labels. Resolvers use it on sorted sets to skip reporting a set
// equal to the last one.
func EqualEndpoints(a, b []Endpoint) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Addr != b[i].Addr || normWeight(a[i].Weight) != normWeight(b[i].Weight) || a[i].HashKey != b[i].HashKey ||
			!equalLabels(a[i].Labels, b[i].Labels) {
			return false
		}
	}
	return true
}

func normWeight(w int) int {
	if w == 0 {
		return 1
	}
	return w
}

func equalLabels(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
