package lb

import (
	"fmt"
	"math"
	"strconv"
	"testing"
	"time"
)

// TestPlacementStorm is TestStorm's storm with subsetting, locality and
// slow start on: zones, priorities and ordinals change with the set, and
// every tenth update has a malformed priority and must fail, changing
// nothing. Every pick must return a backend of the subset of a set that
// was current during the pick, and the tiers' shares always add up to 1.
// Run under -race.
func TestPlacementStorm(t *testing.T) {
	t.Parallel()
	for i, b := range []Builder{RoundRobin{}, P2C{}, Ring{Replicas: 64}, Maglev{TableSize: 1009}} {
		b := b
		t.Run(fmt.Sprintf("%d-%T", i, b), func(t *testing.T) {
			t.Parallel()
			runStorm(t, placementStorm(b))
		})
	}
}

func placementStorm(builder Builder) stormSpec {
	const pool = 24
	zones := []string{"a", "b", "c"}
	return stormSpec{
		builder: builder,
		pool:    pool,
		opts: []Option{
			WithSubset(Subset{Size: 3, ClientIndex: 1, OrdinalLabel: "ordinal"}),
			WithLocality(Locality{Region: "r1", Zone: "a"}),
			WithSlowStart(SlowStart{Window: 20 * time.Millisecond}),
		},
		set: func(v int) []Endpoint {
			var eps []Endpoint
			for i := 0; i < pool; i++ {
				if (i+v)%4 == 0 {
					continue // a quarter is away, rotating
				}
				eps = append(eps, Endpoint{Addr: fmt.Sprintf("10.0.0.%d:80", i+1), Weight: 1 + i%2, Labels: map[string]string{
					LabelRegion: "r1", LabelZone: zones[(i+v/7)%3], "ordinal": strconv.Itoa(i),
					LabelPriority: strconv.Itoa((i + v/5) % 5 / 4), // mostly 0, some 1
				}})
			}
			if v%10 == 0 && v > 0 {
				eps[v%len(eps)].Labels[LabelPriority] = "first"
			}
			return eps
		},
		refused: func(v int) bool { return v%10 == 0 },
		kept: func(bal *Balancer, eps []Endpoint) map[string]bool {
			sub, _ := bal.placement(eps) // an error keeps nothing: every pick then counts as bad
			m := map[string]bool{}
			for _, e := range sub {
				m[e.Addr] = true
			}
			return m
		},
		check: func(bal *Balancer) error {
			var sum float64
			for _, l := range bal.Localities() {
				sum += l.Share
			}
			if math.Abs(sum-1) > 1e-9 {
				return fmt.Errorf("the tiers' shares add up to %v", sum)
			}
			return nil
		},
	}
}
