package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The tolerances of the validation, on comparisons made up to sit on
// either side of them.
func TestComparisonCheck(t *testing.T) {
	t.Parallel()
	backends := []string{"b00", "b01", "b02", "b03"}
	sims := func(runs ...[]float64) Figures {
		f := Figures{RunShares: runs, Shares: runs[0]}
		return f
	}
	even := []float64{0.25, 0.25, 0.25, 0.25}
	tests := []struct {
		name      string
		alike     [][]int
		sim, real Figures
		want      []string // what the violations mention; none: it holds
	}{
		{"equal", [][]int{{0, 1, 2, 3}}, sims(even), Figures{RunShares: [][]float64{even}, Attempts: 1e6}, nil},
		{
			"a share 3 points off, with many attempts", [][]int{{0}, {1, 2, 3}},
			sims([]float64{0.10, 0.30, 0.30, 0.30}), Figures{RunShares: [][]float64{{0.13, 0.29, 0.29, 0.29}}, Attempts: 1e6},
			[]string{"b00's share: lbsim 10.0%, real 13.0% (tolerance ±2.0 points)", "b01-b03's share"},
		},
		{
			"2 points off is within", [][]int{{0}, {1, 2, 3}},
			sims([]float64{0.10, 0.30, 0.30, 0.30}), Figures{RunShares: [][]float64{{0.119, 0.297, 0.292, 0.292}}, Attempts: 1e6}, nil,
		},
		{
			"few attempts widen the tolerance", [][]int{{0}, {1, 2, 3}},
			sims([]float64{0.10, 0.30, 0.30, 0.30}), Figures{RunShares: [][]float64{{0.14, 0.28, 0.29, 0.29}}, Attempts: 400}, nil,
		},
		{
			"alike backends split by chance", [][]int{{0, 1, 2, 3}},
			sims(even), Figures{RunShares: [][]float64{{0.40, 0.10, 0.25, 0.25}}, Attempts: 1e6}, nil,
		},
		{
			"a spread over seeds widens the tolerance", [][]int{{0}, {1, 2, 3}},
			sims([]float64{0.05, 0.95 / 3, 0.95 / 3, 0.95 / 3}, []float64{0.15, 0.85 / 3, 0.85 / 3, 0.85 / 3}),
			Figures{RunShares: [][]float64{{0.18, 0.82 / 3, 0.82 / 3, 0.82 / 3}}, Attempts: 1e6}, nil,
		},
		{"counts within 5", [][]int{{0, 1, 2, 3}}, Figures{RunShares: [][]float64{even}, Retried: 4, Failed: 1}, Figures{RunShares: [][]float64{even}, Retried: 9, Failed: 6, Attempts: 1e6}, nil},
		{"counts within 50%", [][]int{{0, 1, 2, 3}}, Figures{RunShares: [][]float64{even}, Ejected: 60}, Figures{RunShares: [][]float64{even}, Ejected: 100, Attempts: 1e6}, nil},
		{
			"counts off", [][]int{{0, 1, 2, 3}}, Figures{RunShares: [][]float64{even}, Retried: 92.6, Ejected: 0},
			Figures{RunShares: [][]float64{even}, Retried: 14, Ejected: 8, Attempts: 1e6},
			[]string{"retried: lbsim 92.6, real 14", "ejected: lbsim 0.0, real 8"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := Comparison{Backends: backends, Alike: tt.alike, Sim: tt.sim, Real: tt.real}
			bad := c.Check()
			if tt.want == nil {
				assert.Empty(t, bad)
				return
			}
			require.Len(t, bad, len(tt.want), "%v", bad)
			for i, w := range tt.want {
				assert.Contains(t, bad[i], w)
			}
		})
	}
}

// Backends of one group that the same events name are alike; the focus
// is the first event's backend, or the slowest.
func TestAlikeAndFocus(t *testing.T) {
	t.Parallel()
	sc, err := ParseScenario(strings.NewReader(`{
	  "name": "t", "duration": "2s", "load": {"rate": 10},
	  "backends": [{"count": 3, "median": "10ms"}, {"median": "50ms"}],
	  "events": [{"at": "1s", "kind": "kill", "backend": "b01"}]
	}`))
	require.NoError(t, err)
	assert.Equal(t, [][]int{{0, 2}, {1}, {3}}, sc.alike())
	assert.Equal(t, 1, sc.focus())
	sc.Events = nil
	assert.Equal(t, 3, sc.focus(), "no event: the slowest")
}

// A real run is disturbed when its fleet went without a CPU past half the
// scenario's shortest timer, or when its calls' overhead passed half the
// fastest service time.
func TestDisturbed(t *testing.T) {
	t.Parallel()
	sc, err := ParseScenario(strings.NewReader(`{
	  "name": "t", "duration": "2s", "load": {"rate": 10, "timeout": "1s"},
	  "transport": {"per_try_timeout": "100ms"},
	  "backends": [{"count": 2, "median": "10ms"}]
	}`))
	require.NoError(t, err)
	assert.Equal(t, int64(50e6), int64(sc.maxLag()))
	ms := func(n int64) int64 { return n * 1e6 }
	assert.Empty(t, sc.disturbed(&Result{lag: 40e6, overheads: []int64{ms(1), ms(2), ms(3)}}))
	assert.Contains(t, sc.disturbed(&Result{lag: 60e6, overheads: []int64{ms(1)}}), "without a CPU for up to 60ms")
	assert.Contains(t, sc.disturbed(&Result{lag: 1e6, overheads: []int64{ms(6), ms(7), ms(8)}}), "took 7ms more than their service time")
}
