package lb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"
)

// Transport is an http.RoundTripper that sends each request to a backend
// of a Balancer:
//
//	client := &http.Client{Transport: tr} // tr, err := lb.NewTransport(bal)
//	resp, err := client.Get("http://users.internal/v1/users/42")
//
// For each request it extracts the hash key (WithKey), picks a backend,
// and sends the request to the backend's address. The Host header and the
// TLS server name stay the request's logical host, so virtual hosting and
// certificate checks work as without a balancer. The default base
// transport dials the backend itself, so the request goes out as it is,
// without a copy; a base given with WithBase gets a copy whose URL names
// the backend. The caller's request is never modified, its body is always
// closed, and it is the Request of the response returned: ServedBy tells
// which backend answered.
//
// The pick is finished (Pick.Done) when the response body is read to the
// end or closed, or at once on error, so in-flight counts include
// streaming bodies; the time to the response headers feeds the backend's
// latency EWMA. Connection errors, and the statuses WithFailureStatus
// names, count as backend failures and drive outlier ejection
// (WithOutlierDetection on the Balancer); a request whose context the
// caller ended is not the backend's failure.
//
// A failed attempt is retried on a backend not yet tried for the request
// (Balancer.PickNext), up to WithMaxAttempts attempts, when that cannot
// duplicate a side effect: the request never reached a backend (see
// ErrNotSent: proven by where the error happened, a dial or a TLS
// handshake, never by its type), or its method is idempotent (GET, HEAD,
// OPTIONS, TRACE, PUT, DELETE, or an Idempotency-Key header) and its body
// can be sent again (none, or GetBody set, as http.NewRequest does for
// in-memory bodies); WithRetryNonIdempotent lifts the method rule.
// Retries spend a RetryBudget. The error returned when no attempt gave a
// response is an *Error: it lists the backends tried and why each failed,
// and says whether the request may have executed (ErrMaybeExecuted) or was
// never sent (ErrNotSent).
//
// Whose fault a failure is decides what it counts for. A request that
// net/http would refuse to send (an invalid header, method or scheme) is
// refused before a pick, and a request body that fails on the caller's
// side (a read error, a length other than ContentLength) ends the request;
// both wrap ErrInvalidRequest and never count against a backend. The
// caller's cancelled context ends everything at once and counts as neither
// a success nor a failure, also when it cuts a streaming body short.
//
// Without WithHosts, every request goes to the Balancer's backends,
// whatever the host of its URL: a redirect to another site would be sent
// to the pool too. WithHosts names the hosts the Transport serves; others
// go to WithFallback's RoundTripper, or are refused (ErrUnknownHost). A
// Transport is safe for concurrent use. Response bodies must be closed (as
// with any http.Client), or the backend's in-flight count never drops.
//
// Memory: the default base keeps one http.Transport per backend that was
// sent a request, about 0.8 KiB with no connection open; each idle
// connection costs what net/http's do (two goroutines and their buffers,
// some 20 KiB).
type Transport struct {
	bal      *Balancer
	base     http.RoundTripper
	own      *baseTransport // the default base; nil with WithBase
	key      KeyFunc
	pol      Policy // the rules: failures, retries, budget, timeouts, hedging
	observer func(AttemptInfo)
	hosts    *hostSet          // nil: every host
	fallback http.RoundTripper // for other hosts; nil: refuse them
	netHTTP  bool              // the base is net/http's: only http and https
	epoch    time.Time         // clock's zero; it has a monotonic reading
	log      *slog.Logger

	_              [64]byte // the counters below are written on every request
	requests       atomic.Uint64
	_              [56]byte
	retries        atomic.Uint64
	retriesDenied  atomic.Uint64
	errors         atomic.Uint64
	hedges         atomic.Uint64
	hedgeWins      atomic.Uint64
	perTryTimeouts atomic.Uint64
	stalls         atomic.Uint64
}

// NewTransport returns a Transport that sends requests to bal's backends.
// The errors wrap ErrInvalidConfig: a nil Balancer, an invalid option.
func NewTransport(bal *Balancer, opts ...TransportOption) (*Transport, error) {
	if bal == nil {
		return nil, fmt.Errorf("%w: NewTransport needs a Balancer, got nil", ErrInvalidConfig)
	}
	o, err := applyTransportOptions(opts)
	if err != nil {
		return nil, err
	}
	if o.base != nil && (o.tlsConfig != nil || o.idleSet || o.protocolsSet) {
		return nil, fmt.Errorf("%w: WithTLSClientConfig, WithMaxIdleConnsPerBackend and WithProtocols configure the default base transport; configure your own base (WithBase) instead", ErrInvalidConfig)
	}
	if err := setProtocols(&http.Transport{}, &o.protocols); err != nil {
		return nil, err
	}
	var hosts *hostSet
	if o.hostsSet {
		hs, err := newHostSet(o.hosts)
		if err != nil {
			return nil, err
		}
		hosts = hs
	} else if o.fallback != nil {
		return nil, fmt.Errorf("%w: WithFallback needs WithHosts (the hosts that are not the fallback's)", ErrInvalidConfig)
	}
	pol, err := newPolicy(&o)
	if err != nil {
		return nil, err
	}
	t := &Transport{
		bal:      bal,
		base:     o.base,
		key:      o.key,
		pol:      pol,
		hosts:    hosts,
		fallback: o.fallback,
		observer: o.observer,
		epoch:    time.Now(),
		log:      o.log,
	}
	if t.base == nil {
		t.own = newBaseTransport(o.tlsConfig, o.maxIdle, bal)
		t.own.protocols = o.protocols
		t.base = t.own
	}
	_, isHTTP := t.base.(*http.Transport)
	t.netHTTP = t.own != nil || isHTTP
	if t.log == nil {
		t.log = bal.Logger()
	}
	return t, nil
}

// clock returns the time since the Transport was made, on the monotonic
// clock: one clock read, where time.Now makes two.
func (t *Transport) clock() time.Duration { return time.Since(t.epoch) }

// Base returns the RoundTripper the Transport sends attempts through: the
// one given to WithBase, or the default. Give it to active health checks
// (HealthCheck.Transport) to share its TLS settings and its per-backend
// transports. As an http.RoundTripper the default base takes requests
// whose URL names a backend's address; for HTTPS, their Host header (or
// else that address) is the TLS server name.
func (t *Transport) Base() http.RoundTripper { return t.base }

// CloseIdleConnections closes the base transport's idle connections, if it
// has a CloseIdleConnections method. http.Client.CloseIdleConnections calls
// it.
func (t *Transport) CloseIdleConnections() {
	if c, ok := t.base.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// TransportStats counts a Transport's work since it was created.
type TransportStats struct {
	Requests       uint64 // RoundTrip calls with a valid request
	Retries        uint64 // attempts after the first, after a failure
	RetriesDenied  uint64 // retries and hedges the retry budget refused
	Errors         uint64 // RoundTrip calls that returned an error (no response)
	Hedges         uint64 // hedged attempts (WithHedging)
	HedgeWins      uint64 // requests a hedged attempt answered first
	PerTryTimeouts uint64 // attempts abandoned by the per-try timeout
	BodyStalls     uint64 // response bodies ended by the body idle timeout
}

// Stats returns the Transport's counters.
func (t *Transport) Stats() TransportStats {
	return TransportStats{
		Requests:       t.requests.Load(),
		Retries:        t.retries.Load(),
		RetriesDenied:  t.retriesDenied.Load(),
		Errors:         t.errors.Load(),
		Hedges:         t.hedges.Load(),
		HedgeWins:      t.hedgeWins.Load(),
		PerTryTimeouts: t.perTryTimeouts.Load(),
		BodyStalls:     t.stalls.Load(),
	}
}

// RoundTrip implements http.RoundTripper: it sends req to a backend, and
// to others if that fails and a retry is safe. It returns an error only
// when it has no response: an *Error. A request that net/http would refuse
// to send is refused before a backend is picked (ErrInvalidRequest), and a
// request for a host the Transport does not serve (WithHosts) goes to the
// fallback or is refused (ErrUnknownHost); neither counts against a
// backend.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req == nil {
		t.errors.Add(1)
		return nil, &Error{Err: fmt.Errorf("%w: nil *http.Request", ErrInvalidRequest), Reason: "invalid request"}
	}
	if why := checkRequest(req, t.netHTTP); why != "" {
		closeBody(req)
		t.errors.Add(1)
		return nil, &Error{Err: fmt.Errorf("%w: %s", ErrInvalidRequest, why), Reason: "invalid request"}
	}
	if t.hosts != nil && !t.hosts.serves(req.URL) {
		if t.fallback != nil {
			return t.fallback.RoundTrip(req)
		}
		closeBody(req)
		t.errors.Add(1)
		return nil, &Error{Err: fmt.Errorf("%w: %q (this Transport serves %s)", ErrUnknownHost, req.URL.Host, t.hosts), Reason: "host not served"}
	}
	t.requests.Add(1)
	start := t.clock()
	t.pol.budget.deposit(start)
	var key string
	if t.key != nil {
		key = t.key(req)
	}
	pick, err := t.bal.Pick(key)
	if err != nil {
		closeBody(req)
		t.errors.Add(1)
		return nil, &Error{Err: err, Reason: "no backend"}
	}
	if t.pol.hedge != nil && t.pol.maxAttempts > 1 && hedgeable(req) {
		return t.roundTripHedged(req, key, pick, start)
	}
	if replayable(req) {
		return t.roundTrip(req, key, pick, start, nil)
	}
	sent := newSentBodies(req.Body, req.ContentLength)
	resp, err := t.roundTrip(req, key, pick, start, sent)
	sent.cur.settle()
	return resp, err
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

// maxBufferedFailure is the largest body of a failure response the
// Transport keeps in memory while it retries: the response it returns if
// every attempt fails.
const maxBufferedFailure = 64 << 10

// roundTrip runs the attempts, the first on pick. sent is nil when the
// request's body can be replayed (none, or GetBody); otherwise it tracks
// the body, which can be sent again only if no attempt read it.
func (t *Transport) roundTrip(req *http.Request, key string, pick Pick, start time.Duration, sent *sentBodies) (*http.Response, error) {
	ctx := req.Context()
	var (
		triedBuf [4]*Backend
		tried    = triedBuf[:0]
		e        *Error         // the failures so far; nil until one
		fallback *http.Response // the last failure response, buffered
		body     io.ReadCloser  // this attempt's request body
		check    *bodyCheck     // what watches it for the caller's failures
	)
	switch {
	case sent != nil:
		body, check = sent.cur, &sent.cur.src.bodyCheck
	case req.Body != nil && req.Body != http.NoBody:
		cb := newCheckedBody(req.Body, req.ContentLength)
		body, check = cb, &cb.bodyCheck
	default:
		body = req.Body
	}
	for n := 1; ; n++ {
		tried = append(tried, pick.Backend)
		if n > 1 {
			start = t.clock()
		}
		a, resp, err := t.send(req, pick, body, start)
		if t.pol.success(resp, err) {
			if t.pol.hedge != nil {
				t.pol.hedge.observe(a.lat)
			}
			t.observe(req, pick, n, false, a, resp, nil, false)
			return t.answer(req, a, resp, nil), nil
		}

		// A failure: an error, or a response with a failure status.
		_, maybe := t.pol.Failed(resp, err)
		attErr := err
		if err == nil {
			attErr = statusError{resp.StatusCode}
		}
		if e == nil {
			e = new(Error)
		}
		if err != nil && check != nil {
			if cause := check.failure(); cause != nil {
				// The caller's body failed: net/http gave up because of it.
				t.observe(req, pick, n, false, a, nil, err, false)
				a.release()
				pick.Cancel()
				attErr = fmt.Errorf("%w: the request body failed: %w", ErrInvalidRequest, cause)
				e.Attempts = append(e.Attempts, AttemptError{Addr: pick.Addr(), Err: attErr, MaybeExecuted: maybe})
				e.Err, e.MaybeExecuted = attErr, e.MaybeExecuted || maybe
				return t.giveUp(e, fallback, req, "request body failed")
			}
		}
		e.Attempts = append(e.Attempts, AttemptError{Addr: pick.Addr(), Err: attErr, MaybeExecuted: maybe})
		e.Err, e.MaybeExecuted = attErr, e.MaybeExecuted || maybe
		if err != nil && callerDone(req) {
			t.observe(req, pick, n, false, a, nil, err, false)
			a.release()
			pick.Cancel() // the caller gave up: neither the backend's failure nor a success
			return nil, t.fail(e, req, reasonContextDone)
		}
		t.observe(req, pick, n, false, a, resp, err, true)
		if err == nil {
			t.pol.HoldOff(pick, resp)
		}

		reason := t.pol.Retryable(req, n, maybe)
		if reason == "" && sent != nil && !sent.cur.unread() {
			reason = bodyNotReplayable
		}
		if reason == "" && err == nil && !bufferBody(resp) {
			reason = "failure response too large to buffer"
		}
		if reason != "" {
			if err == nil {
				e.Reason = reason
				return t.answer(req, a, resp, errFailureStatus), nil
			}
			a.release()
			pick.Done(err, a.lat)
			return t.giveUp(e, fallback, req, reason)
		}
		a.release()
		if err == nil {
			pick.Done(errFailureStatus, a.lat)
			fallback = resp
			claim(req, resp, pick.Backend)
		} else {
			pick.Done(err, a.lat)
		}
		// From here the attempt's body is taken back for the next one (or
		// closed when the sentBodies settle).
		if sent != nil && !sent.cur.detach() {
			return t.giveUp(e, fallback, req, bodyNotReplayable)
		}

		next, reason := t.pol.Next(t.bal, key, tried, t.clock())
		if reason != "" {
			if reason == reasonBudget {
				t.retriesDenied.Add(1)
				t.debug(ctx, "lb: retry refused by the retry budget", pick.Addr(), attErr, n)
			}
			return t.giveUp(e, fallback, req, reason)
		}
		switch {
		case sent != nil:
			sent.cur = sent.cur.again()
			body = sent.cur
		case body != nil && body != http.NoBody:
			b, gerr := req.GetBody()
			if gerr != nil {
				next.Cancel()
				t.pol.budget.refund(t.clock())
				return t.giveUp(e, fallback, req, "GetBody failed: "+gerr.Error())
			}
			cb := newCheckedBody(b, req.ContentLength)
			body, check = cb, &cb.bodyCheck
		}
		t.retries.Add(1)
		t.debug(ctx, "lb: retrying on another backend", pick.Addr(), attErr, n)
		pick = next
	}
}

// observe reports attempt n of req to the observer, if there is one.
func (t *Transport) observe(req *http.Request, pick Pick, n int, hedged bool, a *attempt, resp *http.Response, err error, failure bool) {
	if t.observer == nil {
		return
	}
	info := AttemptInfo{Request: req, Backend: pick.Addr(), Attempt: n, Hedged: hedged, Duration: a.lat, Err: err, Failure: failure}
	if resp != nil {
		info.StatusCode = resp.StatusCode
	}
	t.observer(info)
}

// answer returns resp, the response of attempt a, as the response to req:
// its Request is the caller's, its body finishes the pick, and ServedBy
// learns the backend.
func (t *Transport) answer(req *http.Request, a *attempt, resp *http.Response, fail error) *http.Response {
	claim(req, resp, a.pick.Backend)
	return a.wrap(resp, fail)
}

// claim makes resp, which backend be gave, a response to req: its Request
// is the caller's, and the ServedBy of req's context learns be.
func claim(req *http.Request, resp *http.Response, be *Backend) {
	resp.Request = req
	if p, ok := req.Context().Value(servedKey{}).(*atomic.Pointer[Backend]); ok {
		p.Store(be)
	}
}

// servedKey is the context key of ServedBy.
type servedKey struct{}

// ServedBy returns a copy of ctx for a request sent through a Transport,
// and a function that returns the address of the backend whose response
// the Transport returned for it ("" before that, or if no backend gave a
// response). The response's Request is the caller's request, whose URL
// names the service, not the backend: this is how to learn which backend
// answered, for logs or tests. The function is safe to call from any
// goroutine, at any time; with several requests on one context it
// reports the latest.
func ServedBy(ctx context.Context) (context.Context, func() string) {
	p := new(atomic.Pointer[Backend])
	return context.WithValue(ctx, servedKey{}, p), func() string {
		if be := p.Load(); be != nil {
			return be.addr
		}
		return ""
	}
}

// send makes one attempt of req on pick's backend with body, started at
// start (on t.clock), and returns it with its response or error. With a
// per-try timeout or a body idle timeout the attempt has a context of its
// own, which a.release (or the end of the response body) cancels.
func (t *Transport) send(req *http.Request, pick Pick, body io.ReadCloser, start time.Duration) (*attempt, *http.Response, error) {
	a, out, rt := t.outgoing(req, pick, body)
	if t.pol.perTry > 0 || t.pol.bodyIdle > 0 {
		ctx, cancel := context.WithCancelCause(req.Context())
		a.cancel = cancel
		out = out.WithContext(ctx)
	}
	return t.sendOut(req, a, out, rt, start)
}

// sendOut sends out, the request of attempt a, through rt. With a per-try
// timeout (and a context of the attempt's own, a.cancel), an attempt
// without response headers in time fails with an error wrapping
// ErrPerTryTimeout.
func (t *Transport) sendOut(req *http.Request, a *attempt, out *http.Request, rt http.RoundTripper, start time.Duration) (*attempt, *http.Response, error) {
	var timer *time.Timer
	if a.cancel != nil {
		a.idle, a.clock, a.stalls = t.pol.bodyIdle, t.clock, &t.stalls
		if t.pol.perTry > 0 {
			cancel := a.cancel
			timer = time.AfterFunc(t.pol.perTry, func() { cancel(errPerTry) })
		}
	}
	resp, err := rt.RoundTrip(out)
	a.lat = t.clock() - start
	if err == nil && resp == nil {
		err = errors.New("lb: base RoundTripper returned neither a response nor an error")
	}
	if timer != nil && !timer.Stop() && !callerDone(req) && context.Cause(out.Context()) == errPerTry {
		// The per-try timeout fired: whatever came back (an error, or
		// headers at the very last moment) is a timed-out attempt.
		if err == nil {
			resp.Body.Close()
			resp = nil
		}
		err = &perTryError{after: t.pol.perTry, err: err}
		t.perTryTimeouts.Add(1)
	}
	return a, resp, err
}

// outgoing returns the attempt of pick, the request to send to its
// backend with body as its body, and the RoundTripper to send it with. The
// default base takes the request as it is, its URL naming the service
// (copied only if the body is not the caller's); any other base gets a
// copy whose URL names the backend's address.
func (t *Transport) outgoing(req *http.Request, pick Pick, body io.ReadCloser) (*attempt, *http.Request, http.RoundTripper) {
	if t.own != nil && req.URL.Host != "" {
		if p := t.own.forBackend(pick.Backend); p.direct {
			return &attempt{req: req, pick: pick}, withBody(req, body), p.t
		}
	}
	a, out := rewrite(req, pick.Backend.addr, body)
	a.req, a.pick = req, pick
	return a, out, t.base
}

// bodyNotReplayable is the Error.Reason for a request whose body was sent
// and has no GetBody.
const bodyNotReplayable = "body sent and not replayable (no GetBody)"

// giveUp returns the buffered failure response if there is one, else the
// error, which says why the Transport stopped.
func (t *Transport) giveUp(e *Error, fallback *http.Response, req *http.Request, reason string) (*http.Response, error) {
	if fallback != nil {
		return fallback, nil
	}
	return nil, t.fail(e, req, reason)
}

func (t *Transport) fail(e *Error, req *http.Request, reason string) *Error {
	t.errors.Add(1)
	e.Reason = reason
	e.ctxErr = callerErr(req)
	return e
}

func (t *Transport) debug(ctx context.Context, msg, addr string, err error, attempt int) {
	if t.log.Enabled(ctx, slog.LevelDebug) {
		t.log.DebugContext(ctx, msg, "addr", addr, "err", err, "attempt", attempt)
	}
}
