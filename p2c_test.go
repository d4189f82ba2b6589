package lb

import (
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestP2CPrefersLessLoaded(t *testing.T) {
	t.Parallel()
	bs, err := NewBackends(Addrs("a:1", "b:1", "c:1", "d:1"))
	require.NoError(t, err)
	p, err := P2C{}.Build(bs)
	require.NoError(t, err)
	// a is idle, the others busy: a wins whenever it is one of the two
	// drawn, that is with probability 1/2 (3 of the 6 pairs).
	for _, b := range bs[1:] {
		for i := 0; i < 10; i++ {
			b.begin()
		}
	}
	got := shares(t, p, 100000)
	assert.InDelta(t, 0.5, got["a:1"], 0.01)
	// The most loaded one never wins.
	for i := 0; i < 5; i++ {
		bs[3].begin()
	}
	got = shares(t, p, 100000)
	assert.Zero(t, got["d:1"])
}

func TestP2CLatencyBreaksTies(t *testing.T) {
	t.Parallel()
	bs, err := NewBackends(Addrs("fast:1", "slow:1"))
	require.NoError(t, err)
	p, err := P2C{}.Build(bs)
	require.NoError(t, err)
	bs[0].begin()
	bs[0].observe(nil, time.Millisecond)
	bs[1].begin()
	bs[1].observe(nil, 50*time.Millisecond)
	assert.Equal(t, 1.0, shares(t, p, 1000)["fast:1"])
	// Cost is (in flight + 1) × latency: fast with 1 in flight (2 × 1 ms)
	// still beats slow (1 × 50 ms); with 50 in flight (51 ms) it loses.
	bs[0].begin()
	assert.Equal(t, 1.0, shares(t, p, 1000)["fast:1"])
	for i := 0; i < 49; i++ {
		bs[0].begin()
	}
	assert.Equal(t, 1.0, shares(t, p, 1000)["slow:1"])
}

// A backend that fails fast does not win picks by looking idle and fast:
// its failure score outweighs its low latency and in-flight count.
func TestP2CPenalisesFailures(t *testing.T) {
	t.Parallel()
	bs, err := NewBackends(Addrs("good:1", "bad:1", "good2:1"))
	require.NoError(t, err)
	p, err := P2C{}.Build(bs)
	require.NoError(t, err)
	for i := 0; i < 20; i++ {
		bs[0].begin()
		bs[0].observe(nil, 10*time.Millisecond)
		bs[2].begin()
		bs[2].observe(nil, 10*time.Millisecond)
		bs[1].begin()
		bs[1].observe(errors.New("503"), 100*time.Microsecond) // fast failures
	}
	assert.Greater(t, bs[1].FailureScore(), 0.99)
	assert.Equal(t, 10*time.Millisecond, bs[0].Latency())
	assert.GreaterOrEqual(t, bs[1].Latency(), time.Duration(0))
	// Even with the good ones busy, the bad one gets only the exploration
	// trickle (1 in 64 of the picks it is drawn in).
	for i := 0; i < 5; i++ {
		bs[0].begin()
		bs[2].begin()
	}
	got := shares(t, p, 100000)
	assert.Less(t, got["bad:1"], 0.02, "fast failures attract no traffic")
	assert.Greater(t, got["bad:1"], 0.005, "but a trickle, to see it recover")
	// It recovers as its calls succeed.
	for i := 0; i < 40; i++ {
		bs[1].begin()
		bs[1].observe(nil, 10*time.Millisecond)
	}
	assert.Zero(t, bs[1].FailureScore())
	got = shares(t, p, 100000)
	assert.Greater(t, got["bad:1"], 0.5, "recovered and idle, it is preferred again")
}

func TestP2CWeighted(t *testing.T) {
	t.Parallel()
	p, err := P2C{}.New([]Endpoint{{Addr: "a:1", Weight: 3}, {Addr: "b:1"}, {Addr: "c:1"}})
	require.NoError(t, err)
	// Idle and tied (in flight per weight + 1 is 1 for each): the first of
	// two draws in proportion to weight wins, so a (weight 3 of 5) comes
	// first with probability 3/5.
	got := shares(t, p, 100000)
	assert.InDelta(t, 0.6, got["a:1"], 0.01)
	// Load per unit of weight: a with 2 in flight (2/3 per weight) still
	// beats b and c with 1 each.
	bs := p.backends
	bs[0].begin()
	bs[0].begin()
	bs[1].begin()
	bs[2].begin()
	got = shares(t, p, 20000)
	assert.Greater(t, got["a:1"], 0.6)
}

func TestP2COneBackend(t *testing.T) {
	t.Parallel()
	p, err := P2C{}.New(Addrs("only:1"))
	require.NoError(t, err)
	b, err := p.Pick("")
	require.NoError(t, err)
	assert.Equal(t, "only:1", b.Addr())
}

// Bounded loads do not spill keys onto a backend because it fails fast:
// its capacity for spilled keys shrinks with its failure score.
func TestBoundedLoadsAvoidFailingBackends(t *testing.T) {
	t.Parallel()
	bs, err := NewBackends(Addrs("a:1", "b:1", "c:1", "d:1", "e:1"))
	require.NoError(t, err)
	for _, b := range bs {
		b.group.track = true
	}
	p, err := Ring{LoadFactor: 1.25}.build(bs)
	require.NoError(t, err)
	bad := bs[3]
	for i := 0; i < 30; i++ {
		bad.begin()
		bad.observe(errors.New("503"), time.Millisecond)
	}
	// Load a, b and c so that their keys spill: 8 calls in flight each,
	// against a capacity of ceil(1.25 × 25 / 5) = 7; e is idle, and takes
	// them, not d.
	for _, b := range bs[:3] {
		for i := 0; i < 8; i++ {
			b.begin()
		}
	}
	spilled := map[string]int{}
	for i := 0; i < 2000; i++ {
		k := strconv.Itoa(i)
		owner := p.AppendPreferences(nil, k, 1)[0]
		got, _ := p.Pick(k)
		if got != owner {
			spilled[got.Addr()]++
		}
	}
	assert.Zero(t, spilled["d:1"], "no key spills onto the failing backend: %v", spilled)
	assert.Positive(t, spilled["e:1"], "keys spill, to the healthy idle one")
	// Recovered, it takes spilled keys again.
	for i := 0; i < 40; i++ {
		bad.begin()
		bad.observe(nil, time.Millisecond)
	}
	spilled = map[string]int{}
	for i := 0; i < 2000; i++ {
		k := strconv.Itoa(i)
		if got, _ := p.Pick(k); got != p.AppendPreferences(nil, k, 1)[0] {
			spilled[got.Addr()]++
		}
	}
	assert.Positive(t, spilled["d:1"])
}
