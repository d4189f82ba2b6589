package lb

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// zoneEndpoints returns n endpoints in region and zone, named after the
// zone ("a-0:80", ...), with the priority label when prio is not "".
func zoneEndpoints(n int, region, zone, prio string) []Endpoint {
	eps := make([]Endpoint, n)
	for i := range eps {
		l := map[string]string{LabelRegion: region, LabelZone: zone}
		if prio != "" {
			l[LabelPriority] = prio
		}
		eps[i] = Endpoint{Addr: fmt.Sprintf("%s-%d:80", zone, i), Labels: l}
	}
	return eps
}

// threeZones is 10 backends in each of zones a and b of region r1, and c
// of region r2.
func threeZones() []Endpoint {
	return append(append(zoneEndpoints(10, "r1", "a", ""), zoneEndpoints(10, "r1", "b", "")...), zoneEndpoints(10, "r2", "c", "")...)
}

// zoneShares picks n times and returns the share of picks per zone.
func zoneShares(t *testing.T, bal *Balancer, n int) map[string]float64 {
	t.Helper()
	got := map[string]float64{}
	for i := 0; i < n; i++ {
		pk, err := bal.Pick("")
		require.NoError(t, err)
		z, _ := pk.Backend.Label(LabelZone)
		got[z] += 1 / float64(n)
		pk.Done(nil, time.Millisecond)
	}
	return got
}

// setDown marks the first n backends of zone down (and the rest up), and
// applies it to the picker.
func setDown(t *testing.T, bal *Balancer, zone string, n int) {
	t.Helper()
	for i := 0; i < 10; i++ {
		require.NoError(t, bal.SetHealthy(fmt.Sprintf("%s-%d:80", zone, i), i >= n))
	}
	bal.settle()
}

func TestLocalityInvalid(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		give Locality
		want string
	}{
		{Locality{SubZone: "rack1"}, `Locality.SubZone is "rack1" but Zone is empty`},
		{Locality{Zone: "a", OverprovisioningFactor: 0.5}, "Locality.OverprovisioningFactor is 0.5; it must be from 1 to 100"},
		{Locality{Zone: "a", OverprovisioningFactor: 101}, "Locality.OverprovisioningFactor is 101"},
		{Locality{Zone: "a", PanicThreshold: 100.5}, "Locality.PanicThreshold is 100.5; it must be at most 100"},
	} {
		_, err := NewBalancer(RoundRobin{}, WithLocality(tt.give))
		require.ErrorIs(t, err, ErrInvalidConfig, "%+v", tt.give)
		assert.ErrorContains(t, err, tt.want)
	}
}

// The client's zone takes every call while 1/1.4 of it is healthy, and
// spills over in proportion to what it misses: first to its region, then
// to other regions. The shares are exact (Localities), and the picks meet
// them within half a percent.
func TestLocalityShares(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		downA, downB int
		want         map[string]float64 // zone -> share
	}{
		{0, 0, map[string]float64{"a": 1}},
		{2, 0, map[string]float64{"a": 1}},                // 1.4 × 0.8 > 1
		{3, 0, map[string]float64{"a": 0.98, "b": 0.02}},  // 1.4 × 0.7
		{5, 0, map[string]float64{"a": 0.7, "b": 0.3}},    // 1.4 × 0.5
		{9, 0, map[string]float64{"a": 0.14, "b": 0.86}},  // 1.4 × 0.1
		{10, 0, map[string]float64{"b": 1}},               // nothing left in a
		{10, 8, map[string]float64{"b": 0.28, "c": 0.72}}, // b at 1.4 × 0.2, the rest to region r2
		{6, 8, map[string]float64{"a": 0.56, "b": 0.28, "c": 0.16}},
	} {
		t.Run(fmt.Sprintf("down a=%d b=%d", tt.downA, tt.downB), func(t *testing.T) {
			t.Parallel()
			bal, err := NewBalancer(RoundRobin{}, WithEndpoints(threeZones()), WithLocality(Locality{Region: "r1", Zone: "a"}))
			require.NoError(t, err)
			defer bal.Close()
			setDown(t, bal, "a", tt.downA)
			setDown(t, bal, "b", tt.downB)
			shares := map[string]float64{}
			for _, ls := range bal.Localities() {
				for _, z := range ls.Zones {
					shares[z] += ls.Share
				}
			}
			for z, want := range tt.want {
				assert.InDelta(t, want, shares[z], 1e-9, "zone %s: Localities share", z)
			}
			got := zoneShares(t, bal, 20000)
			for _, z := range []string{"a", "b", "c"} {
				assert.InDelta(t, tt.want[z], got[z], 0.005, "zone %s: share of picks", z)
			}
		})
	}
}

// Localities shows the tiers in order: priority first, then proximity.
func TestLocalityTiers(t *testing.T) {
	t.Parallel()
	eps := append(append(zoneEndpoints(2, "r1", "a", "1"), zoneEndpoints(3, "r2", "c", "0")...), zoneEndpoints(4, "r1", "b", "")...)
	eps = append(eps, Endpoint{Addr: "bare:80"}) // no labels: remote, priority 0
	bal, err := NewBalancer(RoundRobin{}, WithEndpoints(eps), WithLocality(Locality{Region: "r1", Zone: "a"}))
	require.NoError(t, err)
	defer bal.Close()
	assert.Equal(t, []LocalityStats{
		{Priority: 0, Proximity: SameRegion, Zones: []string{"b"}, Backends: 4, Available: 4, Health: 1, Share: 1},
		{Priority: 0, Proximity: Remote, Zones: []string{"", "c"}, Backends: 4, Available: 4, Health: 1},
		{Priority: 1, Proximity: SameZone, Zones: []string{"a"}, Backends: 2, Available: 2, Health: 1},
	}, bal.Localities())
	assert.Equal(t, "same-region", SameRegion.String())

	// Without locality: nil.
	plain, err := NewBalancer(RoundRobin{}, WithEndpoints(eps))
	require.NoError(t, err)
	defer plain.Close()
	assert.Nil(t, plain.Localities())
}

// Proximity compares only the fields the client sets.
func TestLocalityProximity(t *testing.T) {
	t.Parallel()
	labels := func(r, z, s string) map[string]string {
		return map[string]string{LabelRegion: r, LabelZone: z, LabelSubZone: s}
	}
	for _, tt := range []struct {
		client Locality
		give   map[string]string
		want   Proximity
	}{
		{Locality{Region: "r", Zone: "z", SubZone: "s"}, labels("r", "z", "s"), SameSubZone},
		{Locality{Region: "r", Zone: "z", SubZone: "s"}, labels("r", "z", "t"), SameZone},
		{Locality{Region: "r", Zone: "z", SubZone: "s"}, labels("r", "y", "s"), SameRegion},
		{Locality{Region: "r", Zone: "z", SubZone: "s"}, labels("q", "z", "s"), Remote},
		{Locality{Region: "r", Zone: "z"}, labels("r", "z", "t"), SameZone},
		{Locality{Zone: "z"}, labels("q", "z", ""), SameZone},
		{Locality{Zone: "z"}, labels("r", "y", ""), Remote},
		{Locality{Region: "r"}, labels("r", "y", ""), SameRegion},
		{Locality{Region: "r"}, nil, Remote},
		{Locality{}, labels("r", "z", "s"), Remote},
	} {
		assert.Equal(t, tt.want, tt.client.proximity(tt.give), "%+v vs %v", tt.client, tt.give)
	}
}

// When the tiers together have too little healthy capacity, each takes
// its health's share, and one below the panic threshold is used whole.
func TestLocalityPanic(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		threshold float64
		panics    bool
	}{{0, true}, {-1, false}} {
		bal, err := NewBalancer(RoundRobin{}, WithEndpoints(threeZones()), WithLocality(Locality{Region: "r1", Zone: "a", PanicThreshold: tt.threshold}))
		require.NoError(t, err)
		setDown(t, bal, "a", 8)
		setDown(t, bal, "b", 8)
		for i := 0; i < 8; i++ {
			require.NoError(t, bal.SetHealthy(fmt.Sprintf("c-%d:80", i), false))
		}
		bal.settle()
		ls := bal.Localities()
		require.Len(t, ls, 3)
		for _, l := range ls {
			assert.InDelta(t, 1.0/3, l.Share, 1e-9, "each at health 0.28: a third each")
			assert.Equal(t, tt.panics, l.Panic)
		}
		down := 0
		for i := 0; i < 3000; i++ {
			pk, err := bal.Pick("")
			require.NoError(t, err)
			if !pk.Backend.Healthy() {
				down++
			}
			pk.Done(nil, 0)
		}
		if tt.panics {
			assert.InDelta(t, 2400, down, 30, "in panic, tiers use all their backends")
		} else {
			assert.Zero(t, down)
		}
		bal.Close()
	}

	// Nothing available: the first tier, whole.
	bal, err := NewBalancer(RoundRobin{}, WithEndpoints(threeZones()), WithLocality(Locality{Region: "r1", Zone: "a"}))
	require.NoError(t, err)
	defer bal.Close()
	for _, z := range []string{"a", "b", "c"} {
		for i := 0; i < 10; i++ {
			require.NoError(t, bal.SetHealthy(fmt.Sprintf("%s-%d:80", z, i), false))
		}
	}
	bal.settle()
	ls := bal.Localities()
	assert.Equal(t, 1.0, ls[0].Share)
	assert.True(t, ls[0].Panic)
	assert.Equal(t, map[string]float64{"a": 1}, roundShares(zoneShares(t, bal, 100)))
}

func roundShares(m map[string]float64) map[string]float64 {
	for k, v := range m {
		m[k] = float64(int(v*1000+0.5)) / 1000
	}
	return m
}

// A zone the client names but no backend is in: the next tier takes the
// calls; nothing fails.
func TestLocalityUnknownZone(t *testing.T) {
	t.Parallel()
	bal, err := NewBalancer(RoundRobin{}, WithEndpoints(threeZones()), WithLocality(Locality{Region: "r1", Zone: "nowhere"}))
	require.NoError(t, err)
	defer bal.Close()
	ls := bal.Localities()
	require.Len(t, ls, 2)
	assert.Equal(t, SameRegion, ls[0].Proximity)
	assert.Equal(t, []string{"a", "b"}, ls[0].Zones)
	assert.Equal(t, 1.0, ls[0].Share)
	got := zoneShares(t, bal, 1000)
	assert.InDelta(t, 0.5, got["a"], 0.01)
	assert.InDelta(t, 0.5, got["b"], 0.01)
}

// A priority that is not a number fails the Update, naming the label and
// the endpoint, and the balancer keeps its set; with subsetting too, where
// the endpoint would not be in the subset.
func TestLocalityBadPriority(t *testing.T) {
	t.Parallel()
	for _, opts := range [][]Option{
		{WithLocality(Locality{Zone: "a"})},
		{WithLocality(Locality{Zone: "a"}), WithSubset(Subset{Size: 1})},
	} {
		bal, err := NewBalancer(RoundRobin{}, append(opts, WithEndpoints(threeZones()))...)
		require.NoError(t, err)
		before, tiers := bal.Backends(), bal.Localities()
		for _, v := range []string{"high", "-1", "1.5", "4294967296", " 1"} {
			eps := threeZones()
			eps[17].Labels[LabelPriority] = v
			err := bal.Update(eps)
			require.ErrorIs(t, err, ErrInvalidEndpoint)
			assert.ErrorContains(t, err, fmt.Sprintf(`label "priority" of "b-7:80" is %q; it must be a decimal integer from 0`, v))
			assert.Equal(t, before, bal.Backends())
			assert.Equal(t, tiers, bal.Localities())
		}
		_, err = NewBalancer(RoundRobin{}, append(opts, WithEndpoints(append(threeZones(), Endpoint{Addr: "x:1", Labels: map[string]string{LabelPriority: "x"}})))...)
		require.ErrorIs(t, err, ErrInvalidEndpoint)
		bal.Close()
	}
}

// With a hash strategy, a key's tier is the key's: each key stays on one
// tier, and when the client's zone spills 30% of its calls, about 30% of
// the keys move off it, and on a ring a key that stays keeps its backend
// unless that one is down. A key's preferences list its tier's backends
// first.
func TestLocalityHashKeys(t *testing.T) {
	t.Parallel()
	for _, builder := range []Builder{Ring{}, Maglev{}} {
		eps := append(zoneEndpoints(10, "r1", "a", ""), zoneEndpoints(10, "r1", "b", "")...)
		bal, err := NewBalancer(builder, WithEndpoints(eps), WithLocality(Locality{Region: "r1", Zone: "a"}))
		require.NoError(t, err)
		// Make the local zone spill: 5 of 10 down, 1.4 × 0.5 = 0.7 stays.
		// Then one more backend of b down, so that there are two tiers to
		// choose from at every step.
		require.NoError(t, bal.SetHealthy("b-9:80", false))
		bal.settle()
		const n = 5000
		before := make([]string, n)
		for i := range before {
			pk, err := bal.Pick(fmt.Sprint("user-", i))
			require.NoError(t, err)
			before[i] = pk.Addr()
			pk.Done(nil, 0)
		}
		setDown(t, bal, "a", 5)
		pl, ok := bal.snap.Load().picker.(PreferenceLister)
		require.True(t, ok, "%T: a locality picker over hash pickers lists preferences", builder)
		moved, stayed := 0, 0
		for i := range before {
			key := fmt.Sprint("user-", i)
			pk, err := bal.Pick(key)
			require.NoError(t, err)
			z, _ := pk.Backend.Label(LabelZone)
			switch {
			case z == "b":
				moved++
			case before[i] != pk.Addr():
				// Stayed in a: on a ring, only the keys of a backend now
				// down move (a Maglev table rebuilt over fewer backends
				// moves a few others too).
				if _, ring := builder.(Ring); ring {
					assert.False(t, bal.backend(before[i]).Healthy(), "%s moved within its tier from a healthy backend", key)
				}
			default:
				stayed++
			}
			again, _ := bal.Pick(key)
			assert.Equal(t, pk.Addr(), again.Addr(), "a key has one place")
			pk.Done(nil, 0)
			again.Done(nil, 0)
			prefs := pl.AppendPreferences(nil, key, 12)
			require.Len(t, prefs, 12)
			assert.Equal(t, pk.Addr(), prefs[0].Addr())
			firstZone, _ := prefs[0].Label(LabelZone)
			for j, p := range prefs {
				z, _ := p.Label(LabelZone)
				if j < 5 || firstZone == "b" && j < 9 {
					assert.Equal(t, firstZone, z, "%s: its own tier's backends first", key)
				}
			}
		}
		t.Logf("%T: %.3f of keys moved to zone b, %.3f stayed on their backend", builder, float64(moved)/n, float64(stayed)/n)
		assert.InDelta(t, 0.3, float64(moved)/n, 0.02, "%T", builder)
		assert.Greater(t, float64(stayed)/n, 0.3)
		bal.Close()
	}
}

// Subsetting with locality: each tier gets its own subset.
func TestLocalityWithSubset(t *testing.T) {
	t.Parallel()
	bal, err := NewBalancer(RoundRobin{}, WithEndpoints(threeZones()), WithLocality(Locality{Region: "r1", Zone: "a"}),
		WithSubset(Subset{Size: 3, ClientIndex: 5}))
	require.NoError(t, err)
	defer bal.Close()
	zones := map[string]int{}
	for _, be := range bal.Backends() {
		z, _ := be.Label(LabelZone)
		zones[z]++
	}
	assert.Len(t, bal.Backends(), 9, "3 per tier: a, the rest of r1, r2")
	assert.Equal(t, 3, zones["a"])
	assert.Equal(t, 3, zones["c"])
	got := zoneShares(t, bal, 300)
	assert.Equal(t, map[string]float64{"a": 1}, roundShares(got))
	for _, ls := range bal.Localities() {
		assert.Equal(t, 3, ls.Backends)
	}
}

// Two Balancers fed the same calls pick the same backends: locality's
// shares are met by a sequence, not by random draws (for lbsim).
func TestLocalityDeterministic(t *testing.T) {
	t.Parallel()
	run := func() []string {
		bal, err := NewBalancer(RoundRobin{Stripes: 1, Rand: rand.NewPCG(1, 2)}, WithEndpoints(threeZones()),
			WithLocality(Locality{Region: "r1", Zone: "a"}))
		require.NoError(t, err)
		defer bal.Close()
		setDown(t, bal, "a", 6)
		var out []string
		for i := 0; i < 500; i++ {
			pk, err := bal.Pick("")
			require.NoError(t, err)
			out = append(out, pk.Addr())
			pk.Done(nil, 0)
		}
		return out
	}
	assert.Equal(t, run(), run())
}

// A locality picker allocates nothing, for every strategy.
func TestLocalityPicksAllocateNothing(t *testing.T) {
	keys := benchKeys()
	for _, bc := range benchCases {
		if _, anchor := bc.builder.(*Anchor); anchor {
			_, err := NewBalancer(bc.builder, WithLocality(Locality{Zone: "a"}))
			require.ErrorIs(t, err, ErrInvalidConfig, "an Anchor keeps one history: not one per tier")
			continue
		}
		eps := threeZones()
		for i := range eps {
			eps[i].Weight = 1 + i%3
		}
		bal, err := NewBalancer(bc.builder, WithEndpoints(eps), WithLocality(Locality{Region: "r1", Zone: "a"}))
		require.NoError(t, err)
		setDown(t, bal, "a", 5)
		_, multi := bal.snap.Load().picker.(*localityPicker)
		_, multiHash := bal.snap.Load().picker.(localityHashPicker)
		require.True(t, multi || multiHash, "%s: two tiers take calls", bc.name)
		i := 0
		allocs := testing.AllocsPerRun(1000, func() {
			pk, err := bal.Pick(keys[i%keyPool])
			if err != nil {
				t.Fatal(err)
			}
			pk.Done(nil, time.Millisecond)
			i++
		})
		assert.Zero(t, allocs, "%s: Pick + Done with locality", bc.name)
		require.NoError(t, bal.Close())
	}
}
