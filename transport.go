package lb

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
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
// and sends a copy of the request whose URL names the backend's address;
// the Host header and the TLS server name stay the request's logical host,
// so virtual hosting and certificate checks work as without a balancer.
// The caller's request is never modified, and its body is always closed.
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
// ErrNotSent), or its method is idempotent (GET, HEAD, OPTIONS, TRACE, PUT,
// DELETE, or an Idempotency-Key header) and its body can be sent again
// (none, or GetBody set, as http.NewRequest does for in-memory bodies);
// WithRetryNonIdempotent lifts the method rule. Retries spend a
// RetryBudget. The error returned when no attempt gave a response is an
// *Error: it lists the backends tried and why each failed, and says
// whether the request may have executed (ErrMaybeExecuted) or was never
// sent (ErrNotSent).
//
// Every request goes to the Balancer's backends, whatever the host of its
// URL: use one Transport (and http.Client) per service, and mind that a
// redirect to another host would be sent to the pool too (set
// http.Client.CheckRedirect to refuse those). A Transport is safe for
// concurrent use. Response bodies must be closed (as with any
// http.Client), or the backend's in-flight count never drops.
type Transport struct {
	bal         *Balancer
	base        http.RoundTripper
	key         KeyFunc
	maxAttempts int
	retryAll    bool
	failStatus  func(code int) bool
	budget      *budget
	log         *slog.Logger

	_             [64]byte // the counters below are written on every request
	requests      atomic.Uint64
	_             [56]byte
	retries       atomic.Uint64
	retriesDenied atomic.Uint64
	errors        atomic.Uint64
}

// TransportOption configures a Transport.
type TransportOption interface {
	applyTransport(*transportOptions)
}

type transportOptionFunc func(*transportOptions)

func (f transportOptionFunc) applyTransport(o *transportOptions) { f(o) }

type transportOptions struct {
	base        http.RoundTripper
	key         KeyFunc
	maxAttempts int
	retryAll    bool
	failStatus  func(int) bool
	budget      RetryBudget
	log         *slog.Logger
	tlsConfig   *tls.Config
	maxIdle     int
	errs        []error
}

// defaultTransportOptions is the one place the Transport's defaults are set.
func defaultTransportOptions() transportOptions {
	return transportOptions{
		maxAttempts: 3,
		maxIdle:     DefaultMaxIdleConnsPerBackend,
	}
}

// WithBase sets the RoundTripper that sends each attempt (its URL already
// pointing at the backend). The default is an http.Transport with
// http.DefaultTransport's settings, DefaultMaxIdleConnsPerBackend idle
// connections per backend, and one connection pool per TLS server name so
// that HTTPS certificates are checked against the request's logical host.
// A base of your own must do that itself: an *http.Transport whose
// TLSClientConfig.ServerName is empty checks the backend's address.
func WithBase(rt http.RoundTripper) TransportOption {
	return transportOptionFunc(func(o *transportOptions) { o.base = rt })
}

// WithKey sets how a request's hash key is found: HeaderKey, CookieKey,
// QueryKey, PathKey, or any func(*http.Request) string. The default is no
// key (hash strategies then pick at random).
func WithKey(f KeyFunc) TransportOption {
	return transportOptionFunc(func(o *transportOptions) { o.key = f })
}

// WithMaxAttempts caps the attempts per request, the first included;
// default 3, and 1 turns retries off. A request is never sent to the same
// backend twice, so there are at most as many attempts as backends.
func WithMaxAttempts(n int) TransportOption {
	return transportOptionFunc(func(o *transportOptions) {
		if n < 1 {
			o.errs = append(o.errs, fmt.Errorf("%w: WithMaxAttempts(%d); attempts must be >= 1", ErrInvalidConfig, n))
		}
		o.maxAttempts = n
	})
}

// WithRetryNonIdempotent allows retrying requests that may have executed
// even when their method is not idempotent (POST, PATCH): use it when the
// backends deduplicate, for example by an idempotency key. Requests that
// were never sent are retried whatever their method.
func WithRetryNonIdempotent(allow bool) TransportOption {
	return transportOptionFunc(func(o *transportOptions) { o.retryAll = allow })
}

// WithFailureStatus makes responses whose status f reports true count as
// backend failures (for outlier ejection) and be retried like errors,
// under the same rules. If the last attempt allowed also gets such a
// status, that response is returned. Is5xx is the usual choice. The
// default counts no status as a failure.
func WithFailureStatus(f func(code int) bool) TransportOption {
	return transportOptionFunc(func(o *transportOptions) { o.failStatus = f })
}

// Is5xx reports whether code is a server error (500-599): for
// WithFailureStatus.
func Is5xx(code int) bool { return code >= 500 && code <= 599 }

// WithRetryBudget sets the retry budget; see RetryBudget for the defaults.
func WithRetryBudget(rb RetryBudget) TransportOption {
	return transportOptionFunc(func(o *transportOptions) { o.budget = rb })
}

// WithTransportLogger sends retries and refused retries to l at Debug
// level. The default is the Balancer's logger (WithLogger).
func WithTransportLogger(l *slog.Logger) TransportOption {
	return transportOptionFunc(func(o *transportOptions) { o.log = l })
}

// WithTLSClientConfig sets the TLS configuration of the default base
// transport (root CAs, client certificates). Its ServerName, if empty, is
// set per request to the logical host. It cannot be combined with WithBase.
func WithTLSClientConfig(c *tls.Config) TransportOption {
	return transportOptionFunc(func(o *transportOptions) { o.tlsConfig = c })
}

// WithMaxIdleConnsPerBackend sets how many idle connections the default
// base transport keeps per backend; default DefaultMaxIdleConnsPerBackend.
// It cannot be combined with WithBase.
func WithMaxIdleConnsPerBackend(n int) TransportOption {
	return transportOptionFunc(func(o *transportOptions) {
		if n < 1 {
			o.errs = append(o.errs, fmt.Errorf("%w: WithMaxIdleConnsPerBackend(%d); it must be >= 1", ErrInvalidConfig, n))
		}
		o.maxIdle = n
	})
}

// NewTransport returns a Transport that sends requests to bal's backends.
// The errors wrap ErrInvalidConfig: a nil Balancer, an invalid option.
func NewTransport(bal *Balancer, opts ...TransportOption) (*Transport, error) {
	if bal == nil {
		return nil, fmt.Errorf("%w: NewTransport needs a Balancer, got nil", ErrInvalidConfig)
	}
	o := defaultTransportOptions()
	idleSet := false
	for _, opt := range opts {
		if opt == nil {
			continue
		}
		before := o.maxIdle
		opt.applyTransport(&o)
		idleSet = idleSet || o.maxIdle != before
	}
	if err := errors.Join(o.errs...); err != nil {
		return nil, err
	}
	if o.base != nil && (o.tlsConfig != nil || idleSet) {
		return nil, fmt.Errorf("%w: WithTLSClientConfig and WithMaxIdleConnsPerBackend configure the default base transport; configure your own base (WithBase) instead", ErrInvalidConfig)
	}
	rb, err := o.budget.withDefaults()
	if err != nil {
		return nil, err
	}
	t := &Transport{
		bal:         bal,
		base:        o.base,
		key:         o.key,
		maxAttempts: o.maxAttempts,
		retryAll:    o.retryAll,
		failStatus:  o.failStatus,
		budget:      newBudget(rb, time.Now),
		log:         o.log,
	}
	if t.base == nil {
		t.base = newBaseTransport(o.tlsConfig, o.maxIdle)
	}
	if t.log == nil {
		t.log = bal.opts.logger
	}
	return t, nil
}

// Base returns the RoundTripper the Transport sends attempts through: the
// one given to WithBase, or the default. Give it to active health checks
// (HealthCheck.Transport) to share its connections and TLS settings.
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
	Requests      uint64 // RoundTrip calls with a valid request
	Retries       uint64 // attempts after the first
	RetriesDenied uint64 // retries the retry budget refused
	Errors        uint64 // RoundTrip calls that returned an error (no response)
}

// Stats returns the Transport's counters.
func (t *Transport) Stats() TransportStats {
	return TransportStats{
		Requests:      t.requests.Load(),
		Retries:       t.retries.Load(),
		RetriesDenied: t.retriesDenied.Load(),
		Errors:        t.errors.Load(),
	}
}

// RoundTrip implements http.RoundTripper: it sends req to a backend, and
// to others if that fails and a retry is safe. It returns an error only
// when it has no response: an *Error, or for an invalid request an error
// that wraps ErrNotSent.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if err := checkRequest(req); err != nil {
		return nil, err
	}
	t.requests.Add(1)
	start := time.Now()
	t.budget.deposit(start)
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
	return t.roundTrip(req, key, pick, start)
}

func checkRequest(req *http.Request) error {
	var problem string
	switch {
	case req == nil:
		return fmt.Errorf("%w: nil *http.Request", ErrNotSent)
	case req.URL == nil:
		problem = "the request has no URL"
	case req.URL.Scheme == "":
		problem = "the request URL has no scheme"
	case req.Header == nil:
		problem = "the request has a nil Header"
	default:
		return nil
	}
	closeBody(req)
	return fmt.Errorf("%w: %s", ErrNotSent, problem)
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

// roundTrip runs the attempts, the first on pick.
func (t *Transport) roundTrip(req *http.Request, key string, pick Pick, start time.Time) (*http.Response, error) {
	ctx := req.Context()
	var (
		triedBuf [4]*Backend
		tried    = triedBuf[:0]
		e        *Error         // the failures so far; nil until one
		fallback *http.Response // the last failure response, buffered
		body     = req.Body
	)
	for n := 1; ; n++ {
		tried = append(tried, pick.Backend)
		a := newAttempt(req, pick, body)
		if n > 1 {
			start = time.Now()
		}
		resp, err := t.base.RoundTrip(&a.req)
		a.lat = time.Since(start)
		if err == nil && resp == nil {
			err = errors.New("lb: base RoundTripper returned neither a response nor an error")
		}
		if err == nil && (t.failStatus == nil || !t.failStatus(resp.StatusCode)) {
			return a.wrap(resp, nil), nil
		}

		// A failure: an error, or a response with a failure status.
		maybe := err == nil || !notSent(err)
		attErr := err
		if err == nil {
			attErr = statusError{resp.StatusCode}
		}
		if e == nil {
			e = new(Error)
		}
		e.Attempts = append(e.Attempts, AttemptError{Addr: pick.Addr(), Err: attErr, MaybeExecuted: maybe})
		e.Err, e.MaybeExecuted = attErr, e.MaybeExecuted || maybe
		if err != nil && ctx.Err() != nil {
			pick.Done(nil, 0) // the caller gave up: not the backend's failure
			return nil, t.fail(e, ctx, "context done")
		}

		e.Reason = t.retryBlocked(req, n, maybe)
		if e.Reason == "" && err == nil && !bufferBody(resp) {
			e.Reason = "failure response too large to buffer"
		}
		if e.Reason != "" {
			if err == nil {
				return a.wrap(resp, errFailureStatus), nil
			}
			pick.Done(err, a.lat)
			return t.giveUp(e, fallback, ctx)
		}
		if err == nil {
			pick.Done(errFailureStatus, a.lat)
			fallback = resp
		} else {
			pick.Done(err, a.lat)
		}

		if !t.budget.withdraw() {
			t.retriesDenied.Add(1)
			e.Reason = "retry budget exhausted"
			t.debug(ctx, "lb: retry refused by the retry budget", pick.Addr(), attErr, n)
			return t.giveUp(e, fallback, ctx)
		}
		next, perr := t.bal.PickNext(key, tried)
		if perr != nil {
			t.budget.refund()
			e.Reason = "no backend left"
			return t.giveUp(e, fallback, ctx)
		}
		if body != nil && body != http.NoBody {
			b, gerr := req.GetBody()
			if gerr != nil {
				next.Done(nil, 0)
				t.budget.refund()
				e.Reason = "GetBody failed: " + gerr.Error()
				return t.giveUp(e, fallback, ctx)
			}
			body = b
		}
		t.retries.Add(1)
		t.debug(ctx, "lb: retrying on another backend", pick.Addr(), attErr, n)
		pick = next
	}
}

// retryBlocked returns why attempt n, a failure, may not be retried, or ""
// if it may (budget and backends aside).
func (t *Transport) retryBlocked(req *http.Request, n int, maybe bool) string {
	switch {
	case n >= t.maxAttempts:
		return "max attempts"
	case req.Context().Err() != nil:
		return "context done"
	case !replayable(req):
		return "body not replayable (no GetBody)"
	case maybe && !t.retryAll && !idempotent(req):
		return "not idempotent"
	}
	return ""
}

// giveUp returns the buffered failure response if there is one, else the
// error.
func (t *Transport) giveUp(e *Error, fallback *http.Response, ctx context.Context) (*http.Response, error) {
	if fallback != nil {
		return fallback, nil
	}
	return nil, t.fail(e, ctx, e.Reason)
}

func (t *Transport) fail(e *Error, ctx context.Context, reason string) *Error {
	t.errors.Add(1)
	e.Reason = reason
	e.ctxErr = ctx.Err()
	return e
}

func (t *Transport) debug(ctx context.Context, msg, addr string, err error, attempt int) {
	if t.log.Enabled(ctx, slog.LevelDebug) {
		t.log.DebugContext(ctx, msg, "addr", addr, "err", err, "attempt", attempt)
	}
}

// bufferBody reads a failure response's body into memory, so that the
// connection is released during the retry and the response can still be
// returned if the retries fail. It reports false, leaving the body
// readable from the start, if the body is too large or could not be read.
func bufferBody(resp *http.Response) bool {
	if resp.Body == nil || resp.Body == http.NoBody {
		return true
	}
	if resp.ContentLength > maxBufferedFailure {
		return false
	}
	buf, err := io.ReadAll(io.LimitReader(resp.Body, maxBufferedFailure+1))
	if err != nil || len(buf) > maxBufferedFailure {
		resp.Body = readCloser{io.MultiReader(bytes.NewReader(buf), resp.Body), resp.Body}
		return false
	}
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(buf))
	return true
}

type readCloser struct {
	io.Reader
	io.Closer
}

// attempt is one try of a request on one backend: the copy of the request
// sent (with its own URL) and, once there is a response, the body wrapper
// that finishes the pick. One allocation per attempt.
type attempt struct {
	req  http.Request
	url  url.URL
	pick Pick
	lat  time.Duration // time to the response headers
	body io.ReadCloser // the base's response body
	fail error         // what Done gets on a clean end: nil or errFailureStatus
	done atomic.Bool
}

func newAttempt(req *http.Request, pick Pick, body io.ReadCloser) *attempt {
	a := &attempt{pick: pick}
	a.req = *req
	a.url = *req.URL
	a.url.Host = pick.Backend.addr
	a.req.URL = &a.url
	if a.req.Host == "" {
		a.req.Host = req.URL.Host
	}
	a.req.Body = body
	return a
}

// wrap makes resp's body finish the pick when it ends; fail is what the
// pick's Done gets then.
func (a *attempt) wrap(resp *http.Response, fail error) *http.Response {
	a.fail = fail
	if resp.Body == nil || resp.Body == http.NoBody {
		a.finish(fail)
		return resp
	}
	a.body = resp.Body
	if rw, ok := resp.Body.(io.ReadWriteCloser); ok && resp.StatusCode == http.StatusSwitchingProtocols {
		resp.Body = upgradedBody{a, rw}
		return resp
	}
	resp.Body = a
	return resp
}

// Read reads the response body; its end (EOF or an error) finishes the
// pick.
func (a *attempt) Read(p []byte) (int, error) {
	n, err := a.body.Read(p)
	if err != nil {
		if err == io.EOF {
			a.finish(a.fail)
		} else {
			a.finish(err)
		}
	}
	return n, err
}

// Close closes the response body and finishes the pick.
func (a *attempt) Close() error {
	err := a.body.Close()
	a.finish(a.fail)
	return err
}

// finish calls the pick's Done once. An error while the caller's context
// is done is the caller's doing, not the backend's.
func (a *attempt) finish(err error) {
	if !a.done.CompareAndSwap(false, true) {
		return
	}
	if err != nil && err != a.fail && a.req.Context().Err() != nil {
		err = nil
	}
	a.pick.Done(err, a.lat)
}

// upgradedBody is the body of a 101 Switching Protocols response: the
// connection itself, writable. The pick ends when it is closed.
type upgradedBody struct {
	*attempt
	rw io.ReadWriteCloser
}

func (u upgradedBody) Write(p []byte) (int, error) { return u.rw.Write(p) }
