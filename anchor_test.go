package lb

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func sqrt(x float64) float64 {
	z := x
	for i := 0; i < 50; i++ {
		z = (z + x/z) / 2
	}
	return z
}

func anchorPlacements(t *testing.T, a *Anchor, eps []Endpoint, keys []string) []string {
	t.Helper()
	p, err := a.New(eps)
	require.NoError(t, err)
	return placements(p, keys)
}

func without(eps []Endpoint, addr string) []Endpoint {
	var out []Endpoint
	for _, e := range eps {
		if e.Addr != addr {
			out = append(out, e)
		}
	}
	return out
}

// Removing a backend and adding it back restores every key; so does a
// fresh layout of the same set when the history only appended.
func TestAnchorHistory(t *testing.T) {
	t.Parallel()
	keys := randomKeys(50000, 32)
	eps := benchEndpoints(30, true)
	var a Anchor
	first := anchorPlacements(t, &a, eps, keys)
	two := without(without(eps, eps[3].Addr), eps[20].Addr) // 10.0.0.20 is removed first, by name
	anchorPlacements(t, &a, two, keys)
	anchorPlacements(t, &a, without(eps, eps[20].Addr), keys)
	assert.Equal(t, first, anchorPlacements(t, &a, eps, keys), "removed and restored in reverse order")
	anchorPlacements(t, &a, two, keys)
	assert.Equal(t, first, anchorPlacements(t, &a, eps, keys), "both restored in one update")

	// Growing by appending names in order agrees with a fresh layout.
	grown := make([]Endpoint, 40)
	for i := range grown {
		grown[i] = Endpoint{Addr: fmt.Sprintf("node-%03d:80", i), Weight: 1 + i%3}
	}
	var b, fresh Anchor
	anchorPlacements(t, &b, grown[:30], keys)
	assert.Equal(t, anchorPlacements(t, &fresh, grown, keys), anchorPlacements(t, &b, grown, keys))

	// A failed Build leaves the history alone.
	_, err := a.New([]Endpoint{{Addr: "x:1"}, {Addr: "x:1"}})
	require.Error(t, err)
	assert.Equal(t, first, anchorPlacements(t, &a, eps, keys))
}

// Weights are buckets: shares follow them, and a weight change moves keys
// only to or from that backend.
func TestAnchorWeights(t *testing.T) {
	t.Parallel()
	keys := randomKeys(200000, 33)
	eps := []Endpoint{{Addr: "a:1", Weight: 1}, {Addr: "b:1", Weight: 3}, {Addr: "c:1", Weight: 4}}
	var a Anchor
	before := anchorPlacements(t, &a, eps, keys)
	counts := map[string]int{}
	for _, x := range before {
		counts[x]++
	}
	assert.InDelta(t, 0.125, float64(counts["a:1"])/200000, 0.01)
	assert.InDelta(t, 0.375, float64(counts["b:1"])/200000, 0.01)
	eps[1].Weight = 1
	after := anchorPlacements(t, &a, eps, keys)
	for i := range keys {
		if before[i] != after[i] {
			require.Equal(t, "b:1", before[i], "only b's keys move when b's weight drops")
		}
	}
	eps[1].Weight = 3
	assert.Equal(t, before, anchorPlacements(t, &a, eps, keys), "restored")
}

// The preference list: the second is where a Build without the first
// sends the key; the list is distinct and starts with Pick's answer.
func TestAnchorPreferences(t *testing.T) {
	t.Parallel()
	eps := benchEndpoints(12, true)
	keys := randomKeys(3000, 34)
	for _, k := range keys {
		var a Anchor
		p, err := a.New(eps)
		require.NoError(t, err)
		prefs := p.AppendPreferences(nil, k, 4)
		require.Len(t, prefs, 4)
		b, _ := p.Pick(k)
		require.Equal(t, b, prefs[0])
		seen := map[*Backend]bool{}
		for _, x := range prefs {
			require.False(t, seen[x])
			seen[x] = true
		}
		// Remove them one at a time: the key follows the list.
		rest := eps
		for j := 0; j < 3; j++ {
			rest = without(rest, prefs[j].Addr())
			q, err := a.New(rest)
			require.NoError(t, err)
			got, _ := q.Pick(k)
			require.Equal(t, prefs[j+1].Addr(), got.Addr(), "key %q after removing %d", k, j+1)
		}
	}
	var a Anchor
	p, err := a.New(Addrs("a:1", "b:1"))
	require.NoError(t, err)
	assert.Len(t, p.AppendPreferences(nil, "k", 5), 2)
	assert.Empty(t, p.AppendPreferences(nil, "k", 0))
}

func TestAnchorBadInput(t *testing.T) {
	t.Parallel()
	var a Anchor
	_, err := a.New([]Endpoint{{Addr: "a:1", Weight: MaxWeight}, {Addr: "b:1", Weight: 1}})
	require.ErrorIs(t, err, ErrInvalidConfig)
	assert.Contains(t, err.Error(), "MaxAnchorBuckets")
	_, err = a.New(nil)
	assert.ErrorIs(t, err, ErrNoEndpoints)
	_, err = a.Build(nil)
	assert.ErrorIs(t, err, ErrNoEndpoints)
}

func TestAnchorEmptyKey(t *testing.T) {
	t.Parallel()
	var a Anchor
	p, err := a.New(benchEndpoints(4, false))
	require.NoError(t, err)
	for addr, s := range shares(t, p, 100000) {
		assert.InDelta(t, 0.25, s, 0.02, fmt.Sprint(addr))
	}
}

// FuzzAnchor builds an Anchor's history from any sequence of sets (adds,
// removals, weight changes) and checks its invariants at every step: every
// key maps to a live backend, a removal moves only the removed backend's
// keys (each to its second preference), an addition moves keys only to
// the new backend.
//
// ops is a list of bytes: the low 5 bits name one of 32 backends; the top
// bits say add it (weight 1-3), or remove it.
func FuzzAnchor(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 0x80 | 1, 4, 0x40 | 2, 0x80 | 0, 1}, "user-1")
	f.Add([]byte{5, 6, 7, 0x80 | 5, 0x80 | 6, 5, 6}, "")
	f.Add([]byte{1, 0xc1, 2, 0x82, 3}, "k")
	f.Fuzz(func(t *testing.T, ops []byte, key string) {
		if len(ops) > 64 {
			ops = ops[:64]
		}
		var a Anchor
		set := map[int]int{} // backend -> weight
		var prev *AnchorPicker
		probe := []string{key, key + "-2", key + "-3", "x" + key}
		for _, op := range ops {
			i := int(op & 31)
			change, added, removed := "", false, false
			switch {
			case op&0x80 != 0 && set[i] != 0:
				delete(set, i)
				change, removed = fmt.Sprintf("b%d:1", i), true
			case op&0x80 == 0:
				w := 1 + int(op>>5)%3
				if set[i] == 0 {
					change, added = fmt.Sprintf("b%d:1", i), true
				}
				set[i] = w
			}
			if len(set) == 0 {
				continue
			}
			var eps []Endpoint
			for j := 0; j < 32; j++ {
				if w := set[j]; w != 0 {
					eps = append(eps, Endpoint{Addr: fmt.Sprintf("b%d:1", j), Weight: w})
				}
			}
			p, err := a.New(eps)
			if err != nil {
				t.Fatal(err)
			}
			members := map[string]bool{}
			for _, b := range p.Backends() {
				members[b.Addr()] = true
			}
			for _, k := range probe {
				b, _ := p.Pick(k)
				if !members[b.Addr()] {
					t.Fatalf("key %q on %s, not a member", k, b.Addr())
				}
				if prev == nil || k == "" {
					continue
				}
				old, _ := prev.Pick(k)
				weightsSame := len(prev.Backends()) == len(p.Backends())+boolInt(removed)-boolInt(added)
				switch {
				case removed && old.Addr() == change:
					want := prev.AppendPreferences(nil, k, 2)[1]
					if b.Addr() != want.Addr() {
						t.Fatalf("removing %s sent %q to %s, not its second preference %s", change, k, b.Addr(), want.Addr())
					}
				case removed && weightsSame && old.Addr() != b.Addr():
					t.Fatalf("removing %s moved %q from %s to %s", change, k, old.Addr(), b.Addr())
				case added && old.Addr() != b.Addr() && b.Addr() != change:
					t.Fatalf("adding %s moved %q from %s to %s", change, k, old.Addr(), b.Addr())
				}
			}
			prev = p
		}
	})
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
