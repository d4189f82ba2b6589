package lb

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"
)

// TransportOption configures a Transport.
type TransportOption interface {
	applyTransport(*transportOptions)
}

type transportOptionFunc func(*transportOptions)

func (f transportOptionFunc) applyTransport(o *transportOptions) { f(o) }

type transportOptions struct {
	base          http.RoundTripper
	key           KeyFunc
	maxAttempts   int
	retryAll      bool
	failStatus    func(int) bool
	budget        RetryBudget
	log           *slog.Logger
	tlsConfig     *tls.Config
	protocols     Protocols
	protocolsSet  bool
	maxIdle       int
	idleSet       bool // WithMaxIdleConnsPerBackend was given
	hosts         []string
	hostsSet      bool
	fallback      http.RoundTripper
	perTry        time.Duration
	bodyIdle      time.Duration
	hedging       Hedging
	hedgingSet    bool
	retryAfterMax time.Duration
	observer      func(AttemptInfo)
	errs          []error
}

// applyTransportOptions returns the defaults with opts applied, or the
// options' errors, joined.
func applyTransportOptions(opts []TransportOption) (transportOptions, error) {
	o := defaultTransportOptions()
	for _, opt := range opts {
		if opt != nil {
			opt.applyTransport(&o)
		}
	}
	return o, errors.Join(o.errs...)
}

// defaultTransportOptions is the one place the Transport's defaults are set.
func defaultTransportOptions() transportOptions {
	return transportOptions{
		maxAttempts:   3,
		maxIdle:       DefaultMaxIdleConnsPerBackend,
		failStatus:    IsUnavailable,
		retryAfterMax: defaultRetryAfterMax,
	}
}

// WithBase sets the RoundTripper that sends each attempt: it gets a copy
// of the request whose URL names the backend's address (the Host header
// keeps the logical host). The default base needs no copy: it keeps one
// http.Transport per backend, with http.DefaultTransport's settings and
// DefaultMaxIdleConnsPerBackend idle connections, which dials the
// backend's address while the URL keeps naming the service, so HTTPS
// certificates are checked against the service's name. A base of your own
// must see to that itself: an *http.Transport whose
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
// backend failures (for outlier ejection and load scoring) and be retried
// like errors, under the same rules. If the last attempt allowed also gets
// such a status, that response is returned. The default is IsUnavailable
// (502, 503 and 504, the statuses of a backend that cannot serve, as
// Envoy's outlier detection counts them); Is5xx counts every server error;
// nil counts no status as a failure.
func WithFailureStatus(f func(code int) bool) TransportOption {
	return transportOptionFunc(func(o *transportOptions) { o.failStatus = f })
}

// Is5xx reports whether code is a server error (500-599): for
// WithFailureStatus.
func Is5xx(code int) bool { return code >= 500 && code <= 599 }

// IsUnavailable reports whether code is 502 Bad Gateway, 503 Service
// Unavailable or 504 Gateway Timeout: the backend (or what is behind it)
// could not serve the request. It is the default of WithFailureStatus.
func IsUnavailable(code int) bool { return code >= 502 && code <= 504 }

// WithPerTryTimeout bounds each attempt's wait for response headers: an
// attempt without them after d is abandoned, counted as the backend's
// failure, and retried on another backend when the retry rules allow (an
// idempotent, replayable request; a POST may have executed, so it is not
// retried but returns an error wrapping ErrPerTryTimeout and
// ErrMaybeExecuted). The caller's deadline still ends everything at once.
// The body is not bounded by it (see WithBodyIdleTimeout). 0, the default,
// sets no bound.
func WithPerTryTimeout(d time.Duration) TransportOption {
	return transportOptionFunc(func(o *transportOptions) {
		if d < 0 {
			o.errs = append(o.errs, fmt.Errorf("%w: WithPerTryTimeout(%v); it must be >= 0", ErrInvalidConfig, d))
		}
		o.perTry = d
	})
}

// WithBodyIdleTimeout ends a response body whose Read has waited d for
// bytes: the read fails with an error wrapping ErrBodyStalled, and the
// backend is charged a failure (a body that stalls after its headers is
// the backend's fault, and used to count as a success). Only time spent
// inside Read counts, so a caller that reads slowly is never the reason.
// 0, the default, sets no bound (long polls and event streams idle by
// design).
func WithBodyIdleTimeout(d time.Duration) TransportOption {
	return transportOptionFunc(func(o *transportOptions) {
		if d < 0 {
			o.errs = append(o.errs, fmt.Errorf("%w: WithBodyIdleTimeout(%v); it must be >= 0", ErrInvalidConfig, d))
		}
		o.bodyIdle = d
	})
}

// defaultRetryAfterMax is the default cap of WithRetryAfter.
const defaultRetryAfterMax = 30 * time.Second

// WithRetryAfter sets the longest pause a backend's Retry-After header
// (on a 429 or 503 response) can ask for: picks go around that backend
// for as long as it asks, up to max. The default is
// 30 s; 0 ignores Retry-After.
func WithRetryAfter(max time.Duration) TransportOption {
	return transportOptionFunc(func(o *transportOptions) {
		if max < 0 {
			o.errs = append(o.errs, fmt.Errorf("%w: WithRetryAfter(%v); it must be >= 0", ErrInvalidConfig, max))
		}
		o.retryAfterMax = max
	})
}

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
// transport (root CAs, client certificates). If its ServerName is empty,
// certificates are checked against the request's logical host. It cannot
// be combined with WithBase.
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
		o.maxIdle, o.idleSet = n, true
	})
}

// WithHosts pins the Transport to the hosts it serves: requests whose URL
// names another host (a redirect to another site, a call to a public API
// through the same client) are not sent to the Balancer's backends. They
// go to the WithFallback RoundTripper if there is one, and are refused
// otherwise, with an error wrapping ErrUnknownHost and ErrNotSent. A host
// is a name or IP address, which matches it on any port ("users.internal"),
// or host:port, which matches that port only (a URL without a port has its
// scheme's). Names match without regard to case. Without WithHosts, every
// request goes to the backends, whatever its URL's host.
func WithHosts(hosts ...string) TransportOption {
	hosts = append([]string(nil), hosts...)
	return transportOptionFunc(func(o *transportOptions) { o.hosts, o.hostsSet = hosts, true })
}

// WithFallback sets the RoundTripper for requests to hosts the Transport
// does not serve (WithHosts), such as http.DefaultTransport. It needs
// WithHosts.
func WithFallback(rt http.RoundTripper) TransportOption {
	return transportOptionFunc(func(o *transportOptions) { o.fallback = rt })
}

// AttemptInfo describes one attempt of a request, for an observer
// (WithAttemptObserver): metrics, traces, logs.
type AttemptInfo struct {
	// Request is the caller's request. It must not be modified.
	Request *http.Request
	// Backend is the address of the backend tried.
	Backend string
	// Attempt is the attempt's number for the request, from 1.
	Attempt int
	// Hedged reports whether it was a hedge (WithHedging).
	Hedged bool
	// Duration is the time to the response headers, or to the error.
	Duration time.Duration
	// StatusCode is the response's status, or 0 without a response.
	StatusCode int
	// Err is the attempt's error, nil with a response.
	Err error
	// Failure reports whether the attempt counted as the backend's
	// failure (an error of the backend's, or a failure status).
	Failure bool
}

// WithAttemptObserver calls f after each attempt, on the request's
// goroutine (or the attempt's, for hedges), with what happened. f must be
// quick and safe for concurrent use. The otel module uses it for its
// per-attempt latency histogram. Attempts ended by the caller, and those
// that lost a hedged request's race (Err wraps ErrHedgeLost), are reported
// too, with Failure false.
func WithAttemptObserver(f func(AttemptInfo)) TransportOption {
	return transportOptionFunc(func(o *transportOptions) { o.observer = f })
}
