package lb

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

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
