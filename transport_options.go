package lb

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/http"
)

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
	idleSet     bool // WithMaxIdleConnsPerBackend was given
	hosts       []string
	hostsSet    bool
	fallback    http.RoundTripper
	errs        []error
}

// defaultTransportOptions is the one place the Transport's defaults are set.
func defaultTransportOptions() transportOptions {
	return transportOptions{
		maxAttempts: 3,
		maxIdle:     DefaultMaxIdleConnsPerBackend,
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
