package lb_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-lb/lb"
)

// A body that stalls after its headers is the backend's failure (with a
// body idle timeout): the read fails with ErrBodyStalled and the backend
// is ejected. Without one, a stall the caller's deadline ends is no
// success either.
func TestGrayStallAfterHeaders(t *testing.T) {
	t.Parallel()
	stalling := func(b *tbackend) chan struct{} {
		release := make(chan struct{})
		b.mu.Lock()
		b.handler = func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "100")
			_, _ = io.WriteString(w, "partial")
			w.(http.Flusher).Flush()
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
		b.mu.Unlock()
		return release
	}
	t.Run("body idle timeout", func(t *testing.T) {
		t.Parallel()
		b := startTBackend(t, "a")
		defer close(stalling(b))
		od := lb.OutlierDetection{ConsecutiveFailures: 3}
		tr, bal := newTestTransport(t, lb.RoundRobin{}, []lb.Endpoint{{Addr: b.addr}}, []lb.Option{lb.WithOutlierDetection(od)},
			lb.WithBodyIdleTimeout(100*time.Millisecond))
		for i := 0; i < 3; i++ {
			resp, err := tr.RoundTrip(getReq(i))
			require.NoError(t, err)
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
			require.ErrorIs(t, err, lb.ErrBodyStalled)
		}
		s := bal.Stats()[0]
		assert.EqualValues(t, 3, s.Failures)
		assert.Zero(t, s.Successes)
		assert.EqualValues(t, 1, s.Ejections)
		assert.EqualValues(t, 3, tr.Stats().BodyStalls)
	})
	t.Run("a slow reader is not a stall", func(t *testing.T) {
		t.Parallel()
		b := startTBackend(t, "a")
		b.mu.Lock()
		b.handler = func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, strings.Repeat("x", 1<<20)) }
		b.mu.Unlock()
		// The idle timeout is short next to the reader's pauses, long next
		// to a Read of bytes the backend has sent (a loaded machine's
		// scheduling included).
		tr, bal := newTestTransport(t, lb.RoundRobin{}, []lb.Endpoint{{Addr: b.addr}}, nil, lb.WithBodyIdleTimeout(time.Second))
		resp, err := tr.RoundTrip(getReq(0))
		require.NoError(t, err)
		buf := make([]byte, 1024)
		for i := 0; i < 3; i++ {
			_, err := io.ReadFull(resp.Body, buf)
			require.NoError(t, err)
			time.Sleep(1500 * time.Millisecond) // the caller is slow, not the backend (not waiting for a condition)
		}
		_, err = io.Copy(io.Discard, resp.Body)
		require.NoError(t, err)
		resp.Body.Close()
		assert.EqualValues(t, 1, bal.Stats()[0].Successes)
	})
	t.Run("no idle timeout: the caller's deadline is no success", func(t *testing.T) {
		t.Parallel()
		b := startTBackend(t, "a")
		defer close(stalling(b))
		tr, bal := newTestTransport(t, lb.RoundRobin{}, []lb.Endpoint{{Addr: b.addr}}, nil)
		c := &http.Client{Transport: tr, Timeout: 200 * time.Millisecond}
		resp, err := c.Get("http://svc.internal/")
		require.NoError(t, err)
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Error(t, err)
		s := bal.Stats()[0]
		assert.Zero(t, s.Successes, "a stall is never a success")
		assert.Zero(t, s.Failures, "nor, without an idle timeout, the backend's failure")
	})
}

// A connection reset in the middle of the body is the backend's failure.
func TestGrayResetMidBody(t *testing.T) {
	t.Parallel()
	b := startTBackend(t, "a")
	b.mu.Lock()
	b.handler = func(w http.ResponseWriter, r *http.Request) {
		conn, buf, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		_, _ = buf.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\npartial body")
		_ = buf.Flush()
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // close with a reset
		}
		conn.Close()
	}
	b.mu.Unlock()
	od := lb.OutlierDetection{ConsecutiveFailures: 3}
	tr, bal := newTestTransport(t, lb.RoundRobin{}, []lb.Endpoint{{Addr: b.addr}}, []lb.Option{lb.WithOutlierDetection(od)})
	for i := 0; i < 3; i++ {
		resp, err := tr.RoundTrip(getReq(i))
		require.NoError(t, err)
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Error(t, err)
	}
	s := bal.Stats()[0]
	assert.EqualValues(t, 3, s.Failures)
	assert.EqualValues(t, 1, s.Ejections)
}

// http.Client.Timeout is the caller's ending: never retried, never charged
// to a backend, and the error still says it was a deadline.
func TestGrayClientTimeout(t *testing.T) {
	t.Parallel()
	backs, eps := startTBackends(t, 3)
	for _, b := range backs {
		b.hold()
	}
	od := lb.OutlierDetection{ConsecutiveFailures: 1}
	tr, bal := newTestTransport(t, lb.RoundRobin{}, eps, []lb.Option{lb.WithOutlierDetection(od)})
	c := &http.Client{Transport: tr, Timeout: 100 * time.Millisecond}
	for i := 0; i < 12; i++ {
		_, err := c.Get("http://svc.internal/")
		require.Error(t, err)
		assert.ErrorIs(t, err, context.DeadlineExceeded, "net/http keeps this much of the chain")
		var ue interface{ Timeout() bool }
		require.True(t, errors.As(err, &ue) && ue.Timeout())
	}
	for _, s := range bal.Stats() {
		assert.Zero(t, s.Failures, "%s is not charged for the caller's timeout", s.Endpoint.Addr)
		assert.False(t, s.Ejected)
	}
	assert.Zero(t, tr.Stats().Retries, "a timed-out request is not retried")
	// Without http.Client (a context deadline), lb's own error is kept.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://svc.internal/", nil)
	_, err := tr.RoundTrip(req)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.ErrorIs(t, err, lb.ErrMaybeExecuted)
	for _, b := range backs {
		b.release()
	}
}

// Hedging: a slow backend's calls are answered by another backend; the
// losing attempt is cancelled and charged to nobody.
func TestGrayHedging(t *testing.T) {
	t.Parallel()
	backs, eps := startTBackends(t, 2)
	slow := backs[0]
	slow.mu.Lock()
	slow.handler = func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(2 * time.Second):
		case <-r.Context().Done():
			return
		}
		_, _ = io.WriteString(w, "slow")
	}
	slow.mu.Unlock()
	tr, bal := newTestTransport(t, lb.RoundRobin{Stripes: 1}, eps, nil, lb.WithHedging(lb.Hedging{Delay: 100 * time.Millisecond}))
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	var slowest time.Duration
	for i := 0; i < 10; i++ {
		start := time.Now()
		code, _, err := trGet(t, c, "http://svc.internal/")
		require.NoError(t, err)
		require.Equal(t, 200, code)
		slowest = max(slowest, time.Since(start))
	}
	ts := tr.Stats()
	t.Logf("hedging: 10 calls, the slowest %v; %d hedges, %d won", slowest.Round(time.Millisecond), ts.Hedges, ts.HedgeWins)
	assert.Less(t, slowest, 2*time.Second, "no call waited for the slow backend (it answers after 2 s)")
	assert.Positive(t, ts.HedgeWins, "the calls that started on the slow backend were answered by a hedge")
	// (A loaded machine may hedge a call of the fast backend too; the
	// slow one never answers first.)
	require.Eventually(t, func() bool { return statsOf(bal, slow.addr).InFlight == 0 }, 5*time.Second, time.Millisecond)
	s := statsOf(bal, slow.addr)
	assert.Zero(t, s.Failures, "the losing attempts are not charged")
	assert.Zero(t, s.Successes)

	// A POST is never hedged.
	resp, err := c.Post("http://svc.internal/", "text/plain", strings.NewReader("x"))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, ts.Hedges, tr.Stats().Hedges)
}

// A per-try timeout retries an idempotent request elsewhere, and fails a
// POST with an error that says it may have executed.
func TestGrayPerTryTimeout(t *testing.T) {
	t.Parallel()
	backs, eps := startTBackends(t, 2)
	hole := backs[0]
	hole.hold()
	defer hole.release()
	// A bound a loaded machine's healthy answers stay under.
	tr, bal := newTestTransport(t, lb.RoundRobin{Stripes: 1}, eps, nil, lb.WithPerTryTimeout(500*time.Millisecond))
	c := &http.Client{Transport: tr}
	var postErrs int
	for i := 0; i < 4; i++ {
		resp, err := c.Get("http://svc.internal/")
		require.NoError(t, err)
		resp.Body.Close()
		resp, err = c.Post("http://svc.internal/", "text/plain", strings.NewReader("x"))
		if err != nil {
			postErrs++
			assert.ErrorIs(t, err, lb.ErrPerTryTimeout)
			assert.ErrorIs(t, err, lb.ErrMaybeExecuted)
			continue
		}
		resp.Body.Close()
	}
	assert.Positive(t, postErrs)
	assert.Positive(t, statsOf(bal, hole.addr).Failures, "the hole is charged")
	assert.Positive(t, tr.Stats().PerTryTimeouts)
}

// The attempt observer sees every attempt, with whose failure it was.
func TestAttemptObserver(t *testing.T) {
	t.Parallel()
	backs, eps := startTBackends(t, 2)
	backs[0].mode.Store(mode503)
	var mu sync.Mutex
	var seen []lb.AttemptInfo
	tr, _ := newTestTransport(t, lb.RoundRobin{Stripes: 1}, eps, nil, lb.WithAttemptObserver(func(a lb.AttemptInfo) {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, a)
	}))
	c := &http.Client{Transport: tr}
	for i := 0; i < 4; i++ {
		code, _, err := trGet(t, c, "http://svc.internal/")
		require.NoError(t, err)
		require.Equal(t, 200, code)
	}
	mu.Lock()
	defer mu.Unlock()
	var failures, ok int
	for _, a := range seen {
		require.NotNil(t, a.Request)
		switch {
		case a.Backend == backs[0].addr:
			assert.Equal(t, 503, a.StatusCode)
			assert.True(t, a.Failure)
			assert.Equal(t, 1, a.Attempt)
			failures++
		default:
			assert.Equal(t, 200, a.StatusCode)
			assert.False(t, a.Failure)
			ok++
		}
	}
	assert.Equal(t, 4, ok)
	assert.Positive(t, failures, "the requests that started on the 503 backend")
	assert.Len(t, seen, ok+failures)
}
