package main

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Subsetting with ordinals: every backend has the same number of clients,
// and replacing backends moves only the pairs that must move; without
// ordinals clients per backend are as even, and more pairs move.
func TestSubsetting(t *testing.T) {
	t.Parallel()
	fleet := func(ordinals bool) *Scenario {
		return testScenario(t, 32, func(sc *Scenario) {
			sc.Clients = 64
			sc.Duration = Duration(time.Second)
			sc.Subset = &SubsetConfig{Size: 4, Ordinals: ordinals}
			sc.Backends = append(sc.Backends, BackendGroup{Count: 4, Median: msd(10), Absent: true})
			sc.Events = []Event{{At: msd(500), Kind: evReplace, Count: 4}}
		})
	}
	r := run1(t, fleet(true), "round-robin")
	mean, hi, lo := spread(r.ClientsPerBackend, func(i int) bool { return r.startPresent[i] })
	assert.Equal(t, 64.0*4/32, mean)
	assert.Equal(t, 1.0, hi, "every backend has 8 clients")
	assert.Equal(t, 1.0, lo)
	require.Len(t, r.Moves, 1)
	assert.Equal(t, "replace 4 backends", r.Moves[0].Label)
	assert.Equal(t, 4*8, r.Moves[0].PairsMust, "4 backends of 8 clients each left")
	assert.Equal(t, r.Moves[0].PairsMust, r.Moves[0].PairsMoved, "with ordinals, only those move")
	for i, n := range r.Connections {
		assert.LessOrEqual(t, n, 8, "backend %d: only its subset's clients call it", i)
	}

	names := run1(t, fleet(false), "round-robin")
	_, hi, lo = spread(names.ClientsPerBackend, func(i int) bool { return names.startPresent[i] })
	assert.LessOrEqual(t, hi, 1.5)
	assert.GreaterOrEqual(t, lo, 0.5)
	assert.Greater(t, names.Moves[0].PairsMoved, names.Moves[0].PairsMust, "ranks shift: more pairs move than must")

	full := run1(t, testScenario(t, 32, func(sc *Scenario) { sc.Clients = 64 }), "round-robin")
	mean, _, _ = spread(full.ClientsPerBackend, nil)
	assert.Equal(t, 64.0, mean, "without subsetting every client has every backend")
}

// Locality: calls stay in the client's zone while it is healthy, and a
// zone that loses half its backends spills the share it lacks.
func TestLocality(t *testing.T) {
	t.Parallel()
	sc := testScenario(t, 4, func(sc *Scenario) {
		sc.Clients = 6
		sc.Duration = Duration(2 * time.Second)
		sc.Load.Rate = 1200
		sc.ClientZones = []string{"a", "b", "c"}
		sc.Locality = &LocalityConfig{}
		sc.OutlierDetection = &OutlierConfig{BaseEjectionTime: Duration(10 * time.Second)}
		sc.Transport = TransportConfig{}
		sc.Backends = []BackendGroup{
			{Count: 4, Zone: "a", Median: msd(10), Slots: 8},
			{Count: 4, Zone: "b", Median: msd(10), Slots: 8},
			{Count: 4, Zone: "c", Median: msd(10), Slots: 8},
		}
		sc.Events = []Event{
			{At: msd(1000), Kind: evKill, Backend: "b00"},
			{At: msd(1000), Kind: evKill, Backend: "b01"},
		}
	})
	r := run1(t, sc, "round-robin")
	half := len(r.CrossZoneOver) / 2
	var before, after, allBefore, allAfter uint64
	for k := range r.CrossZoneOver {
		if k < half {
			before, allBefore = before+r.CrossZoneOver[k], allBefore+r.ZoneAttemptsOver[k]
		} else if k > half+10 {
			after, allAfter = after+r.CrossZoneOver[k], allAfter+r.ZoneAttemptsOver[k]
		}
	}
	assert.Zero(t, before, "healthy zones keep their calls")
	// Zone a has half its backends: its health is min(1, 1.4 × 1/2) = 0.7,
	// so its clients (a third of the calls) send 30% of theirs elsewhere.
	assert.InDelta(t, 0.3/3, float64(after)/float64(allAfter), 0.02)
	assert.Zero(t, r.Failed())
	assert.Contains(t, r.ZoneP99, "a")

	flat := *sc
	flat.Locality = nil
	f := run1(t, &flat, "round-robin")
	assert.InDelta(t, 2.0/3, f.CrossZoneShare(), 0.02, "without locality, two calls in three leave the zone")
}

func TestReplaceEvents(t *testing.T) {
	t.Parallel()
	sc, err := ParseScenario(strings.NewReader(`{
	  "name": "t", "duration": "2s", "load": {"rate": 10},
	  "backends": [{"count": 4, "median": "1ms"}, {"count": 2, "median": "1ms", "absent": true}],
	  "events": [
	    {"at": "500ms", "kind": "replace", "backends": ["b00"], "with": ["b04"]},
	    {"at": "1s", "kind": "replace", "count": 1}
	  ]
	}`))
	require.NoError(t, err)
	evs, err := sc.expandEvents()
	require.NoError(t, err)
	require.Len(t, evs, 2)
	assert.Equal(t, []int{0}, evs[0].list)
	assert.Equal(t, []int{4}, evs[0].with)
	assert.Equal(t, []int{1}, evs[1].list, "count spreads over the set as it is then: b01, b02, b03, b04")
	assert.Equal(t, []int{5}, evs[1].with, "and takes fresh backends: b00 left, b04 came in")

	for _, tt := range []struct{ give, want string }{
		{`{"at": "1s", "kind": "replace", "backends": ["b00"]}`, `a replace needs "backends" and "with" of the same length`},
		{`{"at": "1s", "kind": "replace", "count": 3}`, "events[0].count is 3; it must be from 1 to the backends in the set (4) and the absent ones never in it (2)"},
		{`{"at": "1s", "kind": "replace", "count": 1, "with": ["b04"]}`, `a replace takes "count" or the lists`},
		{`{"at": "1s", "kind": "replace", "backends": ["b04"], "with": ["b05"]}`, "replace b04, which is not in the set"},
		{`{"at": "1s", "kind": "replace", "backends": ["b00"], "with": ["b01"]}`, "replace with b01, which is already in the set"},
		{`{"at": "1s", "kind": "replace", "backend": "b00"}`, `a replace takes "backends" and "with"`},
	} {
		_, err := ParseScenario(strings.NewReader(`{"name": "t", "duration": "2s", "load": {"rate": 10},
		  "backends": [{"count": 4, "median": "1ms"}, {"count": 2, "median": "1ms", "absent": true}],
		  "events": [` + tt.give + `]}`))
		require.Error(t, err, tt.give)
		assert.Contains(t, err.Error(), tt.want)
	}
	for _, tt := range []struct{ give, want string }{
		{`"locality": {}`, "locality needs client_zones"},
		{`"client_zones": ["a", "a"]`, `client_zones[1] is "a"; zones must be distinct`},
		{`"client_zones": []`, "client_zones is empty"},
		{`"subset": {"size": 0}`, "Subset.Size is 0"},
	} {
		_, err := ParseScenario(strings.NewReader(`{"name": "t", "duration": "2s", "clients": 2, "load": {"rate": 10},` + tt.give + `,
		  "backends": [{"count": 4, "median": "1ms"}]}`))
		require.Error(t, err, tt.give)
		assert.Contains(t, err.Error(), tt.want)
	}
}
