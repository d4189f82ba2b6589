package lb

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// subsetWorld is an endpoint set for the subsetting measurements: n
// backends, the i-th with ordinal i in the label "ordinal".
func subsetWorld(n int) []Endpoint {
	eps := make([]Endpoint, n)
	for i := range eps {
		eps[i] = Endpoint{Addr: fmt.Sprintf("10.%d.%d.%d:8080", i>>16, i>>8&255, i&255), Labels: map[string]string{"ordinal": strconv.Itoa(i)}}
	}
	return eps
}

// replaced returns eps with m backends (chosen by seed) replaced by new
// addresses that keep their ordinals: a deployment's instances replaced
// one for one.
func replaced(eps []Endpoint, m int, seed uint64) []Endpoint {
	out := slices.Clone(eps)
	r := rand.New(rand.NewPCG(seed, 1))
	for _, i := range r.Perm(len(eps))[:m] {
		out[i] = Endpoint{Addr: fmt.Sprintf("172.16.%d.%d:8080", i>>8, i&255), Labels: eps[i].Labels}
	}
	return out
}

// grown returns eps with m backends added, of the next ordinals.
func grown(eps []Endpoint, m int) []Endpoint {
	out := slices.Clone(eps)
	for i := len(eps); i < len(eps)+m; i++ {
		out = append(out, Endpoint{Addr: fmt.Sprintf("192.168.%d.%d:8080", i>>8, i&255), Labels: map[string]string{"ordinal": strconv.Itoa(i)}})
	}
	return out
}

// fleet returns the subsets of clients 0 to c-1 over eps, as addresses.
func fleet(t testing.TB, eps []Endpoint, s Subset, c int) [][]string {
	subs, err := SubsetsOf(eps, s, c)
	require.NoError(t, err)
	out := make([][]string, c)
	for i, sub := range subs {
		out[i] = endpointAddrs(sub)
	}
	return out
}

// degrees counts the clients of each backend of eps.
func degrees(eps []Endpoint, subsets [][]string) map[string]int {
	d := make(map[string]int, len(eps))
	for _, e := range eps {
		d[e.Addr] = 0
	}
	for _, sub := range subsets {
		for _, a := range sub {
			d[a]++
		}
	}
	return d
}

// spread returns the max/mean and min/mean of the clients per backend.
func spread(d map[string]int) (hi, lo float64) {
	sum, mx, mn := 0, 0, int(^uint(0)>>1)
	for _, n := range d {
		sum, mx, mn = sum+n, max(mx, n), min(mn, n)
	}
	mean := float64(sum) / float64(len(d))
	return float64(mx) / mean, float64(mn) / mean
}

// churn returns the client–backend pairs that a change of the set from
// (old, oldDeg) to (now, nowDeg) moved, and the pairs that must move: the
// pairs of the backends that left, or those the backends that joined
// take, whichever is more.
func churn(old, now [][]string, oldDeg, nowDeg map[string]int) (moved, must int) {
	for c := range old {
		for _, a := range old[c] {
			if !slices.Contains(now[c], a) {
				moved++
			}
		}
	}
	out, in := 0, 0
	for a, n := range oldDeg {
		if _, ok := nowDeg[a]; !ok {
			out += n
		}
	}
	for a, n := range nowDeg {
		if _, ok := oldDeg[a]; !ok {
			in += n
		}
	}
	return moved, max(out, in)
}

// TestSubsetBudget measures the budgets and the other figures the
// docs state, for Size 20: clients per backend (max/mean, min/mean) and
// the pairs moved over those that must move when 10% of the backends are
// replaced (by new addresses, of the same ordinals), when 10% are added,
// and when one is replaced. The math is deterministic, so the budgets are
// asserted: with ordinals, max/mean at most 1.10 and at most 1.2 times the
// pairs that must move; without, the same balance (not with ByHash, which
// trades it for churn). The figures at 1,000 clients and 1,000 backends are
// pinned: the docs state them.
func TestSubsetBudget(t *testing.T) {
	t.Parallel()
	const k = 20
	type figures struct{ hi, replace, grow, one float64 }
	for _, tt := range []struct {
		label             string // the OrdinalLabel; "hash": none, ByHash
		clients, backends int
		pin               *figures
	}{
		{"hash", 1000, 1000, &figures{1.700, 1.307, 1.00, 1.815}},
		{"hash", 10000, 1000, nil},
		{"ordinal", 1000, 1000, &figures{1.000, 1.00, 1.00, 1.00}},
		{"ordinal", 10000, 100, nil},
		{"ordinal", 10000, 1000, nil},
		{"ordinal", 10000, 5000, nil},
		{"ordinal", 1000, 777, nil},
		{"", 1000, 1000, &figures{1.050, 3.32, 1.93, 23.24}},
		{"", 10000, 100, nil},
		{"", 10000, 1000, nil},
		{"", 10000, 5000, nil},
		{"", 1000, 777, nil},
	} {
		s := Subset{Size: k, OrdinalLabel: tt.label}
		mode := "ordinals"
		switch tt.label {
		case "":
			mode = "names"
		case "hash":
			mode, s = "names-by-hash", Subset{Size: k, ByHash: true}
		}
		name := fmt.Sprintf("%s/C=%d/N=%d", mode, tt.clients, tt.backends)
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			base := subsetWorld(tt.backends)
			subs := fleet(t, base, s, tt.clients)
			deg := degrees(base, subs)
			hi, lo := spread(deg)
			ratio := func(eps []Endpoint) float64 {
				now := fleet(t, eps, s, tt.clients)
				for _, sub := range now {
					require.Len(t, sub, k)
				}
				moved, must := churn(subs, now, deg, degrees(eps, now))
				return float64(moved) / float64(must)
			}
			got := figures{hi, ratio(replaced(base, tt.backends/10, 7)), ratio(grown(base, tt.backends/10)), ratio(replaced(base, 1, 8))}
			t.Logf("%-26s clients/backend max/mean %.3f min/mean %.3f; moved/must: 10%% replaced %.2f, 10%% added %.2f, 1 replaced %.2f",
				name, hi, lo, got.replace, got.grow, got.one)
			if !s.ByHash {
				assert.LessOrEqual(t, got.hi, 1.10, "clients per backend, max/mean")
			}
			if s.OrdinalLabel != "" {
				assert.LessOrEqual(t, got.replace, 1.2, "10%% replaced: moved/must")
				assert.LessOrEqual(t, got.grow, 1.2, "10%% added: moved/must")
				assert.LessOrEqual(t, got.one, 1.2, "1 replaced: moved/must")
			}
			if p := tt.pin; p != nil {
				assert.InDelta(t, p.hi, got.hi, 0.001, "max/mean")
				assert.InDelta(t, p.replace, got.replace, 0.005, "10%% replaced")
				assert.InDelta(t, p.grow, got.grow, 0.005, "10%% added")
				assert.InDelta(t, p.one, got.one, 0.005, "1 replaced")
			}
		})
	}
}

// The ring of 8 ordinals, by hand: vdc orders them 0 4 2 6 1 5 3 7 (at
// 0, 1/8, 2/8, ...), and client i sits at vdc(i): 0 at 0, 1 at 1/2, 2 at
// 1/4, 3 at 3/4. With Size 2 the first four clients cover the 8 backends
// once.
func TestSubsetByHand(t *testing.T) {
	t.Parallel()
	eps := subsetWorld(8)
	addr := func(ords ...int) []string {
		var out []string
		for _, o := range ords {
			out = append(out, eps[o].Addr)
		}
		return out
	}
	for _, tt := range []struct {
		give int
		want []string
	}{
		{0, addr(0, 4)},
		{1, addr(1, 5)},
		{2, addr(2, 6)},
		{3, addr(3, 7)},
		{4, addr(2, 4)}, // at vdc(4) = 1/8: ordinals 4 (at 1/8) and 2 (at 2/8)
		{5, addr(3, 5)}, // at 5/8: 5 and 3
	} {
		got, err := SubsetOf(eps, Subset{Size: 2, ClientIndex: tt.give, OrdinalLabel: "ordinal"})
		require.NoError(t, err)
		var addrs []string
		for _, e := range got {
			addrs = append(addrs, e.Addr)
		}
		assert.Equal(t, tt.want, addrs, "client %d", tt.give)
	}
}

func TestSubsetInvalid(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		give Subset
		want string
	}{
		{Subset{}, "Subset.Size is 0; it must be at least 1"},
		{Subset{Size: -2}, "Subset.Size is -2"},
		{Subset{Size: 2, ClientIndex: -1}, "Subset.ClientIndex is -1; it must not be negative"},
		{Subset{Size: 2, ClientIndex: 5, ClientCount: 5}, "Subset.ClientIndex is 5; it must be below ClientCount (5)"},
		{Subset{Size: 2, ClientCount: -3}, "Subset.ClientCount is -3"},
		{Subset{Size: 2, ClientIndex: 1, ClientID: "web-1"}, `Subset.ClientID ("web-1") and ClientIndex (1) are both set`},
	} {
		_, err := NewBalancer(RoundRobin{}, WithSubset(tt.give))
		require.ErrorIs(t, err, ErrInvalidConfig, "%+v", tt.give)
		assert.ErrorContains(t, err, tt.want)
		_, err = SubsetOf(subsetWorld(3), tt.give)
		require.ErrorIs(t, err, ErrInvalidConfig)
		assert.ErrorContains(t, err, tt.want)
	}
}

// A bad ordinal label fails the Update, which changes nothing, even where
// the set is smaller than the subset.
func TestSubsetBadOrdinals(t *testing.T) {
	t.Parallel()
	bal, err := NewBalancer(RoundRobin{}, WithSubset(Subset{Size: 2, OrdinalLabel: "ordinal"}), WithEndpoints(subsetWorld(5)))
	require.NoError(t, err)
	defer bal.Close()
	before := bal.Backends()
	for _, tt := range []struct {
		give map[string]string
		want string
	}{
		{nil, `"10.0.0.0:8080" has no label "ordinal" (Subset.OrdinalLabel)`},
		{map[string]string{"ordinal": "x"}, `label "ordinal" (Subset.OrdinalLabel) of "10.0.0.0:8080" is "x"; it must be a decimal integer from 0 to 4294967295`},
		{map[string]string{"ordinal": "-1"}, `is "-1"`},
		{map[string]string{"ordinal": "4294967296"}, `is "4294967296"`},
	} {
		for _, n := range []int{5, 1} {
			eps := subsetWorld(n)
			eps[0].Labels = tt.give
			err := bal.Update(eps)
			require.ErrorIs(t, err, ErrInvalidEndpoint)
			assert.ErrorContains(t, err, tt.want)
			assert.Equal(t, before, bal.Backends(), "a bad update changes nothing")
		}
	}
}

func endpointAddrs(eps []Endpoint) []string {
	var out []string
	for _, e := range eps {
		out = append(out, e.Addr)
	}
	return out
}

// A Balancer with subsetting keeps only its subset: picks, ejection, health
// checks and slow start see only those backends; a change outside the
// subset changes nothing; a member replaced by another of its ordinal is
// the only change.
func TestBalancerSubset(t *testing.T) {
	t.Parallel()
	clk := &fakeClock{now: time.Unix(100, 0)}
	s := Subset{Size: 4, ClientIndex: 3, OrdinalLabel: "ordinal"}
	eps := subsetWorld(40)
	bal, err := NewBalancer(RoundRobin{}, WithSubset(s), WithEndpoints(eps), WithClock(clk),
		WithSlowStart(SlowStart{Window: 10 * time.Second}),
		WithOutlierDetection(OutlierDetection{ConsecutiveFailures: 1, BaseEjectionTime: time.Minute}))
	require.NoError(t, err)
	defer bal.Close()
	want, err := SubsetOf(eps, s)
	require.NoError(t, err)
	require.Len(t, want, 4)
	assert.Equal(t, endpointAddrs(want), addrsOf(bal.Backends()))
	assert.Len(t, bal.Stats(), 4)

	counts := map[string]int{}
	for i := 0; i < 400; i++ {
		pk, err := bal.Pick("")
		require.NoError(t, err)
		counts[pk.Addr()]++
		pk.Done(nil, time.Millisecond)
	}
	assert.Equal(t, map[string]int{want[0].Addr: 100, want[1].Addr: 100, want[2].Addr: 100, want[3].Addr: 100}, counts)

	// A change outside the subset: the same Backends, counters and all.
	members := bal.Backends()
	outside := slices.IndexFunc(eps, func(e Endpoint) bool { return !slices.Contains(endpointAddrs(want), e.Addr) })
	changed := slices.Clone(eps)
	changed[outside].Addr = "192.0.2.1:8080"
	require.NoError(t, bal.Update(changed))
	assert.Equal(t, members, bal.Backends())

	// A member replaced by a new address of its ordinal: only it changes,
	// and it ramps up.
	i := slices.IndexFunc(changed, func(e Endpoint) bool { return e.Addr == want[1].Addr })
	changed[i].Addr = "192.0.2.2:8080"
	require.NoError(t, bal.Update(changed))
	now := bal.Backends()
	assert.Equal(t, []*Backend{members[0], members[2], members[3]}, []*Backend{now[0], now[2], now[3]})
	assert.Equal(t, "192.0.2.2:8080", now[1].Addr())
	assert.InDelta(t, 0.1, now[1].Stats().Share, 0.01, "the newcomer ramps up")

	// Ejection works on the subset.
	bal.newPick(now[0]).Done(errors.New("refused"), 0)
	require.True(t, now[0].Ejected())
	bal.settle()
	for i := 0; i < 50; i++ {
		pk, err := bal.Pick("")
		require.NoError(t, err)
		assert.NotEqual(t, now[0].Addr(), pk.Addr())
		pk.Done(nil, 0)
	}

	// A set smaller than the subset is used whole.
	require.NoError(t, bal.Update(eps[:3]))
	assert.Equal(t, endpointAddrs(eps[:3]), addrsOf(bal.Backends()))
}

// Every client computes its subset from the set alone: the order of the
// endpoints does not matter, and neither does the process.
func TestSubsetIgnoresOrder(t *testing.T) {
	t.Parallel()
	for _, s := range []Subset{{Size: 5, ClientIndex: 7}, {Size: 5, ClientIndex: 7, OrdinalLabel: "ordinal"}, {Size: 5, ClientID: "pod-abc"}} {
		eps := subsetWorld(50)
		a, err := SubsetOf(eps, s)
		require.NoError(t, err)
		r := rand.New(rand.NewPCG(1, 2))
		r.Shuffle(len(eps), func(i, j int) { eps[i], eps[j] = eps[j], eps[i] })
		b, err := SubsetOf(eps, s)
		require.NoError(t, err)
		assert.ElementsMatch(t, endpointAddrs(a), endpointAddrs(b), "%+v", s)
	}
}

// Health checks probe the subset only: a client opens no connection to
// the backends outside it.
func TestSubsetHealthChecks(t *testing.T) {
	t.Parallel()
	eps := subsetWorld(30)
	s := Subset{Size: 3, ClientIndex: 1}
	bal, err := NewBalancer(RoundRobin{}, WithSubset(s), WithEndpoints(eps))
	require.NoError(t, err)
	defer bal.Close()
	want, err := SubsetOf(eps, s)
	require.NoError(t, err)
	var mu sync.Mutex
	probed := map[string]int{}
	hc, err := StartHealthChecks(context.Background(), bal, HealthCheck{Interval: time.Millisecond, Probe: func(_ context.Context, addr string) error {
		mu.Lock()
		defer mu.Unlock()
		probed[addr]++
		return nil
	}})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, e := range want {
			if probed[e.Addr] < 3 {
				return false
			}
		}
		return true
	}, 10*time.Second, time.Millisecond)
	require.NoError(t, hc.Close())
	mu.Lock()
	defer mu.Unlock()
	var got []string
	for a := range probed {
		got = append(got, a)
	}
	assert.ElementsMatch(t, endpointAddrs(want), got)
}

// SubsetsOf gives each client what SubsetOf gives it.
func TestSubsetsOf(t *testing.T) {
	t.Parallel()
	for _, s := range []Subset{{Size: 4}, {Size: 4, OrdinalLabel: "ordinal"}, {Size: 4, ByHash: true}, {Size: 40}} {
		eps := subsetWorld(30)
		all, err := SubsetsOf(eps, s, 12)
		require.NoError(t, err)
		require.Len(t, all, 12)
		for c, got := range all {
			s.ClientIndex = c
			want, err := SubsetOf(eps, s)
			require.NoError(t, err)
			assert.Equal(t, want, got, "client %d, %+v", c, s)
		}
	}
	for _, tt := range []struct {
		give    Subset
		clients int
		want    string
	}{
		{Subset{Size: 2, ClientID: "x"}, 3, "Subset.ClientID is set; SubsetsOf places clients by index"},
		{Subset{Size: 2, ClientCount: 5}, 6, "SubsetsOf for 6 clients; it must be from 0 to Subset.ClientCount (5)"},
		{Subset{Size: 2}, -1, "SubsetsOf for -1 clients"},
		{Subset{Size: 0}, 1, "Subset.Size is 0"},
	} {
		_, err := SubsetsOf(subsetWorld(3), tt.give, tt.clients)
		require.ErrorIs(t, err, ErrInvalidConfig)
		assert.ErrorContains(t, err, tt.want)
	}
}
