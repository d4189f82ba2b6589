package lb

import (
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRoundRobinCycles(t *testing.T) {
	t.Parallel()
	for _, n := range []int{1, 2, 3, 10, 97} {
		eps := make([]Endpoint, n)
		for i := range eps {
			eps[i] = Endpoint{Addr: fmt.Sprintf("10.0.0.%d:80", i+1)}
		}
		p, err := RoundRobin{Stripes: 1}.New(eps)
		require.NoError(t, err)
		first, _ := p.Pick("")
		start := indexOf(p.Backends(), first)
		// Every backend once per cycle, in order, for 20 cycles.
		for c := 0; c < 20; c++ {
			seen := map[*Backend]bool{}
			for i := 0; i < n; i++ {
				var b *Backend
				if c == 0 && i == 0 {
					b = first
				} else {
					b, _ = p.Pick("")
				}
				assert.Equal(t, p.Backends()[(start+c*n+i)%n], b)
				seen[b] = true
			}
			assert.Len(t, seen, n)
		}
	}
}

func indexOf(bs []*Backend, b *Backend) int {
	for i, x := range bs {
		if x == b {
			return i
		}
	}
	return -1
}

func TestRoundRobinRandomStart(t *testing.T) {
	t.Parallel()
	// Fresh pickers start at a random backend: over 200 pickers of 10
	// backends, every backend comes first at least once (the chance that
	// one never does is 10 * 0.9^200, about 7e-9).
	eps := Addrs("a:1", "b:1", "c:1", "d:1", "e:1", "f:1", "g:1", "h:1", "i:1", "j:1")
	firsts := map[string]int{}
	for i := 0; i < 200; i++ {
		p, err := RoundRobin{Stripes: 1}.New(eps)
		require.NoError(t, err)
		b, _ := p.Pick("")
		firsts[b.Addr()]++
	}
	assert.Len(t, firsts, 10)
}

func TestRoundRobinStripedSpread(t *testing.T) {
	t.Parallel()
	const stripes = 16
	p, err := RoundRobin{Stripes: stripes}.New(Addrs("a:1", "b:1", "c:1", "d:1", "e:1", "f:1", "g:1"))
	require.NoError(t, err)
	var mu sync.Mutex
	counts := map[*Backend]int{}
	var wg sync.WaitGroup
	for g := 0; g < 32; g++ {
		wg.Add(1)
		go func(n int) {
			defer wg.Done()
			local := map[*Backend]int{}
			for i := 0; i < n; i++ {
				b, _ := p.Pick("")
				local[b]++
			}
			mu.Lock()
			for k, v := range local {
				counts[k] += v
			}
			mu.Unlock()
		}(1000 + g*37)
	}
	wg.Wait()
	// Each stripe is an exact cycle: two backends' counts differ by at most
	// one per stripe.
	lo, hi := 1<<30, 0
	for _, b := range p.Backends() {
		lo, hi = min(lo, counts[b]), max(hi, counts[b])
	}
	assert.LessOrEqual(t, hi-lo, stripes, "counts %v", counts)
}

func TestRoundRobinBadInput(t *testing.T) {
	t.Parallel()
	_, err := RoundRobin{}.New(nil)
	assert.ErrorIs(t, err, ErrNoEndpoints)
	_, err = RoundRobin{}.New(Addrs("a:1", "a:1"))
	assert.ErrorIs(t, err, ErrDuplicateEndpoint)
	_, err = RoundRobin{Stripes: -1}.New(Addrs("a:1"))
	assert.ErrorIs(t, err, ErrInvalidConfig)
	_, err = RoundRobin{}.Build([]*Backend{nil})
	assert.ErrorIs(t, err, ErrInvalidEndpoint)
	_, err = RoundRobin{}.Build([]*Backend{{}})
	assert.ErrorIs(t, err, ErrInvalidEndpoint, "a zero Backend was not made by NewBackends")
}
