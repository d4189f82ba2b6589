// Package resolvertest holds what the tests of lb's resolvers share: a
// recorder of the sets a Resolver reports, waits with a deadline, a slog
// handler that keeps what was logged, the measurements of how fast a
// change reaches a Balancer and what a running resolver holds, and the
// loopback plumbing (free ports, a TCP proxy a test can cut) their
// integration tests use. It is internal: only lb's own modules (the root
// and the nested ones under its import path) import it, and only from
// tests.
package resolvertest

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-lb/lb"
)

// Deadline bounds every wait for a condition: only a broken program
// reaches it.
const Deadline = 30 * time.Second

// poll is how often a wait looks at its condition.
const poll = 2 * time.Millisecond

// WaitFor waits until cond holds, looking at it every few milliseconds,
// and fails the test (naming what it waited for) after Deadline. cond
// runs on a goroutine of its own, one call at a time.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	require.Eventually(t, cond, Deadline, poll, "timed out waiting for %s", what)
}

// Recorder runs a Resolver's Watch in the background and keeps every set
// it reports, in order. Its methods are safe for concurrent use.
type Recorder struct {
	mu   sync.Mutex
	sets [][]lb.Endpoint

	cancel context.CancelFunc
	done   chan error
	once   sync.Once
	err    error
}

// Watch starts r.Watch with a recorder as its update; it is stopped at
// the test's end (Stop).
func Watch(t testing.TB, r lb.Resolver) *Recorder {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	rec := &Recorder{cancel: cancel, done: make(chan error, 1)}
	go func() {
		rec.done <- r.Watch(ctx, func(eps []lb.Endpoint) error {
			rec.mu.Lock()
			defer rec.mu.Unlock()
			rec.sets = append(rec.sets, eps)
			return nil
		})
	}()
	t.Cleanup(func() { _ = rec.Stop() })
	return rec
}

// Stop cancels the Watch, waits for it to return and returns its error;
// later calls return the same error.
func (r *Recorder) Stop() error {
	r.once.Do(func() { r.cancel(); r.err = <-r.done })
	return r.err
}

// Ended waits for the Watch to return by itself (its context still
// running) and returns its error; it fails the test after Deadline.
func (r *Recorder) Ended(t testing.TB) error {
	t.Helper()
	select {
	case err := <-r.done:
		r.once.Do(func() { r.cancel(); r.err = err })
	case <-time.After(Deadline):
		t.Fatal("Watch did not return by itself")
	}
	return r.err
}

// Count is how many sets were reported.
func (r *Recorder) Count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.sets)
}

// Last is the last set reported; nil before any.
func (r *Recorder) Last() []lb.Endpoint {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.sets) == 0 {
		return nil
	}
	return r.sets[len(r.sets)-1]
}

// Addrs is the addresses of the last set reported, in its order (empty,
// not nil, before any set).
func (r *Recorder) Addrs() []string { return Addrs(r.Last()) }

// WaitCount waits until exactly n sets were reported.
func (r *Recorder) WaitCount(t testing.TB, n int, what string) {
	t.Helper()
	WaitFor(t, what, func() bool { return r.Count() == n })
}

// WaitAddrs waits until a set was reported and the last one has exactly
// the addresses want, in this order (none: the empty set).
func (r *Recorder) WaitAddrs(t testing.TB, want ...string) {
	t.Helper()
	w := Format(want)
	WaitFor(t, "set "+w, func() bool { return r.Count() > 0 && Format(r.Addrs()) == w })
}

// NoRepeats checks that no set was reported twice in a row.
func (r *Recorder) NoRepeats(t testing.TB) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := 1; i < len(r.sets); i++ {
		assert.False(t, lb.EqualEndpoints(r.sets[i-1], r.sets[i]), "set %d repeats set %d: %v", i, i-1, r.sets[i])
	}
}

// Addrs is the addresses of eps, in their order (empty, not nil, for no
// endpoints).
func Addrs(eps []lb.Endpoint) []string {
	out := make([]string, len(eps))
	for i, e := range eps {
		out[i] = e.Addr
	}
	return out
}

// Format writes addresses as "[a b c]" ("[]" for none).
func Format(addrs []string) string { return "[" + strings.Join(addrs, " ") + "]" }

// Backends is the addresses of bal's backends, "[a b c]", in the order
// Balancer.Backends gives them.
func Backends(bal *lb.Balancer) string {
	bs := bal.Backends()
	addrs := make([]string, len(bs))
	for i, b := range bs {
		addrs[i] = b.Addr()
	}
	return Format(addrs)
}

// PicksWork makes n picks from bal, each of which must succeed, and
// finishes them: a balancer keeps serving from its last set.
func PicksWork(t testing.TB, bal *lb.Balancer, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		pk, err := bal.Pick("")
		require.NoError(t, err)
		pk.Done(nil, 0)
	}
}

// ConfigError runs r.Watch, which must return at once an error wrapping
// lb.ErrInvalidConfig whose message holds each of want, without calling
// update.
func ConfigError(t testing.TB, r lb.Resolver, want ...string) {
	t.Helper()
	err := r.Watch(context.Background(), func([]lb.Endpoint) error {
		t.Error("update called")
		return nil
	})
	require.ErrorIs(t, err, lb.ErrInvalidConfig)
	for _, w := range want {
		assert.Contains(t, err.Error(), w)
	}
}
