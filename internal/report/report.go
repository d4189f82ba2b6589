// Package report holds how lb's resolvers (etcd, Redis, ZooKeeper, xDS)
// hand their sets to update: a set equal to the last one handed on is
// skipped, a set handed on is a copy of the resolver's own, and update's
// error is marked so that a resolver's retry loops end with it instead of
// retrying it.
package report

import "github.com/go-lb/lb"

// UpdateError carries the error of update out of a resolver's inner
// loops: Watch returns Err as it is, and does not retry.
type UpdateError struct{ Err error }

// Error implements error.
func (e UpdateError) Error() string { return e.Err.Error() }

// Last is the last set a resolver handed to update. The zero value has
// handed on none.
type Last struct {
	eps  []lb.Endpoint
	sent bool
}

// Report hands eps to update as a deep copy (lb.CloneEndpoints), unless
// the last set handed on equals it (lb.EqualEndpoints, so eps must be
// sorted as every set is); the first set is handed on even when empty.
// It reports whether eps was handed on, and returns update's error as an
// UpdateError. Report keeps eps: the caller must not change it after.
func (l *Last) Report(eps []lb.Endpoint, update func([]lb.Endpoint) error) (bool, error) {
	if l.sent && lb.EqualEndpoints(l.eps, eps) {
		return false, nil
	}
	if err := update(lb.CloneEndpoints(eps)); err != nil {
		return false, UpdateError{err}
	}
	l.eps, l.sent = eps, true
	return true, nil
}
