package lb

import (
	"context"
	"fmt"
	"io"
	"math"
	"math/bits"
	"net/http"
	"sync/atomic"
	"time"
)

// Hedging configures hedged requests (WithHedging), after "The Tail at
// Scale" (Dean and Barroso): when an attempt has no response headers after
// a delay, a second attempt goes to another backend, and the first
// response wins; the other attempt is cancelled, and counts as neither a
// success nor a failure of its backend. Only requests that are safe to
// send twice are hedged: an idempotent method (or an Idempotency-Key) and
// a body that can be sent again (none, or GetBody). Hedges spend the retry
// budget, and the attempts of a request, hedged or retried, stay within
// WithMaxAttempts. Zero fields take the defaults.
type Hedging struct {
	// Delay is how long an attempt waits for headers before a hedge goes
	// out; 0 means a percentile of the Transport's recent attempts.
	Delay time.Duration
	// Percentile of recent attempts' time to headers that is the delay
	// when Delay is 0, from 0.5 to 0.999; default 0.95. Until 100 attempts
	// have been seen, nothing is hedged.
	Percentile float64
	// MinDelay floors the delay taken from Percentile; default 1ms.
	MinDelay time.Duration
	// MaxHedges caps the hedged attempts of one request; default 1.
	MaxHedges int
}

// WithHedging turns hedging on (off by default); see Hedging.
// NewTransport returns its validation error.
func WithHedging(h Hedging) TransportOption {
	return transportOptionFunc(func(o *transportOptions) { o.hedging, o.hedgingSet = h, true })
}

// hedger is Hedging at work: its settings and a histogram of the
// Transport's recent attempt latencies, for the percentile.
type hedger struct {
	Hedging
	samples atomic.Uint64
	buckets [latencyBuckets]atomic.Uint32
	delayNs atomic.Int64 // the current delay from the histogram; 0: not yet
}

func newHedger(h Hedging) (*hedger, error) {
	bad := func(format string, args ...any) (*hedger, error) {
		return nil, fmt.Errorf("%w: Hedging."+format, append([]any{ErrInvalidConfig}, args...)...)
	}
	switch {
	case h.Delay < 0:
		return bad("Delay is %v; it must be >= 0 (0 means from Percentile)", h.Delay)
	case h.Percentile != 0 && !(h.Percentile >= 0.5 && h.Percentile <= 0.999):
		return bad("Percentile is %v; it must be 0 (default 0.95) or from 0.5 to 0.999", h.Percentile)
	case h.MinDelay < 0:
		return bad("MinDelay is %v; it must be >= 0 (0 means 1ms)", h.MinDelay)
	case h.MaxHedges < 0 || h.MaxHedges > 10:
		return bad("MaxHedges is %d; it must be 0 (default 1) to 10", h.MaxHedges)
	}
	if h.Percentile == 0 {
		h.Percentile = 0.95
	}
	if h.MinDelay == 0 {
		h.MinDelay = time.Millisecond
	}
	if h.MaxHedges == 0 {
		h.MaxHedges = 1
	}
	return &hedger{Hedging: h}, nil
}

// Latency histogram: four buckets per octave from 1,024 ns (bucket 0:
// less), enough for hours. Counts halve every decayEvery samples, so the
// percentile follows the recent past.
const (
	latencyBuckets = 4 * 34
	decayEvery     = 4096
	recomputeEvery = 64
	minSamples     = 100
	firstOctave    = 10 // 2^10 ns
)

func latencyBucket(d time.Duration) int {
	ns := uint64(max(d, 0))
	oct := bits.Len64(ns) - 1 // 2^oct <= ns
	if oct < firstOctave {
		return 0
	}
	sub := int(ns>>(oct-2)) & 3
	return min(1+4*(oct-firstOctave)+sub, latencyBuckets-1)
}

// bucketTop is the upper edge of a bucket (the first value of the next).
func bucketTop(i int) time.Duration {
	if i == 0 {
		return 1 << firstOctave
	}
	oct, sub := (i-1)/4+firstOctave, (i-1)%4
	return time.Duration(uint64(5+sub) << (oct - 2))
}

// observe records one attempt's time to headers.
func (h *hedger) observe(d time.Duration) {
	h.buckets[latencyBucket(d)].Add(1)
	n := h.samples.Add(1)
	if n%decayEvery == 0 {
		for i := range h.buckets {
			h.buckets[i].Store(h.buckets[i].Load() / 2)
		}
	}
	if n >= minSamples && n%recomputeEvery == 0 && h.Delay == 0 {
		h.delayNs.Store(int64(max(h.percentile(), h.MinDelay)))
	}
}

// percentile returns the Percentile of the histogram (a bucket's top).
func (h *hedger) percentile() time.Duration {
	var counts [latencyBuckets]uint32
	var total uint64
	for i := range h.buckets {
		counts[i] = h.buckets[i].Load()
		total += uint64(counts[i])
	}
	want := uint64(math.Ceil(h.Percentile * float64(total)))
	var seen uint64
	for i, c := range counts {
		if seen += uint64(c); seen >= want {
			return bucketTop(i)
		}
	}
	return bucketTop(latencyBuckets - 1)
}

// delay returns how long to wait before a hedge, or 0 for no hedge yet.
func (h *hedger) delay() time.Duration {
	if h.Delay > 0 {
		return h.Delay
	}
	return time.Duration(h.delayNs.Load())
}

// hedgeable reports whether req may be sent twice at once.
func hedgeable(req *http.Request) bool {
	return idempotent(req) && (req.Body == nil || req.Body == http.NoBody || req.GetBody != nil)
}

// hedgeResult is what one attempt of a hedged request came back with.
type hedgeResult struct {
	a      *attempt
	pick   Pick
	resp   *http.Response
	err    error
	check  *bodyCheck
	hedged bool
	n      int // the attempt's number
}

// roundTripHedged runs the attempts of a hedged request: the first on
// pick, a hedge after the delay (up to MaxHedges), a retry after a
// failure, all within the attempt limit and the retry budget. The first
// success wins.
func (t *Transport) roundTripHedged(req *http.Request, key string, pick Pick, start time.Duration) (*http.Response, error) {
	var (
		results  = make(chan hedgeResult, t.pol.maxAttempts)
		cancels  = make(map[*attempt]context.CancelCauseFunc, t.pol.maxAttempts)
		tried    []*Backend
		launched int
		hedges   int
		e        *Error
		fallback *http.Response
	)
	launch := func(p Pick, body io.ReadCloser, check *bodyCheck, hedged bool, at time.Duration) {
		tried = append(tried, p.Backend)
		launched++
		n := launched
		ctx, cancel := context.WithCancelCause(req.Context())
		a, out, rt := t.outgoing(req, p, body)
		a.cancel = cancel
		cancels[a] = cancel
		go func() {
			a, resp, err := t.sendOut(req, a, out.WithContext(ctx), rt, at)
			results <- hedgeResult{a: a, pick: p, resp: resp, err: err, check: check, hedged: hedged, n: n}
		}()
	}
	// drain finishes the attempts still in flight once the request is
	// decided: they are cancelled, and neither succeed nor fail.
	drain := func() {
		n := len(cancels)
		for _, cancel := range cancels {
			cancel(ErrHedgeLost)
		}
		if n == 0 {
			return
		}
		go func() {
			for i := 0; i < n; i++ {
				r := <-results
				t.observe(req, r.pick, r.n, r.hedged, r.a, r.resp, r.err, false)
				if r.resp != nil {
					r.resp.Body.Close()
				}
				r.a.release()
				// A loser is neither a success nor a failure, but it
				// took at least this long: its latency average learns
				// that, so that P2C stops sending first attempts to a
				// backend whose calls are always outrun.
				t.pol.Lost(r.pick, r.a.lat)
			}
		}()
	}
	body, check := t.firstBody(req)
	launch(pick, body, check, false, start)

	var timerC <-chan time.Time
	if d := t.pol.hedge.delay(); d > 0 && t.pol.maxAttempts > 1 {
		timer := time.NewTimer(d)
		defer timer.Stop()
		timerC = timer.C
	}
	next := func(hedged bool) bool {
		now := t.clock()
		p, reason := t.pol.Next(t.bal, key, tried, now)
		if reason != "" {
			if reason == reasonBudget {
				t.retriesDenied.Add(1)
			}
			return false
		}
		body, check := t.againBody(req)
		if body == nil && req.Body != nil && req.Body != http.NoBody {
			p.Cancel()
			t.pol.budget.refund(now)
			return false
		}
		launch(p, body, check, hedged, now)
		return true
	}
	for {
		select {
		case <-timerC:
			timerC = nil
			if hedges < t.pol.hedge.MaxHedges && next(true) {
				hedges++
				t.hedges.Add(1)
				if hedges < t.pol.hedge.MaxHedges {
					timer := time.NewTimer(t.pol.hedge.delay())
					defer timer.Stop()
					timerC = timer.C
				}
			}
		case r := <-results:
			delete(cancels, r.a)
			resp, err := r.resp, r.err
			if t.pol.success(resp, err) {
				drain()
				if r.hedged {
					t.hedgeWins.Add(1)
				}
				t.pol.hedge.observe(r.a.lat)
				t.observe(req, r.pick, r.n, r.hedged, r.a, resp, nil, false)
				return t.answer(req, r.a, resp, nil), nil
			}
			_, maybe := t.pol.Failed(resp, err)
			attErr := err
			if err == nil {
				attErr = statusError{resp.StatusCode}
			}
			if e == nil {
				e = new(Error)
			}
			if err != nil && r.check != nil {
				if cause := r.check.failure(); cause != nil {
					t.observe(req, r.pick, r.n, r.hedged, r.a, nil, err, false)
					attErr = fmt.Errorf("%w: the request body failed: %w", ErrInvalidRequest, cause)
					e.Attempts = append(e.Attempts, AttemptError{Addr: r.pick.Addr(), Err: attErr, MaybeExecuted: maybe})
					e.Err, e.MaybeExecuted = attErr, e.MaybeExecuted || maybe
					r.a.release()
					r.pick.Cancel()
					drain()
					return t.giveUp(e, fallback, req, "request body failed")
				}
			}
			e.Attempts = append(e.Attempts, AttemptError{Addr: r.pick.Addr(), Err: attErr, MaybeExecuted: maybe})
			e.Err, e.MaybeExecuted = attErr, e.MaybeExecuted || maybe
			r.a.release()
			if err != nil && callerDone(req) {
				t.observe(req, r.pick, r.n, r.hedged, r.a, nil, err, false)
				r.pick.Cancel()
				drain()
				return nil, t.fail(e, req, reasonContextDone)
			}
			t.observe(req, r.pick, r.n, r.hedged, r.a, resp, err, true)
			if err == nil {
				t.pol.HoldOff(r.pick, resp)
				r.pick.Done(errFailureStatus, r.a.lat)
				if bufferBody(resp) {
					if fallback != nil {
						fallback.Body.Close()
					}
					fallback = resp
					claim(req, resp, r.pick.Backend)
				} else {
					resp.Body.Close()
				}
			} else {
				r.pick.Done(err, r.a.lat)
			}
			if next(false) {
				t.retries.Add(1)
				continue
			}
			if len(cancels) == 0 {
				reason := reasonMaxAttempts
				if launched < t.pol.maxAttempts {
					reason = "no backend left, or the retry budget is exhausted"
				}
				return t.giveUp(e, fallback, req, reason)
			}
		}
	}
}

// firstBody returns the first attempt's request body, checked for the
// caller's failures.
func (t *Transport) firstBody(req *http.Request) (io.ReadCloser, *bodyCheck) {
	if req.Body == nil || req.Body == http.NoBody {
		return req.Body, nil
	}
	cb := newCheckedBody(req.Body, req.ContentLength)
	return cb, &cb.bodyCheck
}

// againBody returns another attempt's request body, from GetBody (nil if
// it fails).
func (t *Transport) againBody(req *http.Request) (io.ReadCloser, *bodyCheck) {
	if req.Body == nil || req.Body == http.NoBody {
		return req.Body, nil
	}
	b, err := req.GetBody()
	if err != nil {
		return nil, nil
	}
	cb := newCheckedBody(b, req.ContentLength)
	return cb, &cb.bodyCheck
}
