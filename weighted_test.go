package lb

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func weightedEndpoints(ws ...int) []Endpoint {
	eps := make([]Endpoint, len(ws))
	for i, w := range ws {
		eps[i] = Endpoint{Addr: fmt.Sprintf("%c:80", 'a'+i), Weight: w}
	}
	return eps
}

func pickSeq(t *testing.T, p Picker, n int) string {
	t.Helper()
	var sb strings.Builder
	for i := 0; i < n; i++ {
		b, err := p.Pick("")
		require.NoError(t, err)
		sb.WriteByte(b.Addr()[0])
	}
	return sb.String()
}

// nginxSeq runs nginx's smooth weighted round robin directly, as the
// reference the picker is checked against.
func nginxSeq(ws []int, n int) string {
	cur := make([]int, len(ws))
	total := 0
	for _, w := range ws {
		total += w
	}
	var sb strings.Builder
	for i := 0; i < n; i++ {
		best := -1
		for j, w := range ws {
			cur[j] += w
			if best < 0 || cur[j] > cur[best] {
				best = j
			}
		}
		cur[best] -= total
		sb.WriteByte(byte('a' + best))
	}
	return sb.String()
}

func rotations(s string) []string {
	out := make([]string, len(s))
	for i := range s {
		out[i] = s[i:] + s[:i]
	}
	return out
}

func TestWeightedRoundRobinNginxSequence(t *testing.T) {
	t.Parallel()
	p, err := WeightedRoundRobin{Stripes: 1}.New(weightedEndpoints(5, 1, 1))
	require.NoError(t, err)
	assert.Equal(t, 7, p.Period())
	assert.True(t, p.Precomputed())
	// One stripe starts at a random offset of the period: the sequence is a
	// rotation of nginx's, and keeps going period after period.
	got := pickSeq(t, p, 7*100)
	assert.Contains(t, rotations("aabacaa"), got[:7])
	assert.Equal(t, strings.Repeat(got[:7], 100), got)
}

func TestWeightedRoundRobinMatchesNginx(t *testing.T) {
	t.Parallel()
	tests := []struct {
		give []int
	}{
		{give: []int{5, 1, 1}},
		{give: []int{1, 1, 1, 1}},
		{give: []int{3, 2}},
		{give: []int{10, 20, 30}}, // gcd 10: same sequence as 1, 2, 3
		{give: []int{7, 3, 1, 1, 9}},
		{give: []int{100, 1}},
	}
	for _, tt := range tests {
		p, err := WeightedRoundRobin{Stripes: 1}.New(weightedEndpoints(tt.give...))
		require.NoError(t, err)
		period := p.Period()
		got := pickSeq(t, p, period*5)
		reduced := make([]int, len(tt.give))
		g := 0
		for _, w := range tt.give {
			g = int(gcd(int64(g), int64(w)))
		}
		for i, w := range tt.give {
			reduced[i] = w / g
		}
		want := nginxSeq(reduced, period)
		assert.Contains(t, rotations(want), got[:period], "weights %v", tt.give)
		assert.Equal(t, strings.Repeat(got[:period], 5), got, "weights %v", tt.give)
		// exact counts per period
		for i, w := range reduced {
			assert.Equal(t, w*5, strings.Count(got, string(rune('a'+i))), "weights %v backend %d", tt.give, i)
		}
	}
}

func TestWeightedRoundRobinPastMaxSchedule(t *testing.T) {
	t.Parallel()
	// Period 7 with a cap of 4: computed per pick under a lock, from
	// nginx's starting state: exactly nginx's sequence.
	p, err := WeightedRoundRobin{MaxSchedule: 4}.New(weightedEndpoints(5, 1, 1))
	require.NoError(t, err)
	assert.False(t, p.Precomputed())
	assert.Equal(t, strings.Repeat("aabacaa", 50), pickSeq(t, p, 350))

	// Still safe and exact in share under concurrency.
	var wg sync.WaitGroup
	counts := make([]map[string]int, 8)
	for g := range counts {
		counts[g] = map[string]int{}
		wg.Add(1)
		go func(m map[string]int) {
			defer wg.Done()
			for i := 0; i < 700; i++ {
				b, _ := p.Pick("")
				m[b.Addr()]++
			}
		}(counts[g])
	}
	wg.Wait()
	total := map[string]int{}
	for _, m := range counts {
		for k, v := range m {
			total[k] += v
		}
	}
	// 8*700 = 5600 picks = 800 periods, continuing an exact sequence.
	assert.Equal(t, map[string]int{"a:80": 4000, "b:80": 800, "c:80": 800}, total)
}

func TestWeightedRoundRobinStripedShares(t *testing.T) {
	t.Parallel()
	p, err := WeightedRoundRobin{Stripes: 8}.New(weightedEndpoints(5, 3, 2))
	require.NoError(t, err)
	const goroutines, each = 16, 1000
	var mu sync.Mutex
	total := map[string]int{}
	var wg sync.WaitGroup
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := map[string]int{}
			for i := 0; i < each; i++ {
				b, _ := p.Pick("")
				local[b.Addr()]++
			}
			mu.Lock()
			for k, v := range local {
				total[k] += v
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	// Each of the 8 stripes walks whole periods of 10 from its own offset:
	// a backend's count is off its exact share by less than its weight per
	// stripe.
	n := goroutines * each
	for i, w := range []int{5, 3, 2} {
		want := n * w / 10
		got := total[fmt.Sprintf("%c:80", 'a'+i)]
		assert.InDelta(t, want, got, float64(8*w), "backend %d", i)
	}
}

func TestWeightedRoundRobinBadConfig(t *testing.T) {
	t.Parallel()
	_, err := WeightedRoundRobin{MaxSchedule: -1}.New(weightedEndpoints(1, 2))
	assert.ErrorIs(t, err, ErrInvalidConfig)
	_, err = WeightedRoundRobin{Stripes: maxStripes + 1}.New(weightedEndpoints(1, 2))
	assert.ErrorIs(t, err, ErrInvalidConfig)
	_, err = WeightedRoundRobin{}.New(nil)
	assert.ErrorIs(t, err, ErrNoEndpoints)
	_, err = WeightedRoundRobin{}.New(weightedEndpoints(1, -1))
	assert.ErrorIs(t, err, ErrInvalidEndpoint)
}
