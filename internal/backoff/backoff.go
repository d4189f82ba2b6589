// Package backoff holds the waits between retries that lb's resolvers and
// registrations share: an exponential step, and jitter so that clients
// do not retry in step.
package backoff

import (
	"math/rand/v2"
	"time"
)

// Exp is the wait before retry n (from 1): lo · 2^(n-1), at most hi.
// It never overflows, and takes a step per doubling, not per retry.
func Exp(n int, lo, hi time.Duration) time.Duration {
	d := lo
	for i := 1; i < n && d > 0 && d < hi; i++ {
		if d > hi/2 {
			return hi
		}
		d *= 2
	}
	return min(d, hi)
}

// Jitter spreads d at random over its upper half, [d/2, d].
func Jitter(d time.Duration) time.Duration {
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}
