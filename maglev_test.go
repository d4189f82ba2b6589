package lb

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Maglev trades some movement for balance (the paper's section 3.4): when
// a backend joins, the others' turns shift and some keys move between old
// backends. The extra movement shrinks as the table grows: measured with
// these keys, 1.60x the ideal at 65,537 slots, 1.37x at 131,071, 1.25x at
// 262,139, 1.15x at 655,373.
func TestMaglevBalanceAndMovement(t *testing.T) {
	t.Parallel()
	keys := randomKeys(1000000, 1)
	eps := benchEndpoints(101, false)
	for _, tt := range []struct {
		size                  int
		maxBalance, maxMoveUp float64
	}{
		{size: 0, maxBalance: 1.03, maxMoveUp: 1.7},
		{size: 655373, maxBalance: 1.03, maxMoveUp: 1.2},
	} {
		before, err := Maglev{TableSize: tt.size}.New(eps[:100])
		require.NoError(t, err)
		after, err := Maglev{TableSize: tt.size}.New(eps)
		require.NoError(t, err)
		pb, pa := placements(before, keys), placements(after, keys)

		balance := maxOverMean(pb, 100)
		t.Logf("maglev (%d slots), 1M keys over 100 backends: max/mean %.4f", before.TableSize(), balance)
		assert.LessOrEqual(t, balance, tt.maxBalance)

		moved, stray := 0, 0
		for i := range keys {
			if pb[i] != pa[i] {
				moved++
				if pa[i] != eps[100].Addr {
					stray++
				}
			}
		}
		ratio := float64(moved) / float64(len(keys)) * 101
		t.Logf("maglev (%d slots), adding a 101st backend: %d keys moved (%.4f x ideal 1/101), %d between old backends",
			before.TableSize(), moved, ratio, stray)
		assert.LessOrEqual(t, ratio, tt.maxMoveUp)
		assert.GreaterOrEqual(t, ratio, 0.9, "the newcomer gets about its share")
	}
}

// Past MaglevSmallBackends the default table is MaglevLargeTableSize
// slots (4 MiB): adding a 1,001st backend moves under 3x the ideal share
// (6.4x with 65,537 slots).
func TestMaglevLargeDefault(t *testing.T) {
	t.Parallel()
	keys := randomKeys(100000, 13)
	eps := benchEndpoints(1001, false)
	before, err := Maglev{}.New(eps[:1000])
	require.NoError(t, err)
	after, err := Maglev{}.New(eps)
	require.NoError(t, err)
	assert.Equal(t, MaglevLargeTableSize, before.TableSize())
	assert.LessOrEqual(t, before.MemoryBytes(), 4<<20+1000*8)
	pb, pa := placements(before, keys), placements(after, keys)
	moved := 0
	for i := range keys {
		if pb[i] != pa[i] {
			moved++
		}
	}
	ratio := float64(moved) / float64(len(keys)) * 1001
	t.Logf("maglev N=1000 -> 1001 (%d slots): %.3f x ideal moved", before.TableSize(), ratio)
	assert.LessOrEqual(t, ratio, 3.0)
	for _, tt := range []struct{ n, want int }{{1, 65537}, {MaglevSmallBackends, 65537}, {MaglevSmallBackends + 1, MaglevLargeTableSize}, {10000, MaglevLargeTableSize}} {
		assert.Equal(t, tt.want, defaultMaglevSize(tt.n), "n=%d", tt.n)
	}
	big, err := Maglev{TableSize: nextPrime(70000)}.New(benchEndpoints(70000, false)) // past 16-bit slots
	require.NoError(t, err)
	b, _ := big.Pick("k")
	assert.Equal(t, big.AppendPreferences(nil, "k", 1)[0], b)
}

func TestMaglevTableShares(t *testing.T) {
	t.Parallel()
	// Slot counts are exact shares, up to one slot per backend and round.
	p, err := Maglev{TableSize: 65537}.New(benchEndpoints(100, false))
	require.NoError(t, err)
	counts := map[*Backend]int{}
	for _, b := range slotBackends(p) {
		counts[b]++
	}
	require.Len(t, counts, 100)
	for b, c := range counts {
		assert.InDelta(t, 655.37, c, 1, b.Addr())
	}
}

func TestMaglevWeights(t *testing.T) {
	t.Parallel()
	p, err := Maglev{TableSize: 10007}.New([]Endpoint{{Addr: "a:1", Weight: 1}, {Addr: "b:1", Weight: 2}, {Addr: "c:1", Weight: 5}})
	require.NoError(t, err)
	counts := map[string]int{}
	for _, b := range slotBackends(p) {
		counts[b.Addr()]++
	}
	assert.InDelta(t, 10007.0/8, counts["a:1"], 3)
	assert.InDelta(t, 10007.0*2/8, counts["b:1"], 3)
	assert.InDelta(t, 10007.0*5/8, counts["c:1"], 3)
}

func TestMaglevIndependentOfInputOrder(t *testing.T) {
	t.Parallel()
	eps := benchEndpoints(30, true)
	shuffled := append([]Endpoint(nil), eps...)
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	p1, err := Maglev{TableSize: 4099}.New(eps)
	require.NoError(t, err)
	p2, err := Maglev{TableSize: 4099}.New(shuffled)
	require.NoError(t, err)
	t1, t2 := slotBackends(p1), slotBackends(p2)
	for i := range t1 {
		require.Equal(t, t1[i].Addr(), t2[i].Addr(), "slot %d", i)
	}
}

func TestMaglevPreferences(t *testing.T) {
	t.Parallel()
	// The second choice of one backend's keys spreads over the others
	// about evenly: Maglev's preference list keeps its balance.
	const n = 20
	p, err := Maglev{}.New(benchEndpoints(n, false))
	require.NoError(t, err)
	keys := randomKeys(400000, 9)
	second := map[string]map[string]int{}
	buf := make([]*Backend, 0, 3)
	for _, k := range keys {
		prefs := p.AppendPreferences(buf[:0], k, 3)
		require.Len(t, prefs, 3)
		b, _ := p.Pick(k)
		require.Equal(t, b, prefs[0])
		require.NotEqual(t, prefs[0], prefs[1])
		require.NotEqual(t, prefs[1], prefs[2])
		require.NotEqual(t, prefs[0], prefs[2])
		if second[prefs[0].Addr()] == nil {
			second[prefs[0].Addr()] = map[string]int{}
		}
		second[prefs[0].Addr()][prefs[1].Addr()]++
	}
	worst := 0.0
	for _, m := range second {
		total, mx := 0, 0
		for _, c := range m {
			total += c
			mx = max(mx, c)
		}
		assert.Len(t, m, n-1)
		worst = max(worst, float64(mx)/(float64(total)/float64(n-1)))
	}
	t.Logf("maglev second choices: worst max/mean %.3f over %d backends' keys", worst, n)
	assert.LessOrEqual(t, worst, 1.5)
}

func TestMaglevBadConfig(t *testing.T) {
	t.Parallel()
	for _, size := range []int{-1, 1, 4, 65536, MaxMaglevTableSize + 1} {
		_, err := Maglev{TableSize: size}.New(Addrs("a:1"))
		assert.ErrorIs(t, err, ErrInvalidConfig, "size %d", size)
	}
	_, err := Maglev{TableSize: 3}.New(Addrs("a:1", "b:1", "c:1", "d:1"))
	assert.ErrorIs(t, err, ErrInvalidConfig)
	assert.Contains(t, err.Error(), "smaller than the number of backends")
	_, err = Maglev{}.New(nil)
	assert.ErrorIs(t, err, ErrNoEndpoints)
}

func TestMaglevEmptyKey(t *testing.T) {
	t.Parallel()
	p, err := Maglev{TableSize: 1009}.New(benchEndpoints(4, false))
	require.NoError(t, err)
	for addr, s := range shares(t, p, 100000) {
		assert.InDelta(t, 0.25, s, 0.02, fmt.Sprint(addr))
	}
}

// slotBackends returns the backend of every slot.
func slotBackends(p *MaglevPicker) []*Backend {
	out := make([]*Backend, p.TableSize())
	for s := range out {
		out[s] = p.backends[p.owner(s)]
	}
	return out
}
