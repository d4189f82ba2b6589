package lb

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Policy is a Transport's rules above the Balancer, as one value: which
// outcomes of an attempt are the backend's failures (WithFailureStatus),
// which failures are retried and how often (WithMaxAttempts, idempotency,
// WithRetryNonIdempotent, the RetryBudget), Retry-After hold-offs
// (WithRetryAfter), the per-try and body idle timeouts, and hedging
// (WithHedging). NewTransport builds its Policy from its options and
// follows it for every request. NewPolicy builds the same Policy from the
// same options for a program that plays a Transport's decisions without
// sending requests through one: cmd/lbsim does, in simulated time, so that
// what it predicts follows these rules rather than a copy of them.
//
// A Transport applies the rules in this order, and a program that plays
// them should too: Begin when a request starts; after each attempt,
// Failed; for a failure, HoldOff, then Retryable, then (when that allows a
// retry) Pick.Done with the failure and Next for the backend of the
// retry. A success is Observed. A hedged request (Hedges > 0) launches
// its hedges through Next after HedgeDelay; the first success wins, and
// the attempts still running are cancelled and Lost.
//
// The times given to a Policy (now) are durations since an origin of the
// caller's choosing, on a clock that does not go backwards: a Transport
// gives the monotonic time since it was made; a simulation gives its
// simulated time. A Policy is safe for concurrent use. Its retry budget
// and latency histogram are its own: two Policies share nothing.
type Policy struct {
	maxAttempts   int
	retryAll      bool
	failStatus    func(code int) bool
	budget        *budget
	perTry        time.Duration // 0: none
	bodyIdle      time.Duration // 0: none
	hedge         *hedger       // nil: no hedging
	retryAfterMax time.Duration // longest Retry-After honoured; 0: none
}

// NewPolicy returns the Policy a Transport made with opts follows. Options
// that are not about these rules (WithBase, WithKey, WithHosts, ...) are
// accepted and have no effect. The errors wrap ErrInvalidConfig, as
// NewTransport's do.
func NewPolicy(opts ...TransportOption) (*Policy, error) {
	o, err := applyTransportOptions(opts)
	if err != nil {
		return nil, err
	}
	p, err := newPolicy(&o)
	if err != nil {
		return nil, err
	}
	return &p, nil
}

// newPolicy builds the Policy of validated options.
func newPolicy(o *transportOptions) (Policy, error) {
	rb, err := o.budget.withDefaults()
	if err != nil {
		return Policy{}, err
	}
	p := Policy{
		maxAttempts:   o.maxAttempts,
		retryAll:      o.retryAll,
		failStatus:    o.failStatus,
		budget:        newBudget(rb),
		perTry:        o.perTry,
		bodyIdle:      o.bodyIdle,
		retryAfterMax: o.retryAfterMax,
	}
	if o.hedgingSet {
		h, err := newHedger(o.hedging)
		if err != nil {
			return Policy{}, err
		}
		p.hedge = h
	}
	return p, nil
}

// Reasons a Transport stops retrying (Error.Reason).
const (
	reasonMaxAttempts   = "max attempts"
	reasonContextDone   = "context done"
	reasonNotIdempotent = "not idempotent"
	reasonBudget        = "retry budget exhausted"
	reasonNoBackend     = "no backend left"
)

// success reports whether an attempt's outcome is a success: a response
// whose status the failure policy does not name.
func (p *Policy) success(resp *http.Response, err error) bool {
	return err == nil && (p.failStatus == nil || !p.failStatus(resp.StatusCode))
}

// Failed reports whether an attempt's outcome is the backend's failure (an
// error, or a response whose status the failure policy names), and whether
// the request may have reached the backend: true for any response, false
// for an error that proves the request was never sent (see ErrNotSent).
// resp is the attempt's response when err is nil. Failed does not see the
// caller's side: the Transport takes an error that comes after the
// caller's context ended as the caller's, never the backend's, before it
// asks.
func (p *Policy) Failed(resp *http.Response, err error) (failed, maybeExecuted bool) {
	if p.success(resp, err) {
		return false, true
	}
	return true, err == nil || !notSent(err)
}

// Retryable returns why req may not be retried after its attempt n (from
// 1) failed, or "" if it may be, the retry budget and the backends left
// aside (see Next): "max attempts" after WithMaxAttempts attempts,
// "context done" once the caller gave up on req, "not idempotent" when the
// request may have executed (maybeExecuted, from Failed) and is not safe
// to send twice (its method is not idempotent and it has no idempotency
// key, unless WithRetryNonIdempotent). These are the Reasons of the
// *Error the Transport returns.
func (p *Policy) Retryable(req *http.Request, n int, maybeExecuted bool) string {
	switch {
	case n >= p.maxAttempts:
		return reasonMaxAttempts
	case callerDone(req):
		return reasonContextDone
	case maybeExecuted && !p.retryAll && !idempotent(req):
		return reasonNotIdempotent
	}
	return ""
}

// Begin counts a request in the retry budget, at now: once per request,
// before its first attempt.
func (p *Policy) Begin(now time.Duration) { p.budget.deposit(now) }

// Next takes a retry or a hedge from the retry budget at now, and picks
// its backend: one of bal's that is not in tried (Balancer.PickNext), for
// key. tried holds the backends of the request's attempts so far, one per
// attempt. When there is no next attempt, it returns why: "max attempts"
// (tried has WithMaxAttempts backends), "retry budget exhausted" (nothing
// was picked), or "no backend left" (the retry went back to the budget).
func (p *Policy) Next(bal *Balancer, key string, tried []*Backend, now time.Duration) (Pick, string) {
	if len(tried) >= p.maxAttempts {
		return Pick{}, reasonMaxAttempts
	}
	if !p.budget.withdraw(now) {
		return Pick{}, reasonBudget
	}
	next, err := bal.PickNext(key, tried)
	if err != nil {
		p.budget.refund(now)
		return Pick{}, reasonNoBackend
	}
	return next, ""
}

// HoldOff applies a response's Retry-After to the backend of pick: for a
// 429 or 503 whose Retry-After asks for a pause (seconds, or an HTTP date
// read on the Balancer's Clock), picks of the Balancer go around the
// backend for that long, up to WithRetryAfter's cap. It does nothing for
// other responses, or with WithRetryAfter(0).
func (p *Policy) HoldOff(pick Pick, resp *http.Response) {
	if p.retryAfterMax <= 0 || pick.bal == nil || resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode != http.StatusServiceUnavailable {
		return
	}
	v := resp.Header.Get("Retry-After")
	if v == "" {
		return
	}
	var d time.Duration
	if n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil {
		if n <= 0 {
			return
		}
		d = time.Duration(min(n, int64(p.retryAfterMax/time.Second)+1)) * time.Second
	} else if at, err := http.ParseTime(v); err == nil {
		d = at.Sub(pick.bal.opts.clock.Now())
	}
	if d = min(d, p.retryAfterMax); d > 0 {
		pick.bal.holdOff(pick.Backend, d)
	}
}

// Hedges returns how many hedged attempts req may get (Hedging.MaxHedges),
// or 0 when it is not hedged: hedging is off, WithMaxAttempts is 1, or req
// is not safe to send twice (a method that is not idempotent, or a body
// without GetBody).
func (p *Policy) Hedges(req *http.Request) int {
	if p.hedge == nil || p.maxAttempts <= 1 || !hedgeable(req) {
		return 0
	}
	return p.hedge.MaxHedges
}

// HedgeDelay returns how long an attempt waits for response headers
// before a hedge goes out: Hedging.Delay, or the percentile of the
// latencies given to Observe; 0 means no hedge (hedging is off, or too few
// latencies have been seen).
func (p *Policy) HedgeDelay() time.Duration {
	if p.hedge == nil {
		return 0
	}
	return p.hedge.delay()
}

// Observe records a successful attempt's time to response headers, which
// HedgeDelay's percentile follows. It does nothing without hedging.
func (p *Policy) Observe(latency time.Duration) {
	if p.hedge != nil {
		p.hedge.observe(latency)
	}
}

// Lost ends the pick of an attempt that lost a hedged request's race,
// cancelled after latency: neither a success nor a failure of its
// backend, but the backend's latency average takes latency as a lower
// bound of the call's (a sample that never lowers it), so that P2C stops
// sending first attempts to a backend whose calls are always outrun.
func (p *Policy) Lost(pick Pick, latency time.Duration) { pick.cancelSlow(latency) }
