package backoff_test

import (
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/go-lb/lb/internal/backoff"
)

func TestExp(t *testing.T) {
	t.Parallel()
	const lo, hi = 100 * time.Millisecond, 5 * time.Second
	tests := []struct {
		give int
		want time.Duration
	}{
		{0, lo},
		{1, lo},
		{2, 200 * time.Millisecond},
		{3, 400 * time.Millisecond},
		{6, 3200 * time.Millisecond},
		{7, hi},
		{1000, hi},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, backoff.Exp(tt.give, lo, hi), "retry %d", tt.give)
	}
	assert.Equal(t, time.Second, backoff.Exp(1, 2*time.Second, time.Second), "lo above hi")
	assert.Zero(t, backoff.Exp(1<<40, 0, hi), "lo of 0")
	huge := time.Duration(math.MaxInt64)
	assert.Equal(t, huge, backoff.Exp(1<<40, time.Second, huge), "no overflow below a hi near the limit")
	assert.Equal(t, time.Duration(1<<62), backoff.Exp(63, 1, huge))
}

func TestJitter(t *testing.T) {
	t.Parallel()
	tests := []struct {
		give     time.Duration
		min, max time.Duration
	}{
		{0, 0, 0},
		{1, 0, 0},
		{time.Second, 500 * time.Millisecond, time.Second},
		{3 * time.Nanosecond, 1, 2},
	}
	for _, tt := range tests {
		seen := map[time.Duration]bool{}
		for i := 0; i < 1000; i++ {
			d := backoff.Jitter(tt.give)
			assert.GreaterOrEqual(t, d, tt.min, "Jitter(%v)", tt.give)
			assert.LessOrEqual(t, d, tt.max, "Jitter(%v)", tt.give)
			seen[d] = true
		}
		if tt.max > tt.min {
			assert.Greater(t, len(seen), 1, "Jitter(%v) is not random", tt.give)
		}
	}
}
