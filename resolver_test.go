package lb

import (
	"context"
	"errors"
	"net"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// rsvChan reports the sets sent on its channel, as a Resolver of
// someone's own would.
type rsvChan chan []Endpoint

func (c rsvChan) Watch(ctx context.Context, update func([]Endpoint) error) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case eps := <-c:
			if err := update(eps); err != nil {
				return err
			}
		}
	}
}

func rsvAddrs(bs []*Backend) []string {
	out := make([]string, len(bs))
	for i, b := range bs {
		out[i] = b.Addr()
	}
	sort.Strings(out)
	return out
}

func TestStaticReportsOnceAndStops(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		give Static
		want []Endpoint
	}{
		{"two", Static(Addrs("a:1", "b:2")), Addrs("a:1", "b:2")},
		{"weights and labels", Static{{Addr: "a:1", Weight: 3, Labels: map[string]string{"zone": "x"}}},
			[]Endpoint{{Addr: "a:1", Weight: 3, Labels: map[string]string{"zone": "x"}}}},
		{"empty is authoritative", Static{}, []Endpoint{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithCancel(context.Background())
			var got [][]Endpoint
			done := make(chan error, 1)
			go func() {
				done <- tt.give.Watch(ctx, func(eps []Endpoint) error {
					got = append(got, eps)
					cancel()
					return nil
				})
			}()
			require.ErrorIs(t, <-done, context.Canceled)
			require.Len(t, got, 1)
			assert.Equal(t, tt.want, got[0])
			if len(tt.give) > 0 && tt.give[0].Labels != nil {
				got[0][0].Labels["zone"] = "changed"
				assert.Equal(t, "x", tt.give[0].Labels["zone"], "the reported set must not share labels with the Static")
			}
		})
	}
}

func TestStaticRejectsInvalidSets(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		give Static
		want error
	}{
		{"no port", Static(Addrs("a")), ErrInvalidEndpoint},
		{"negative weight", Static{{Addr: "a:1", Weight: -1}}, ErrInvalidEndpoint},
		{"duplicate", Static(Addrs("a:1", "a:1")), ErrDuplicateEndpoint},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.give.Watch(context.Background(), func([]Endpoint) error {
				t.Error("update called for an invalid set")
				return nil
			})
			require.ErrorIs(t, err, tt.want)
		})
	}
}

func TestStaticStopsOnUpdateError(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	err := Static(Addrs("a:1")).Watch(context.Background(), func([]Endpoint) error { return boom })
	require.ErrorIs(t, err, boom)
}

func TestFollowAppliesSetsAndSkipsRejectedOnes(t *testing.T) {
	t.Parallel()
	bal, err := NewBalancer(RoundRobin{})
	require.NoError(t, err)
	defer bal.Close()
	r := make(rsvChan)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Follow(ctx, r, bal) }()

	r <- Addrs("a:1", "b:1")
	require.Eventually(t, func() bool { return len(bal.Backends()) == 2 }, 20*time.Second, time.Millisecond, "first set")
	snap := bal.snap.Load()

	// An identical set (reordered) does not rebuild the picker.
	r <- Addrs("b:1", "a:1")
	r <- Addrs("a:1", "a:1") // rejected: duplicate; the previous set stays
	r <- Addrs("a:1", "b:1")
	r <- Addrs("a:1", "b:1", "c:1")
	require. // sends block until the previous one was applied
			Eventually(t, func() bool { return len(bal.Backends()) == 3 }, 20*time.Second, time.Millisecond, "third backend")
	assert.Equal(t, []string{"a:1", "b:1", "c:1"}, rsvAddrs(bal.Backends()))
	assert.NotSame(t, snap, bal.snap.Load())

	cancel()
	require.ErrorIs(t, <-done, context.Canceled)
	assert.Len(t, bal.Backends(), 3, "stopping keeps the last set")
}

func TestFollowIdenticalSetKeepsPicker(t *testing.T) {
	t.Parallel()
	bal, err := NewBalancer(RoundRobin{})
	require.NoError(t, err)
	defer bal.Close()
	r := make(rsvChan)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- Follow(ctx, r, bal) }()
	r <- Addrs("a:1", "b:1")
	r <- Addrs("b:1", "a:1") // blocks until the first set was applied
	r <- Addrs("a:1", "b:1") // blocks until the second was handled
	snap := bal.snap.Load()
	r <- Addrs("b:1", "a:1")
	r <- Addrs("a:1", "b:1")
	assert.Same(t, snap, bal.snap.Load(), "an identical set rebuilt the picker")
	cancel()
	require.ErrorIs(t, <-done, context.Canceled)
}

func TestFollowEndsWhenBalancerCloses(t *testing.T) {
	t.Parallel()
	bal, err := NewBalancer(RoundRobin{})
	require.NoError(t, err)
	require.NoError(t, bal.Close())
	r := make(rsvChan, 1)
	r <- Addrs("a:1")
	require.ErrorIs(t, Follow(context.Background(), r, bal), ErrClosed)
}

func TestFollowRejectsNil(t *testing.T) {
	t.Parallel()
	bal, err := NewBalancer(RoundRobin{})
	require.NoError(t, err)
	defer bal.Close()
	require.ErrorIs(t, Follow(context.Background(), nil, bal), ErrInvalidConfig)
	require.ErrorIs(t, Follow(context.Background(), Static(Addrs("a:1")), nil), ErrInvalidConfig)
}

func TestFollowerReadyStopAndErr(t *testing.T) {
	t.Parallel()
	bal, err := NewBalancer(RoundRobin{})
	require.NoError(t, err)
	defer bal.Close()
	r := make(rsvChan)
	f := StartFollower(context.Background(), r, bal)
	select {
	case <-f.Ready():
		t.Fatal("ready before any set")
	default:
	}
	assert.NoError(t, f.Err(), "Err before Done")
	r <- Addrs("a:1")
	<-f.Ready()
	assert.Equal(t, []string{"a:1"}, rsvAddrs(bal.Backends()))
	require.NoError(t, f.Stop())
	require.NoError(t, f.Stop(), "Stop twice")
	<-f.Done()
	assert.NoError(t, f.Err())
}

func TestFollowerEndsWithContextOrResolverError(t *testing.T) {
	t.Parallel()
	bal, err := NewBalancer(RoundRobin{})
	require.NoError(t, err)
	defer bal.Close()

	ctx, cancel := context.WithCancel(context.Background())
	f := StartFollower(ctx, make(rsvChan), bal)
	cancel()
	<-f.Done()
	require.ErrorIs(t, f.Err(), context.Canceled)

	f = StartFollower(context.Background(), DNS{}, bal) // invalid: no name
	<-f.Done()
	require.ErrorIs(t, f.Err(), ErrInvalidConfig)
	require.ErrorIs(t, f.Stop(), ErrInvalidConfig)
}

func TestEqualEndpoints(t *testing.T) {
	t.Parallel()
	lab := func(kv ...string) map[string]string {
		m := map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	tests := []struct {
		name string
		a, b []Endpoint
		want bool
	}{
		{"both empty", nil, []Endpoint{}, true},
		{"same", Addrs("a:1", "b:1"), Addrs("a:1", "b:1"), true},
		{"weight 0 is 1", []Endpoint{{Addr: "a:1"}}, []Endpoint{{Addr: "a:1", Weight: 1}}, true},
		{"weight differs", []Endpoint{{Addr: "a:1", Weight: 2}}, []Endpoint{{Addr: "a:1"}}, false},
		{"order differs", Addrs("a:1", "b:1"), Addrs("b:1", "a:1"), false},
		{"length differs", Addrs("a:1"), Addrs("a:1", "b:1"), false},
		{"labels same", []Endpoint{{Addr: "a:1", Labels: lab("z", "1")}}, []Endpoint{{Addr: "a:1", Labels: lab("z", "1")}}, true},
		{"nil and empty labels", []Endpoint{{Addr: "a:1"}}, []Endpoint{{Addr: "a:1", Labels: lab()}}, true},
		{"label value differs", []Endpoint{{Addr: "a:1", Labels: lab("z", "1")}}, []Endpoint{{Addr: "a:1", Labels: lab("z", "2")}}, false},
		{"label key differs", []Endpoint{{Addr: "a:1", Labels: lab("z", "")}}, []Endpoint{{Addr: "a:1", Labels: lab("y", "")}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, tt.want, EqualEndpoints(tt.a, tt.b))
			assert.Equal(t, tt.want, EqualEndpoints(tt.b, tt.a))
		})
	}
}

func TestSRVEndpoints(t *testing.T) {
	t.Parallel()
	srv := func(target string, port, prio, weight uint16) *net.SRV {
		return &net.SRV{Target: target, Port: port, Priority: prio, Weight: weight}
	}
	tests := []struct {
		name string
		give []*net.SRV
		want []Endpoint
	}{
		{"none", nil, nil},
		{"weights divided by their gcd", []*net.SRV{srv("b.", 80, 1, 40), srv("a.", 80, 1, 60)},
			[]Endpoint{{Addr: "a.:80", Weight: 3}, {Addr: "b.:80", Weight: 2}}},
		{"only the lowest priority", []*net.SRV{srv("a.", 80, 20, 5), srv("b.", 80, 10, 5), srv("c.", 81, 10, 10)},
			[]Endpoint{{Addr: "b.:80", Weight: 1}, {Addr: "c.:81", Weight: 2}}},
		{"weight 0 counts as 1", []*net.SRV{srv("a.", 80, 0, 0), srv("b.", 80, 0, 9)},
			[]Endpoint{{Addr: "a.:80", Weight: 1}, {Addr: "b.:80", Weight: 9}}},
		{"all weights 0 share equally", []*net.SRV{srv("a.", 80, 0, 0), srv("b.", 80, 0, 0)},
			[]Endpoint{{Addr: "a.:80", Weight: 1}, {Addr: "b.:80", Weight: 1}}},
		{"duplicates add weights", []*net.SRV{srv("a.", 80, 0, 2), srv("a.", 80, 0, 4), srv("b.", 80, 0, 2)},
			[]Endpoint{{Addr: "a.:80", Weight: 3}, {Addr: "b.:80", Weight: 1}}},
		{"dot target and port 0 dropped, even at a lower priority", []*net.SRV{srv(".", 80, 0, 1), srv("a.", 0, 0, 1), srv("b.", 80, 5, 1), nil},
			[]Endpoint{{Addr: "b.:80", Weight: 1}}},
		{"only unusable records", []*net.SRV{srv(".", 80, 0, 1)}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, tt.want, srvEndpoints(tt.give))
		})
	}
}

func TestBackoff(t *testing.T) {
	t.Parallel()
	tests := []struct {
		n      int
		lo, hi time.Duration
		want   time.Duration
	}{
		{1, time.Second, 30 * time.Second, time.Second},
		{2, time.Second, 30 * time.Second, 2 * time.Second},
		{5, time.Second, 30 * time.Second, 16 * time.Second},
		{6, time.Second, 30 * time.Second, 30 * time.Second},
		{1000, time.Second, 30 * time.Second, 30 * time.Second},
		{1, time.Second, 50 * time.Millisecond, 50 * time.Millisecond},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, backoff(tt.n, tt.lo, tt.hi), "backoff(%d, %v, %v)", tt.n, tt.lo, tt.hi)
	}
	for i := 0; i < 1000; i++ {
		d := jittered(time.Second, 0.1)
		require.True(t, d >= 900*time.Millisecond && d <= 1100*time.Millisecond, "jittered: %v", d)
	}
}

// FuzzSRVEndpoints turns arbitrary SRV answers into endpoint sets: the
// result must be a valid, sorted, duplicate-free set from the lowest
// usable priority, with weights >= 1 whose gcd is 1.
//
// The input is a list of "target port priority weight" records separated
// by '|'.
func FuzzSRVEndpoints(f *testing.F) {
	f.Add("a. 80 1 60|b. 80 1 40|c. 80 2 1")
	f.Add(". 80 0 0|a. 0 0 1|x 1 0 0")
	f.Add("a. 80 0 0|a. 80 0 65535|b.:1 80 0 1")
	f.Add("[::1] 80 0 3| 1 0 0")
	f.Fuzz(func(t *testing.T, spec string) {
		var srvs []*net.SRV
		for _, rec := range strings.Split(spec, "|") {
			var nums [3]uint16
			fields := strings.Fields(rec)
			target := ""
			if len(fields) > 0 {
				target = fields[0]
			}
			for i := 1; i < len(fields) && i <= 3; i++ {
				n := 0
				for _, c := range fields[i] {
					n = (n*10 + int(c-'0')) & 0xffff
				}
				nums[i-1] = uint16(n)
			}
			srvs = append(srvs, &net.SRV{Target: target, Port: nums[0], Priority: nums[1], Weight: nums[2]})
		}
		eps := srvEndpoints(srvs)
		if len(eps) == 0 {
			for _, s := range srvs {
				require.False(t, usableSRV(s), "usable record %+v gave no endpoint", s)
			}
			return
		}
		require.NoError(t, validateSet(eps))
		require.True(t, sort.SliceIsSorted(eps, func(i, j int) bool { return eps[i].Addr < eps[j].Addr }))
		g := 0
		for _, e := range eps {
			require.GreaterOrEqual(t, e.Weight, 1)
			g = gcdInt(g, e.Weight)
		}
		require.Equal(t, 1, g)
		lowest := -1
		for _, s := range srvs {
			if usableSRV(s) && (lowest < 0 || int(s.Priority) < lowest) {
				lowest = int(s.Priority)
			}
		}
		for _, e := range eps {
			found := false
			for _, s := range srvs {
				if usableSRV(s) && int(s.Priority) == lowest && e.Addr == net.JoinHostPort(s.Target, strconv.Itoa(int(s.Port))) {
					found = true
				}
			}
			require.True(t, found, "endpoint %q is not from the lowest priority %d", e.Addr, lowest)
		}
	})
}
