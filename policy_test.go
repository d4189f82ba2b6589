package lb

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestNewPolicyValidates(t *testing.T) {
	t.Parallel()
	tests := []struct {
		give []TransportOption
		want string
	}{
		{[]TransportOption{WithMaxAttempts(0)}, "WithMaxAttempts(0)"},
		{[]TransportOption{WithRetryBudget(RetryBudget{Ratio: 2000})}, "RetryBudget.Ratio is 2000"},
		{[]TransportOption{WithPerTryTimeout(-time.Second)}, "WithPerTryTimeout(-1s)"},
		{[]TransportOption{WithHedging(Hedging{Percentile: 2})}, "Hedging.Percentile is 2"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			t.Parallel()
			_, err := NewPolicy(tt.give...)
			require.ErrorIs(t, err, ErrInvalidConfig)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
	p, err := NewPolicy(nil, WithKey(HeaderKey("X-User")), WithBase(http.DefaultTransport))
	require.NoError(t, err, "options that are not rules are accepted")
	assert.Zero(t, p.HedgeDelay())
}

func TestPolicyFailed(t *testing.T) {
	t.Parallel()
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	reset := &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}
	status := func(code int) *http.Response { return &http.Response{StatusCode: code, Header: http.Header{}} }
	tests := []struct {
		name        string
		opts        []TransportOption
		resp        *http.Response
		err         error
		fail, maybe bool
	}{
		{"200", nil, status(200), nil, false, true},
		{"503 by default", nil, status(503), nil, true, true},
		{"500 is not a failure by default", nil, status(500), nil, false, true},
		{"500 with Is5xx", []TransportOption{WithFailureStatus(Is5xx)}, status(500), nil, true, true},
		{"503 with no status policy", []TransportOption{WithFailureStatus(nil)}, status(503), nil, false, true},
		{"refused dial: not sent", nil, nil, refused, true, false},
		{"dial error of the default base", nil, nil, &dialError{errors.New("x")}, true, false},
		{"wraps ErrNotSent", nil, nil, fmt.Errorf("mine: %w", ErrNotSent), true, false},
		{"name did not resolve", nil, nil, &net.DNSError{Err: "no such host", Name: "x"}, true, false},
		{"reset after writing", nil, nil, reset, true, true},
		{"per-try timeout", nil, nil, &perTryError{after: time.Second}, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, err := NewPolicy(tt.opts...)
			require.NoError(t, err)
			fail, maybe := p.Failed(tt.resp, tt.err)
			assert.Equal(t, tt.fail, fail, "failed")
			assert.Equal(t, tt.maybe, maybe, "may have executed")
		})
	}
}

func TestPolicyRetryable(t *testing.T) {
	t.Parallel()
	get, _ := http.NewRequest(http.MethodGet, "http://svc/", nil)
	post, _ := http.NewRequest(http.MethodPost, "http://svc/", nil)
	keyed, _ := http.NewRequest(http.MethodPost, "http://svc/", nil)
	keyed.Header.Set("Idempotency-Key", "k1")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	gone := get.WithContext(ctx)
	tests := []struct {
		name  string
		opts  []TransportOption
		req   *http.Request
		n     int
		maybe bool
		want  string
	}{
		{"first of three", nil, get, 1, true, ""},
		{"third of three", nil, get, 3, true, "max attempts"},
		{"one attempt", []TransportOption{WithMaxAttempts(1)}, get, 1, false, "max attempts"},
		{"POST that may have executed", nil, post, 1, true, "not idempotent"},
		{"POST never sent", nil, post, 1, false, ""},
		{"POST with an idempotency key", nil, keyed, 1, true, ""},
		{"POST, non-idempotent retries allowed", []TransportOption{WithRetryNonIdempotent(true)}, post, 1, true, ""},
		{"the caller gave up", nil, gone, 1, false, "context done"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, err := NewPolicy(tt.opts...)
			require.NoError(t, err)
			assert.Equal(t, tt.want, p.Retryable(tt.req, tt.n, tt.maybe))
		})
	}
}

// Next spends the retry budget in the time it is given: a simulation's
// seconds count as seconds.
func TestPolicyNextInGivenTime(t *testing.T) {
	t.Parallel()
	bal, err := NewBalancer(RoundRobin{}, WithEndpoints(Addrs("a:1", "b:1", "c:1")))
	require.NoError(t, err)
	defer bal.Close()
	p, err := NewPolicy(WithMaxAttempts(3), WithRetryBudget(RetryBudget{Ratio: 0.5, MinPerSecond: 1, Window: 10 * time.Second}))
	require.NoError(t, err)
	at := func(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
	for range 20 {
		p.Begin(at(100))
	}
	first := bal.Backends()[0]
	granted := 0
	for {
		pick, reason := p.Next(bal, "", []*Backend{first}, at(100.5))
		if reason != "" {
			assert.Equal(t, "retry budget exhausted", reason)
			break
		}
		assert.NotEqual(t, first, pick.Backend, "never the backend tried")
		pick.Cancel()
		granted++
	}
	assert.Equal(t, 10+10, granted, "the floor (1/s over 10 s) plus half of 20 requests")
	// 11 s later the window has moved past all of it: the floor again.
	granted = 0
	for ; ; granted++ {
		pick, reason := p.Next(bal, "", []*Backend{first}, at(111))
		if reason != "" {
			break
		}
		pick.Cancel()
	}
	assert.Equal(t, 10, granted)

	_, reason := p.Next(bal, "", bal.Backends(), at(200))
	assert.Equal(t, "max attempts", reason)
	p2, err := NewPolicy(WithMaxAttempts(5), WithRetryBudget(RetryBudget{Ratio: 0.1, MinPerSecond: 1, Window: time.Second}))
	require.NoError(t, err)
	for range 2 {
		_, reason = p2.Next(bal, "", bal.Backends(), at(300))
		assert.Equal(t, "no backend left", reason, "and the retry goes back to the budget")
	}
	pick, reason := p2.Next(bal, "", bal.Backends()[:1], at(300))
	assert.Empty(t, reason, "the floor's one retry is still there")
	pick.Cancel()
	_, reason = p2.Next(bal, "", bal.Backends()[:1], at(300))
	assert.Equal(t, "retry budget exhausted", reason)
}

// HoldOff reads an HTTP date on the Balancer's clock, and holds the
// backend off on it.
func TestPolicyHoldOffOnTheBalancersClock(t *testing.T) {
	t.Parallel()
	clk := &fakeClock{now: time.Unix(5000, 0)}
	bal, err := NewBalancer(RoundRobin{}, WithClock(clk), WithEndpoints(Addrs("a:1", "b:1")))
	require.NoError(t, err)
	defer bal.Close()
	p, err := NewPolicy(WithRetryAfter(10 * time.Second))
	require.NoError(t, err)
	pick, err := bal.Pick("")
	require.NoError(t, err)
	resp := &http.Response{StatusCode: 503, Header: http.Header{}}
	resp.Header.Set("Retry-After", clk.Now().Add(4*time.Second).UTC().Format(http.TimeFormat))
	p.HoldOff(pick, resp)
	pick.Cancel()
	assert.True(t, pick.Backend.out.Load() != 0, "held off")
	clk.advance(3 * time.Second)
	assert.True(t, pick.Backend.out.Load() != 0, "still held off after 3 s")
	clk.advance(time.Second)
	assert.Zero(t, pick.Backend.out.Load(), "back after 4 s of the clock")

	resp.StatusCode = 500
	p.HoldOff(pick, resp)
	assert.Zero(t, pick.Backend.out.Load(), "a 500 asks for nothing")
}

func TestPolicyHedges(t *testing.T) {
	t.Parallel()
	get, _ := http.NewRequest(http.MethodGet, "http://svc/", nil)
	post, _ := http.NewRequest(http.MethodPost, "http://svc/", nil)
	fixed, err := NewPolicy(WithHedging(Hedging{Delay: 5 * time.Millisecond, MaxHedges: 2}))
	require.NoError(t, err)
	assert.Equal(t, 2, fixed.Hedges(get))
	assert.Zero(t, fixed.Hedges(post), "a POST is never hedged")
	assert.Equal(t, 5*time.Millisecond, fixed.HedgeDelay())
	one, err := NewPolicy(WithHedging(Hedging{}), WithMaxAttempts(1))
	require.NoError(t, err)
	assert.Zero(t, one.Hedges(get), "one attempt leaves no room for a hedge")
	off, err := NewPolicy()
	require.NoError(t, err)
	assert.Zero(t, off.Hedges(get))
	off.Observe(time.Second) // does nothing without hedging

	pct, err := NewPolicy(WithHedging(Hedging{Percentile: 0.9}))
	require.NoError(t, err)
	for i := range 128 {
		assert.Zero(t, pct.HedgeDelay(), "no delay before enough samples (%d)", i)
		d := 10 * time.Millisecond
		if i%20 == 0 {
			d = 100 * time.Millisecond
		}
		pct.Observe(d)
	}
	assert.InDelta(t, float64(10*time.Millisecond), float64(pct.HedgeDelay()), float64(3*time.Millisecond),
		"the 90th percentile of 95%% 10 ms, 5%% 100 ms")
}

// A hedge's loser is neither a success nor a failure, and its latency is
// a floor for its backend's average.
func TestPolicyLost(t *testing.T) {
	t.Parallel()
	bal, err := NewBalancer(P2C{}, WithEndpoints(Addrs("a:1", "b:1")))
	require.NoError(t, err)
	defer bal.Close()
	p, err := NewPolicy(WithHedging(Hedging{Delay: time.Millisecond}))
	require.NoError(t, err)
	pick, err := bal.Pick("")
	require.NoError(t, err)
	pick.Done(nil, 10*time.Millisecond)
	pick, err = bal.PickNext("", nil)
	require.NoError(t, err)
	be := pick.Backend
	before := be.Stats()
	p.Lost(pick, 80*time.Millisecond)
	after := be.Stats()
	assert.Equal(t, before.Successes, after.Successes)
	assert.Equal(t, before.Failures, after.Failures)
	assert.Zero(t, after.InFlight)
	assert.Greater(t, after.Latency, before.Latency, "the loser's 80 ms raise the average")
	p.Lost(pick, time.Hour)
	assert.Equal(t, after.Latency, be.Stats().Latency, "a pick ends once")
}
