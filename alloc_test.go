package lb

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Picks and the feedback path allocate nothing. (testing.AllocsPerRun
// counts allocations of the whole process: these tests do not run in
// parallel with others.)
func TestPicksAllocateNothing(t *testing.T) {
	keys := benchKeys()
	for _, bc := range append(benchCases,
		benchCase{name: "WeightedRoundRobinPastMaxSchedule", builder: WeightedRoundRobin{MaxSchedule: 2}, weighted: true},
		benchCase{name: "P2CWeighted", builder: P2C{}, weighted: true},
	) {
		bs, err := NewBackends(benchEndpoints(100, bc.weighted))
		require.NoError(t, err)
		p, err := bc.builder.Build(bs)
		require.NoError(t, err)
		i := 0
		allocs := testing.AllocsPerRun(1000, func() {
			if _, err := p.Pick(keys[i%keyPool]); err != nil {
				t.Fatal(err)
			}
			if _, err := p.Pick(""); err != nil {
				t.Fatal(err)
			}
			i++
		})
		assert.Zero(t, allocs, "%s Pick", bc.name)

		if pl, ok := p.(PreferenceLister); ok {
			dst := make([]*Backend, 0, 3)
			allocs := testing.AllocsPerRun(1000, func() {
				dst = pl.AppendPreferences(dst[:0], keys[i%keyPool], 3)
				i++
			})
			assert.Zero(t, allocs, "%s AppendPreferences", bc.name)
		}
	}
}

func TestBalancerPickDoneAllocatesNothing(t *testing.T) {
	keys := benchKeys()
	failure := errors.New("refused")
	for _, bc := range benchCases {
		bal, err := NewBalancer(bc.builder, WithEndpoints(benchEndpoints(100, bc.weighted)),
			WithOutlierDetection(OutlierDetection{ConsecutiveFailures: 1 << 30}))
		require.NoError(t, err)
		i := 0
		allocs := testing.AllocsPerRun(1000, func() {
			pk, err := bal.Pick(keys[i%keyPool])
			if err != nil {
				t.Fatal(err)
			}
			if i%2 == 0 {
				pk.Done(nil, time.Millisecond)
			} else {
				pk.Done(failure, 2*time.Millisecond) // counted, below the ejection threshold
			}
			i++
		})
		assert.Zero(t, allocs, "%s Balancer.Pick + Done", bc.name)
		require.NoError(t, bal.Close())
	}
}
