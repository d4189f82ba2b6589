package redis

import (
	"math/rand/v2"
	"time"
)

// jitterUp spreads d over [0.9·d, 1.1·d).
func jitterUp(d time.Duration) time.Duration {
	return d - d/10 + time.Duration(rand.Int64N(int64(d/5)+1))
}
