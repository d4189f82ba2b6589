package lb

import (
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// gateBuilder wraps a Builder: it counts builds, and once armed, blocks
// each build until the test lets it go.
type gateBuilder struct {
	Builder
	builds atomic.Int64
	armed  atomic.Bool
	gate   chan struct{}
}

func (g *gateBuilder) Build(bs []*Backend) (Picker, error) {
	g.builds.Add(1)
	if g.armed.Load() {
		<-g.gate
	}
	return g.Builder.Build(bs)
}

// No rebuild runs on a request's path: the Done that ejects a backend
// returns while the rebuild it caused is stuck, picks go on (and avoid the
// ejected backend), and changes made meanwhile are coalesced into one more
// build, not one each.
func TestEjectionNeverWaitsForARebuild(t *testing.T) {
	t.Parallel()
	g := &gateBuilder{Builder: RoundRobin{}, gate: make(chan struct{})}
	eps := benchEndpoints(10, false)
	bal, err := NewBalancer(g, WithEndpoints(eps),
		WithOutlierDetection(OutlierDetection{ConsecutiveFailures: 1, BaseEjectionTime: time.Hour, MaxEjectionPercent: 100}))
	require.NoError(t, err)
	g.armed.Store(true)
	before := g.builds.Load()

	victim := bal.Backends()[3]
	done := make(chan struct{})
	go func() {
		defer close(done)
		bal.newPick(victim).Done(errors.New("refused"), time.Millisecond)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the Done that ejects waited for the rebuild")
	}
	require.True(t, victim.Ejected())
	require.Eventually(t, func() bool { return g.builds.Load() == before+1 }, 5*time.Second, time.Millisecond, "the rebuild started")

	// While it is stuck: picks avoid the victim, more ejections and health
	// changes return at once.
	for i := 0; i < 200; i++ {
		p, err := bal.Pick("")
		require.NoError(t, err)
		require.NotSame(t, victim, p.Backend)
		p.Done(nil, 0)
	}
	for _, be := range bal.Backends()[4:8] {
		bal.newPick(be).Done(errors.New("refused"), 0)
	}
	for _, be := range bal.Backends()[8:] {
		require.NoError(t, bal.SetHealthy(be.Addr(), false))
	}
	assert.Equal(t, before+1, g.builds.Load(), "nothing built on the callers' goroutines")

	close(g.gate) // let every build through
	require.Eventually(t, func() bool {
		return len(bal.snap.Load().available) == 3 && !bal.rebuilding.Load()
	}, 5*time.Second, time.Millisecond, "the picker catches up")
	assert.LessOrEqual(t, g.builds.Load(), before+2, "6 changes during one rebuild cost one more build")
	require.NoError(t, bal.Close())
}

// fakeClock runs AfterFunc calls only when the test says so.
type fakeClock struct {
	mu    sync.Mutex
	now   time.Time
	queue []*fakeTimer
}

type fakeTimer struct {
	at      time.Time
	f       func()
	stopped bool
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{at: c.now.Add(d), f: f}
	c.queue = append(c.queue, t)
	return t
}

// Stop is called by the code under test with its own locks held, never
// while advance holds c.mu: the fields are read under c.mu by advance.
func (t *fakeTimer) Stop() bool { was := !t.stopped; t.stopped = true; return was }

// advance moves the clock by d and runs what is due, in order.
func (c *fakeClock) advance(d time.Duration) int {
	c.mu.Lock()
	c.now = c.now.Add(d)
	var due []*fakeTimer
	kept := c.queue[:0]
	for _, t := range c.queue {
		if !t.at.After(c.now) && !t.stopped {
			t.stopped = true // fired: Stop reports false from now on
			due = append(due, t)
		} else if !t.stopped {
			kept = append(kept, t)
		}
	}
	c.queue = kept
	c.mu.Unlock()
	for _, t := range due {
		t.f()
	}
	return len(due)
}

// On an injected Clock, ejection, the background rebuild and readmission
// all run in the clock's time: nothing happens until it says so.
func TestBalancerOnAClock(t *testing.T) {
	t.Parallel()
	clk := &fakeClock{now: time.Unix(1000, 0)}
	bal, err := NewBalancer(Ring{}, WithClock(clk), WithEndpoints(benchEndpoints(20, false)),
		WithOutlierDetection(OutlierDetection{ConsecutiveFailures: 2, BaseEjectionTime: 10 * time.Second}))
	require.NoError(t, err)
	defer bal.Close()
	victim := bal.Backends()[5]
	old := bal.snap.Load()
	for i := 0; i < 2; i++ {
		bal.newPick(victim).Done(errors.New("x"), 0)
	}
	require.True(t, victim.Ejected())
	assert.Equal(t, time.Unix(1010, 0), victim.Stats().EjectedUntil)
	assert.Same(t, old, bal.snap.Load(), "no rebuild until the clock runs it")

	// Meanwhile keys of the victim go where the rebuilt ring will put them.
	moved := map[string]*Backend{}
	for i := 0; i < 2000; i++ {
		k := strconv.Itoa(i)
		if be, _ := old.picker.Pick(k); be == victim {
			p, err := bal.Pick(k)
			require.NoError(t, err)
			moved[k] = p.Backend
			p.Cancel()
		}
	}
	require.NotEmpty(t, moved)
	assert.Equal(t, 1, clk.advance(0), "the rebuild")
	assert.NotSame(t, old, bal.snap.Load())
	for k, be := range moved {
		p, _ := bal.Pick(k)
		assert.Same(t, be, p.Backend, "key %s: the rebuilt ring agrees with the skip", k)
		p.Cancel()
	}
	clk.advance(9 * time.Second)
	assert.True(t, victim.Ejected())
	clk.advance(time.Second)
	assert.False(t, victim.Ejected(), "readmitted at 10s on the clock")
	clk.advance(0)
	assert.Len(t, bal.snap.Load().available, 20)
}

// A new backend's pool costs the same whatever the number of pools there
// already: no copy of them all (a cold start over 8,000 backends used to
// be quadratic).
func TestNewPoolIsConstantWork(t *testing.T) {
	allocsWith := func(n int) float64 {
		base := newBaseTransport(nil, 2, nil)
		for i := 0; i < n; i++ {
			base.poolFor(poolKey{addr: fmt.Sprintf("10.1.%d.%d:80", i>>8, i&255)})
		}
		i := 0
		return testing.AllocsPerRun(50, func() {
			base.poolFor(poolKey{addr: fmt.Sprintf("10.2.%d.%d:80", i>>8, i&255)})
			i++
		})
	}
	small, big := allocsWith(10), allocsWith(4000)
	assert.LessOrEqual(t, big, small+2, "allocations per new pool: %v with 10 pools, %v with 4,000", small, big)
}
