package lb_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-lb/lb"
)

// Finishing a pick is idempotent: the first Done or Cancel wins, on the
// Pick or any copy of it, from any goroutine; in-flight never goes
// negative (P2C would then send everything to that backend), and the
// counts are those of one call. Still no allocation.
func TestPickFinishIsIdempotent(t *testing.T) {
	bal, err := lb.NewBalancer(lb.P2C{}, lb.WithEndpoints(lb.Addrs("a:1", "b:1")))
	require.NoError(t, err)
	defer bal.Close()
	fail := errors.New("refused")
	finish := []struct {
		name string
		run  func(p lb.Pick)
	}{
		{"Done twice", func(p lb.Pick) { p.Done(nil, time.Millisecond); p.Done(nil, time.Millisecond) }},
		{"Done then Cancel", func(p lb.Pick) { p.Done(fail, 0); p.Cancel() }},
		{"Cancel then Done", func(p lb.Pick) { p.Cancel(); p.Done(fail, 0) }},
		{"a copy finished too", func(p lb.Pick) { q := p; p.Done(nil, 0); q.Done(fail, 0); q.Cancel() }},
		{"copies from many goroutines", func(p lb.Pick) {
			var wg sync.WaitGroup
			for i := 0; i < 8; i++ {
				wg.Add(1)
				go func(q lb.Pick, i int) {
					defer wg.Done()
					if i%2 == 0 {
						q.Done(nil, time.Millisecond)
					} else {
						q.Cancel()
					}
				}(p, i)
			}
			wg.Wait()
		}},
	}
	for _, f := range finish {
		before := totals(bal)
		for i := 0; i < 50; i++ {
			p, err := bal.Pick("")
			require.NoError(t, err)
			f.run(p)
		}
		after := totals(bal)
		for _, s := range bal.Stats() {
			assert.Zero(t, s.InFlight, "%s: %s", f.name, s.Endpoint.Addr)
		}
		assert.Equal(t, uint64(50), after.picks-before.picks, f.name)
		assert.LessOrEqual(t, after.ended-before.ended, uint64(50), "%s: each pick ends once", f.name)
	}
	// A stale copy of a pick whose token has been reused since does not
	// finish the new pick.
	p1, _ := bal.Pick("")
	stale := p1
	p1.Done(nil, 0)
	p2, _ := bal.Pick("")
	stale.Done(fail, 0)
	inflight := int64(0)
	for _, s := range bal.Stats() {
		inflight += s.InFlight
	}
	assert.EqualValues(t, 1, inflight, "p2 is still in flight")
	p2.Done(nil, 0)

	allocs := testing.AllocsPerRun(1000, func() {
		p, _ := bal.Pick("")
		p.Done(nil, time.Millisecond)
		p.Done(nil, time.Millisecond)
		p.Cancel()
	})
	assert.Zero(t, allocs)
}

type counts struct{ picks, ended uint64 }

func totals(bal *lb.Balancer) counts {
	var c counts
	for _, s := range bal.Stats() {
		c.picks += s.Picks
		c.ended += s.Successes + s.Failures
	}
	return c
}

// Stats.Picks counts picks, cancelled ones included: it never goes down.
func TestStatsPicksNeverGoesDown(t *testing.T) {
	t.Parallel()
	bal, err := lb.NewBalancer(lb.RoundRobin{}, lb.WithEndpoints(lb.Addrs("a:1")))
	require.NoError(t, err)
	defer bal.Close()
	last := uint64(0)
	check := func(want uint64) {
		t.Helper()
		s := bal.Stats()[0]
		require.GreaterOrEqual(t, s.Picks, last, "Picks went down")
		assert.Equal(t, want, s.Picks)
		last = s.Picks
	}
	p, _ := bal.Pick("")
	check(1)
	p.Cancel()
	check(1)
	q, _ := bal.Pick("")
	q.Done(nil, 0)
	check(2)
	// Under concurrency too.
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				p, _ := bal.Pick("")
				if g%2 == 0 {
					p.Cancel()
				} else {
					p.Done(nil, 0)
				}
			}
		}(g)
	}
	for i := 0; i < 2000; i++ {
		s := bal.Stats()[0]
		require.GreaterOrEqual(t, s.Picks, last, "Picks went down")
		last = s.Picks
	}
	close(stop)
	wg.Wait()
	s := bal.Stats()[0]
	assert.Zero(t, s.InFlight)
	assert.GreaterOrEqual(t, s.Picks, last)
	assert.Greater(t, s.Picks, s.Successes, "the cancelled picks count too")
}

// A stream the caller cancels mid-body is neither a success nor a
// failure: the backend's failure streak is left as it was.
func TestTransportCancelledStreamIsNoSuccess(t *testing.T) {
	t.Parallel()
	b := startTBackend(t, "a")
	chunks := make(chan struct{})
	b.mu.Lock()
	b.handler = func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "first chunk")
		w.(http.Flusher).Flush()
		select {
		case <-chunks:
		case <-r.Context().Done():
		}
	}
	b.mu.Unlock()
	tr, bal := newTestTransport(t, lb.RoundRobin{}, []lb.Endpoint{{Addr: b.addr}}, nil, lb.WithFailureStatus(lb.Is5xx))
	// Two failures first: a streak of 2.
	pick, _ := bal.Pick("")
	pick.Done(errors.New("x"), 0)
	pick, _ = bal.Pick("")
	pick.Done(errors.New("x"), 0)
	require.EqualValues(t, 2, bal.Stats()[0].Streak)

	for _, how := range []string{"read after cancel", "close after cancel"} {
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://svc.internal/stream", nil)
		resp, err := tr.RoundTrip(req)
		require.NoError(t, err)
		buf := make([]byte, 5)
		_, err = io.ReadFull(resp.Body, buf)
		require.NoError(t, err)
		cancel()
		if how == "read after cancel" {
			_, err = io.ReadAll(resp.Body)
			require.Error(t, err)
		}
		resp.Body.Close()
		s := bal.Stats()[0]
		assert.Zero(t, s.Successes, how)
		assert.EqualValues(t, 2, s.Streak, "%s: the streak stays", how)
		assert.EqualValues(t, 2, s.Failures, how)
		assert.Zero(t, s.InFlight, how)
	}
	close(chunks)
}
