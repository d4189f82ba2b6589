package benchmarks

import (
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestImplsAreDescribed(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for _, im := range Impls() {
		id := string(im.Workload) + "/" + im.ID
		assert.False(t, seen[id], "duplicate row %s", id)
		seen[id] = true
		assert.NotEmpty(t, im.Library, id)
		assert.NotEmpty(t, im.Module, id)
		assert.NotEmpty(t, im.Settings, id)
		assert.NotContains(t, im.ID, "/", id)
		if im.Workload == Hash {
			assert.NotNil(t, im.NewKeyed, id)
			assert.Contains(t, []string{"ring", "maglev", "jump", "rendezvous"}, im.Kind, id)
		} else {
			assert.NotNil(t, im.NewSeq, id)
		}
	}
	for _, w := range Workloads {
		rows := ImplsOf(w)
		require.NotEmpty(t, rows, w)
		assert.True(t, slices.ContainsFunc(rows, func(im Impl) bool { return im.Lb }), "%s has no lb row", w)
		assert.True(t, slices.ContainsFunc(rows, func(im Impl) bool { return !im.Lb && !im.Baseline }), "%s has no peer", w)
	}
}

// Every hash row maps each key to one of the backends, the same one every
// time, and every key-less row returns backends only.
func TestImplsReturnMembers(t *testing.T) {
	t.Parallel()
	const n = 7
	names := Names(n)
	keys := Keys(3, 500)
	for _, im := range Impls() {
		im := im
		t.Run(string(im.Workload)+"/"+im.ID, func(t *testing.T) {
			t.Parallel()
			require.NoError(t, im.Supports(n))
			if im.Workload == Hash {
				p, err := im.NewKeyed(names)
				require.NoError(t, err)
				got := map[string]int{}
				for _, k := range keys {
					b := p.Get(k)
					require.Contains(t, names, b, "key %q", k)
					require.Equal(t, b, p.Get(k), "key %q moved between two lookups", k)
					got[b]++
				}
				assert.GreaterOrEqual(t, len(got), 2, "500 keys all went to one backend")
				return
			}
			var weights []int
			if im.Workload == WeightedRR || im.Workload == WeightedRandom {
				weights = Weights(n)
			}
			p, err := im.NewSeq(names, weights)
			require.NoError(t, err)
			for i := 0; i < 300; i++ {
				require.Contains(t, names, p.Next())
			}
		})
	}
}

// Round robin rows give every backend exactly one pick per cycle, from
// wherever they start.
func TestRoundRobinRowsAreExact(t *testing.T) {
	t.Parallel()
	names := Names(5)
	for _, im := range ImplsOf(RoundRobin) {
		p, err := im.NewSeq(names, nil)
		require.NoError(t, err, im.ID)
		count := map[string]int{}
		for i := 0; i < 5*40; i++ {
			count[p.Next()]++
		}
		for _, name := range names {
			assert.Equal(t, 40, count[name], "%s: picks of %s", im.ID, name)
		}
	}
}

func TestLimits(t *testing.T) {
	t.Parallel()
	tests := []struct {
		give    string
		n       int
		wantErr string
	}{
		{give: "buraksezer-p271", n: 100},
		{give: "buraksezer-p271", n: 1000, wantErr: "New panics"},
		{give: "buraksezer-p65537", n: 1000},
		{give: "stathat-r20", n: 1000},
		{give: "stathat-r1024", n: 101},
		{give: "stathat-r1024", n: 1000, wantErr: "not run"},
	}
	for _, tt := range tests {
		im, ok := Lookup(Hash, tt.give)
		require.True(t, ok, tt.give)
		err := im.Supports(tt.n)
		if tt.wantErr == "" {
			assert.NoError(t, err, "%s at %d", tt.give, tt.n)
		} else {
			assert.ErrorContains(t, err, tt.wantErr, "%s at %d", tt.give, tt.n)
		}
	}
	// The constructor reports the library's panic as an error.
	_, err := NewBuraksezer(Names(300), 271)
	assert.ErrorContains(t, err, "New panics")
}

func TestRecoverError(t *testing.T) {
	t.Parallel()
	f := func() (err error) {
		defer recoverError(&err)
		panic("not enough room")
	}
	assert.EqualError(t, f(), "panics: not enough room")
}

func TestKeys(t *testing.T) {
	t.Parallel()
	a, b := Keys(1, 1000), Keys(1, 1000)
	assert.Equal(t, a, b, "same seed, same keys")
	assert.NotEqual(t, a, Keys(2, 1000))
	distinct := map[string]bool{}
	for _, k := range a {
		assert.GreaterOrEqual(t, len(k), 16)
		assert.LessOrEqual(t, len(k), 32)
		assert.Empty(t, strings.Trim(k, "abcdefghijklmnopqrstuvwxyz"))
		distinct[k] = true
	}
	assert.Len(t, distinct, 1000)
	assert.Equal(t, []byte(a[5]), KeyBytes(a)[5])
}

func TestNames(t *testing.T) {
	t.Parallel()
	assert.Equal(t, []string{"10.0.0.0:8080", "10.0.0.1:8080"}, Names(2))
	assert.Equal(t, "10.0.1.4:8080", Name(260))
	assert.Equal(t, []int{1, 2, 3, 4, 5, 1}, Weights(6))
}

func TestLbMemory(t *testing.T) {
	t.Parallel()
	for _, id := range LbMemoryRows {
		b, err := LbMemory(id, 100)
		require.NoError(t, err, id)
		assert.Positive(t, b, id)
	}
	_, err := LbMemory("go-maglev", 10)
	assert.ErrorContains(t, err, "no memory figure")
}
