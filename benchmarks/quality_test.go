package benchmarks

import (
	"math"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLoad(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		give    []string
		names   []string
		want    LoadStats
		wantErr string
	}{
		{
			name: "even", give: []string{"a", "b", "a", "b"}, names: []string{"a", "b"},
			want: LoadStats{MaxMean: 1, MinMean: 1, SDMean: 0},
		},
		{
			// mean 4/3: a has 2 (1.5x), b 2, c 0; sd = sqrt(((2/3)²·2 + (4/3)²)/3).
			name: "one idle", give: []string{"a", "b", "a", "b"}, names: []string{"a", "b", "c"},
			want: LoadStats{MaxMean: 1.5, MinMean: 0, SDMean: math.Sqrt((4.0/9*2+16.0/9)/3) / (4.0 / 3)},
		},
		{
			name: "unknown backend", give: []string{"a", "x"}, names: []string{"a"},
			wantErr: `key 1 assigned to "x"`,
		},
	}
	for _, tt := range tests {
		got, err := Load(tt.give, tt.names)
		if tt.wantErr != "" {
			assert.ErrorContains(t, err, tt.wantErr, tt.name)
			continue
		}
		require.NoError(t, err, tt.name)
		assert.InDelta(t, tt.want.MaxMean, got.MaxMean, 1e-12, tt.name)
		assert.InDelta(t, tt.want.MinMean, got.MinMean, 1e-12, tt.name)
		assert.InDelta(t, tt.want.SDMean, got.SDMean, 1e-12, tt.name)
	}
}

func TestMovement(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		before, after []string
		changed       string
		removal       bool
		n             int
		want          MoveStats
	}{
		{
			// c joins 2 backends: key 1 moves to c (fair), key 3 moves b -> a (stray).
			name: "add", before: []string{"a", "a", "b", "b"}, after: []string{"a", "c", "b", "a"},
			changed: "c", n: 2, want: MoveStats{Moved: 0.5, Ideal: 1.0 / 3, Stray: 0.25},
		},
		{
			// c leaves 3 backends: its keys move, nothing else does.
			name: "remove", before: []string{"a", "b", "c", "c"}, after: []string{"a", "b", "a", "b"},
			changed: "c", removal: true, n: 3, want: MoveStats{Moved: 0.5, Ideal: 1.0 / 3, Stray: 0},
		},
		{
			name: "remove with stray", before: []string{"a", "b", "c", "c"}, after: []string{"b", "b", "a", "a"},
			changed: "c", removal: true, n: 3, want: MoveStats{Moved: 0.75, Ideal: 1.0 / 3, Stray: 0.25},
		},
	}
	for _, tt := range tests {
		got := Movement(tt.before, tt.after, tt.changed, tt.removal, tt.n)
		assert.InDelta(t, tt.want.Moved, got.Moved, 1e-12, tt.name)
		assert.InDelta(t, tt.want.Ideal, got.Ideal, 1e-12, tt.name)
		assert.InDelta(t, tt.want.Stray, got.Stray, 1e-12, tt.name)
		assert.InDelta(t, tt.want.Moved/tt.want.Ideal, got.Ratio(), 1e-12, tt.name)
	}
}

// On a small input, rings and jump move no key between backends that stay,
// and move about their fair share; Maglev moves some keys between others.
func TestMeasureHash(t *testing.T) {
	t.Parallel()
	keys := Keys(5, 20000)
	for _, id := range []string{"lb-ring", "go-jump", "go-rendezvous", "lb-maglev"} {
		im, ok := Lookup(Hash, id)
		require.True(t, ok)
		q := MeasureHash(im, 10, keys)
		require.NoError(t, q.Err, id)
		assert.Equal(t, 10, q.N)
		assert.Less(t, q.Load.MaxMean, 1.25, id)
		assert.Greater(t, q.Load.MinMean, 0.75, id)
		assert.InDelta(t, 1, q.Add.Ratio(), 0.2, id)
		assert.InDelta(t, 1, q.Remove.Ratio(), 0.2, id)
		if id == "lb-maglev" {
			assert.Positive(t, q.Add.Stray, "Maglev trades some stray moves for balance")
		} else {
			assert.Zero(t, q.Add.Stray, id)
			assert.Zero(t, q.Remove.Stray, id)
		}
	}
	// A row that cannot run at N says why and builds nothing.
	im, _ := Lookup(Hash, "buraksezer-p271")
	q := MeasureHash(im, 1000, keys)
	assert.ErrorContains(t, q.Err, "New panics")
}

// nginx's example: weights {5,1,1} give a a b a c a a, exactly, in lb and
// in smallnest/weighted (lb from a random point of the period).
func TestMeasureWeightedNginx(t *testing.T) {
	t.Parallel()
	ws := WeightSets()[0]
	require.Equal(t, 7, ws.Period())
	for _, id := range []string{"lb", "smallnest-SW"} {
		im, ok := Lookup(WeightedRR, id)
		require.True(t, ok)
		q, err := MeasureWeighted(im, ws, 70*ws.Period())
		require.NoError(t, err, id)
		assert.Zero(t, q.ShareErr, id)
		assert.Equal(t, 3, q.IdealRun, id)
		assert.Equal(t, 4, q.LongestRun, "%s: a a | a a across the period's end", id)
		assert.Len(t, q.First, 7, id)
		assert.Contains(t, "aabacaaaabacaa", q.First, "%s: a rotation of nginx's period", id)
	}
	im, _ := Lookup(WeightedRR, "smallnest-SW")
	q, err := MeasureWeighted(im, ws, 7)
	require.NoError(t, err)
	assert.Equal(t, "aabacaa", q.First)
}

func TestMeasureWeightedRandom(t *testing.T) {
	t.Parallel()
	ws := WeightSet{Name: "1..3", Weights: []int{1, 2, 3}}
	for _, im := range ImplsOf(WeightedRandom) {
		q, err := MeasureWeighted(im, ws, 60000)
		require.NoError(t, err, im.ID)
		assert.Less(t, q.ShareErr, 0.1, "%s: shares within 10%% over 60,000 picks", im.ID)
		assert.Empty(t, strings.Trim(q.First, "abc"))
	}
}

func TestPeriod(t *testing.T) {
	t.Parallel()
	tests := []struct {
		give []int
		want int
	}{
		{give: []int{5, 1, 1}, want: 7},
		{give: []int{2, 4, 6}, want: 6},
		{give: []int{3}, want: 1},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, WeightSet{Weights: tt.give}.Period(), "%v", tt.give)
	}
}
