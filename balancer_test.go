package lb

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestBalancerBadInput(t *testing.T) {
	t.Parallel()
	_, err := NewBalancer(nil)
	assert.ErrorIs(t, err, ErrInvalidConfig)
	assert.Contains(t, err.Error(), "Builder is nil")

	_, err = NewBalancer(RoundRobin{}, WithEndpoints(Addrs("a:1", "a:1")))
	assert.ErrorIs(t, err, ErrDuplicateEndpoint)
	_, err = NewBalancer(RoundRobin{}, WithOutlierDetection(OutlierDetection{ConsecutiveFailures: -1}))
	assert.ErrorIs(t, err, ErrInvalidConfig)
	_, err = NewBalancer(RoundRobin{}, WithOutlierDetection(OutlierDetection{MaxEjectionPercent: 101}))
	assert.ErrorIs(t, err, ErrInvalidConfig)
	_, err = NewBalancer(RoundRobin{}, WithOutlierDetection(OutlierDetection{BaseEjectionTime: time.Minute, MaxEjectionTime: time.Second}))
	assert.ErrorIs(t, err, ErrInvalidConfig)
	_, err = NewBalancer(Ring{Replicas: -5}, WithEndpoints(Addrs("a:1")))
	assert.ErrorIs(t, err, ErrInvalidConfig)

	bal, err := NewBalancer(RoundRobin{}, nil) // a nil Option is ignored
	require.NoError(t, err)
	defer bal.Close()
	_, err = bal.Pick("")
	assert.ErrorIs(t, err, ErrNoEndpoints, "no endpoints yet")

	for _, eps := range [][]Endpoint{
		{{Addr: ""}},
		{{Addr: "nohostport"}},
		{{Addr: "a:1", Weight: -1}},
		{{Addr: "a:1"}, {Addr: "a:1"}},
	} {
		err := bal.Update(eps)
		assert.Error(t, err, "%v", eps)
		assert.True(t, errors.Is(err, ErrInvalidEndpoint) || errors.Is(err, ErrDuplicateEndpoint))
	}
	_, err = bal.Pick("")
	assert.ErrorIs(t, err, ErrNoEndpoints, "a rejected Update changes nothing")

	require.NoError(t, bal.Update(Addrs("a:1")))
	require.NoError(t, bal.Update(nil))
	_, err = bal.Pick("")
	assert.ErrorIs(t, err, ErrNoEndpoints, "an empty Update empties the balancer")
}

func TestBalancerUpdateKeepsCounters(t *testing.T) {
	t.Parallel()
	bal, err := NewBalancer(RoundRobin{}, WithEndpoints(Addrs("a:1", "b:1")))
	require.NoError(t, err)
	defer bal.Close()
	a := bal.Backends()[0]
	for i := 0; i < 4; i++ {
		pk, err := bal.Pick("")
		require.NoError(t, err)
		pk.Done(nil, time.Millisecond)
	}
	held, err := bal.Pick("") // in flight across the update
	require.NoError(t, err)

	require.NoError(t, bal.Update([]Endpoint{{Addr: "c:1"}, {Addr: "a:1", Weight: 3, Labels: map[string]string{"zone": "z"}}}))
	bs := bal.Backends()
	require.Len(t, bs, 2)
	assert.Same(t, a, bs[1], "a stays the same Backend")
	assert.Equal(t, 3, a.Weight(), "with its new weight")
	zone, _ := a.Label("zone")
	assert.Equal(t, "z", zone)
	assert.Equal(t, uint64(2), a.Stats().Successes)
	held.Done(nil, 0)

	st := bal.Stats()
	assert.Equal(t, "c:1", st[0].Endpoint.Addr)
	assert.Zero(t, st[0].Picks)
	wantPicks := uint64(2)
	if held.Backend == a {
		wantPicks = 3
	}
	assert.Equal(t, wantPicks, st[1].Picks)
}

func TestBalancerIdenticalUpdateKeepsPicker(t *testing.T) {
	t.Parallel()
	bal, err := NewBalancer(Ring{}, WithEndpoints([]Endpoint{{Addr: "a:1", Weight: 2}, {Addr: "b:1"}}))
	require.NoError(t, err)
	defer bal.Close()
	before := bal.snap.Load()
	// Same set, other order, weight 0 meaning 1: no rebuild.
	require.NoError(t, bal.Update([]Endpoint{{Addr: "b:1", Weight: 1}, {Addr: "a:1", Weight: 2}}))
	assert.Same(t, before, bal.snap.Load())
	require.NoError(t, bal.Update([]Endpoint{{Addr: "b:1", Weight: 1}, {Addr: "a:1", Weight: 3}}))
	assert.NotSame(t, before, bal.snap.Load(), "a new weight rebuilds")
}

func TestBalancerPickNext(t *testing.T) {
	t.Parallel()
	for _, b := range []Builder{RoundRobin{}, Random{}, P2C{}, WeightedRoundRobin{}, Ring{}, Maglev{}} {
		bal, err := NewBalancer(b, WithEndpoints(benchEndpoints(5, true)))
		require.NoError(t, err)
		for trial := 0; trial < 50; trial++ {
			var tried []*Backend
			key := fmt.Sprint("k", trial)
			for len(tried) < 5 {
				pk, err := bal.PickNext(key, tried)
				require.NoError(t, err, "%T", b)
				assert.NotContains(t, tried, pk.Backend, "%T", b)
				pk.Done(nil, 0)
				tried = append(tried, pk.Backend)
			}
			_, err := bal.PickNext(key, tried)
			assert.ErrorIs(t, err, ErrNoEndpoints)
		}
		// Hash strategies retry down the key's order of preference.
		if _, ok := b.(Ring); ok {
			prefs := bal.snap.Load().picker.(PreferenceLister).AppendPreferences(nil, "user-1", 3)
			first, _ := bal.PickNext("user-1", nil)
			second, _ := bal.PickNext("user-1", prefs[:1])
			third, _ := bal.PickNext("user-1", prefs[:2])
			assert.Equal(t, prefs, []*Backend{first.Backend, second.Backend, third.Backend})
		}
		require.NoError(t, bal.Close())
	}
}

func TestBalancerDoneCountsAndEWMA(t *testing.T) {
	t.Parallel()
	bal, err := NewBalancer(RoundRobin{}, WithEndpoints(Addrs("a:1")))
	require.NoError(t, err)
	defer bal.Close()
	pk, _ := bal.Pick("")
	assert.Equal(t, int64(1), pk.Backend.InFlight())
	pk.Done(errors.New("boom"), 10*time.Millisecond)
	pk2, _ := bal.Pick("")
	pk2.Done(nil, 20*time.Millisecond)
	s := bal.Stats()[0]
	assert.Equal(t, Stats{
		Endpoint:  Endpoint{Addr: "a:1", Weight: 1},
		Picks:     2,
		Successes: 1,
		Failures:  1,
		Latency:   12 * time.Millisecond, // 10 + 0.2 * (20 - 10)
		// A failure (0.25), then a success: 0.25 × 0.75.
		FailureScore: 0.1875,
		Share:        1,
	}, s)
	Pick{}.Done(nil, 0) // the zero Pick: nothing happens
	assert.Equal(t, "", Pick{}.Addr())
}

func TestBalancerOutlierEjection(t *testing.T) {
	t.Parallel()
	bal, err := NewBalancer(RoundRobin{}, WithEndpoints(Addrs("a:1", "b:1", "c:1", "d:1")),
		WithOutlierDetection(OutlierDetection{ConsecutiveFailures: 3, BaseEjectionTime: 50 * time.Millisecond, MaxEjectionTime: time.Second}))
	require.NoError(t, err)
	defer bal.Close()
	a := bal.Backends()[0]
	fail := func(b *Backend) {
		b.begin()
		Pick{Backend: b, bal: bal}.Done(errors.New("refused"), 0)
	}
	fail(a)
	fail(a)
	assert.False(t, a.Ejected())
	fail(a)
	assert.True(t, a.Ejected())
	st := a.Stats()
	assert.Equal(t, uint32(1), st.Ejections)
	assert.WithinDuration(t, time.Now().Add(50*time.Millisecond), st.EjectedUntil, 40*time.Millisecond)
	for i := 0; i < 100; i++ {
		pk, _ := bal.Pick("")
		assert.NotEqual(t, a, pk.Backend, "an ejected backend gets no picks")
		pk.Done(nil, 0)
	}
	require.Eventually(t, func() bool { return !a.Ejected() }, 2*time.Second, time.Millisecond, "readmitted after its ejection time")
	assert.Zero(t, a.Stats().Streak, "readmitted with a clean streak")

	// The second ejection lasts twice as long.
	start := time.Now()
	for i := 0; i < 3; i++ {
		fail(a)
	}
	require.True(t, a.Ejected())
	assert.WithinDuration(t, start.Add(100*time.Millisecond), a.Stats().EjectedUntil, 40*time.Millisecond)
	require.Eventually(t, func() bool { return !a.Ejected() }, 2*time.Second, time.Millisecond, "readmitted again")
}

func TestBalancerMaxEjectionPercentAndPanic(t *testing.T) {
	t.Parallel()
	bal, err := NewBalancer(RoundRobin{}, WithEndpoints(Addrs("a:1", "b:1", "c:1", "d:1")),
		WithOutlierDetection(OutlierDetection{ConsecutiveFailures: 1, BaseEjectionTime: time.Hour, MaxEjectionPercent: 50}))
	require.NoError(t, err)
	defer bal.Close()
	for _, b := range bal.Backends() {
		b.begin()
		Pick{Backend: b, bal: bal}.Done(errors.New("down"), 0)
	}
	ejected := 0
	for _, s := range bal.Stats() {
		if s.Ejected {
			ejected++
		}
	}
	assert.Equal(t, 2, ejected, "at most 50% of 4")

	// Health checks can take out the rest: then every backend is used.
	for _, b := range bal.Backends() {
		if !b.Ejected() {
			require.NoError(t, bal.SetHealthy(b.Addr(), false))
		}
	}
	bal.settle()
	seen := map[string]bool{}
	for i := 0; i < 400; i++ {
		pk, err := bal.Pick("")
		require.NoError(t, err)
		seen[pk.Addr()] = true
		pk.Done(nil, 0)
	}
	assert.Len(t, seen, 4, "panic threshold: all out means all used")
}

func TestBalancerSetHealthy(t *testing.T) {
	t.Parallel()
	bal, err := NewBalancer(Random{}, WithEndpoints(Addrs("a:1", "b:1")))
	require.NoError(t, err)
	defer bal.Close()
	require.NoError(t, bal.SetHealthy("a:1", false))
	require.NoError(t, bal.SetHealthy("a:1", false), "idempotent")
	assert.False(t, bal.Backends()[0].Healthy())
	for i := 0; i < 100; i++ {
		pk, _ := bal.Pick("")
		require.Equal(t, "b:1", pk.Addr())
		pk.Done(nil, 0)
	}
	assert.True(t, bal.Stats()[0].Unhealthy)
	require.NoError(t, bal.SetHealthy("a:1", true))
	assert.ErrorIs(t, bal.SetHealthy("zzz:1", true), ErrNoEndpoints)
}

func TestBalancerClose(t *testing.T) {
	t.Parallel()
	bal, err := NewBalancer(RoundRobin{}, WithEndpoints(Addrs("a:1")),
		WithOutlierDetection(OutlierDetection{ConsecutiveFailures: 1, BaseEjectionTime: time.Hour}))
	require.NoError(t, err)
	pk, _ := bal.Pick("")
	pk.Done(errors.New("x"), 0) // ejects: a timer is running
	require.NoError(t, bal.Close())
	require.NoError(t, bal.Close(), "twice is fine")
	_, err = bal.Pick("")
	assert.ErrorIs(t, err, ErrClosed)
	assert.ErrorIs(t, bal.Update(Addrs("b:1")), ErrClosed)
	assert.ErrorIs(t, bal.SetHealthy("a:1", true), ErrClosed)
	assert.Len(t, bal.Stats(), 1, "stats stay readable")
}

// failingBuilder fails when asked to build over more than max backends.
type failingBuilder struct{ max int }

func (f failingBuilder) Build(bs []*Backend) (Picker, error) {
	if len(bs) > f.max {
		return nil, fmt.Errorf("%w: too many", ErrInvalidConfig)
	}
	return RoundRobin{}.Build(bs)
}

func TestBalancerBuilderErrorKeepsState(t *testing.T) {
	t.Parallel()
	bal, err := NewBalancer(failingBuilder{max: 2}, WithEndpoints([]Endpoint{{Addr: "a:1", Weight: 2}}))
	require.NoError(t, err)
	defer bal.Close()
	err = bal.Update([]Endpoint{{Addr: "a:1", Weight: 5}, {Addr: "b:1"}, {Addr: "c:1"}})
	assert.ErrorIs(t, err, ErrInvalidConfig)
	bs := bal.Backends()
	require.Len(t, bs, 1)
	assert.Equal(t, 2, bs[0].Weight(), "the weight is put back")
}

func TestPickCancel(t *testing.T) {
	t.Parallel()
	bal, err := NewBalancer(Ring{LoadFactor: 1.25}, WithEndpoints(Addrs("a:1")))
	require.NoError(t, err)
	defer bal.Close()
	pk, _ := bal.Pick("k")
	pk.Done(errors.New("x"), time.Millisecond)
	pk, _ = bal.Pick("k")
	assert.Equal(t, int64(1), bal.group.total.Load())
	pk.Cancel()
	s := bal.Stats()[0]
	assert.Zero(t, s.InFlight)
	assert.Zero(t, bal.group.total.Load())
	assert.Equal(t, int64(1), s.Streak, "a cancelled call neither fails nor succeeds")
	assert.Equal(t, uint64(1), s.Failures)
	assert.Zero(t, s.Successes)
	assert.Equal(t, time.Millisecond, s.Latency)
	Pick{}.Cancel()
	assert.NotNil(t, bal.Logger())
}
