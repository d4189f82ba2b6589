package lb

import (
	"fmt"
	"math/rand/v2"
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
	// Past the cap the order is a golden-ratio interleave of the weight
	// line: each period gives every backend exactly its weight's picks,
	// spread out (for 5,1,1 the b and c picks are never adjacent).
	tests := []struct {
		give []int
	}{
		{[]int{5, 1, 1}},
		{[]int{3, 2}},
		{[]int{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}}, // uniform
		{[]int{7, 1, 2, 9, 1, 1, 4}},
		{[]int{100, 1}},
	}
	for _, tt := range tests {
		p, err := WeightedRoundRobin{MaxSchedule: 2, Stripes: 1}.New(weightedEndpoints(tt.give...))
		require.NoError(t, err)
		assert.False(t, p.Precomputed())
		period := p.Period()
		seq := pickSeq(t, p, 20*period)
		for k := 0; k < 20; k++ {
			one := seq[k*period : (k+1)*period]
			for i, w := range tt.give {
				assert.Equal(t, w/gcdOf(tt.give), strings.Count(one, string(rune('a'+i))), "weights %v, period %d, backend %d: %s", tt.give, k, i, one)
			}
		}
		// Spread: a backend of weight w waits at most about 2×period/w picks
		// (three-gap theorem) between two of its picks.
		for i, w := range tt.give {
			c := string(rune('a' + i))
			last, maxGap := -1, 0
			for j := 0; j < len(seq); j++ {
				if seq[j:j+1] == c {
					if last >= 0 {
						maxGap = max(maxGap, j-last)
					}
					last = j
				}
			}
			share := period / (w / gcdOf(tt.give))
			assert.LessOrEqual(t, maxGap, 2*share+1, "weights %v backend %d: %s", tt.give, i, seq[:period])
		}
	}
}

func gcdOf(ws []int) int {
	g := 0
	for _, w := range ws {
		g = int(gcd(int64(g), int64(w)))
	}
	return g
}

// Past the cap a pick is lock-free at any size: over 100,000 equal
// backends and 30,000 of mixed weights, one period of the stride visits
// every slot once (each backend gets its weight's picks), Pick follows the
// stride, and picks from several goroutines are safe (under -race).
func TestWeightedRoundRobinHugeLine(t *testing.T) {
	t.Parallel()
	for _, weighted := range []bool{false, true} {
		n := 100_000
		if weighted {
			n = 30_000 // period 90,000: past the default cap
		}
		p, err := WeightedRoundRobin{Stripes: 1}.New(benchEndpoints(n, weighted))
		require.NoError(t, err)
		require.False(t, p.Precomputed())
		l, period := p.line, uint64(p.Period())
		counts := make([]int, n)
		x := p.st.s[0].n.Load()
		start := x
		for i := uint64(0); i < period; i++ {
			counts[l.owner(x)]++
			if x += l.stride; x >= period {
				x -= period
			}
		}
		require.Equal(t, start, x, "a period comes back to its start")
		for i, b := range p.Backends() {
			require.Equal(t, b.Weight(), counts[i], "n=%d backend %d", n, i)
		}
		// Pick walks the same stride from the stripe's slot.
		x = p.st.s[0].n.Load()
		for i := 0; i < 1000; i++ {
			b, _ := p.Pick("")
			require.Same(t, p.Backends()[l.owner(x)], b)
			if x += l.stride; x >= period {
				x -= period
			}
		}
		var wg sync.WaitGroup
		for g := 0; g < 4; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 2000; i++ {
					if b, err := p.Pick(""); err != nil || b == nil {
						t.Error("no pick", err)
						return
					}
				}
			}()
		}
		wg.Wait()
	}
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

// The line's owner lookup agrees with a search of the runs, for bucket
// tables of every shape: one slot per bucket, a few, and many (weights in
// the millions).
func TestStrideLineOwner(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(1, 2))
	for _, ws := range [][]int64{
		{1, 2, 3}, {100, 1}, {1, 1 << 20, 3}, {1 << 20, 1 << 20, 1, 1 << 19},
		{5, 1, 1, 9, 2, 1, 1, 1, 1, 65535, 65535, 1},
	} {
		var period uint64
		for _, w := range ws {
			period += uint64(w)
		}
		l := newStrideLine(ws, period)
		require.Equal(t, uint64(1), gcdU(l.stride, period))
		want := func(x uint64) int {
			var end uint64
			for i, w := range ws {
				if end += uint64(w); x < end {
					return i
				}
			}
			return -1
		}
		for k := 0; k < 20000; k++ {
			x := r.Uint64N(period)
			if k < 64 { // the edges of the runs too
				x = uint64(k) % period
			}
			require.Equal(t, want(x), l.owner(x), "weights %v slot %d", ws, x)
		}
	}
}
