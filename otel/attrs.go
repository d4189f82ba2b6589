package lbotel

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"syscall"

	"github.com/go-lb/lb"
	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
)

// attemptKindKey is the attribute that tells a first attempt from a retry
// and a hedge.
const attemptKindKey = attribute.Key("lb.attempt.kind")

// Values of lb.attempt.kind.
const (
	kindFirst = "first"
	kindRetry = "retry"
	kindHedge = "hedge"
)

// method returns the value of http.request.method for m: the method if it
// is one the semantic conventions know, "_OTHER" otherwise (so that a
// client sending made-up methods cannot grow the series without bound).
func method(m string) string {
	switch m {
	case "":
		return "GET" // net/http's meaning of an empty method
	case "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "QUERY":
		return m
	}
	return "_OTHER"
}

// errorType returns the value of error.type for err: a short name for the
// errors lb tells apart (see the package documentation), or, for any
// other, the semantic conventions' default (the error's type name).
func errorType(err error) string {
	switch {
	case errors.Is(err, lb.ErrPerTryTimeout):
		return "per_try_timeout"
	case errors.Is(err, lb.ErrBodyStalled):
		return "body_stalled"
	case errors.Is(err, lb.ErrHedgeLost):
		return "hedge_lost"
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, lb.ErrNoEndpoints):
		return "no_endpoints"
	case errors.Is(err, lb.ErrClosed):
		return "balancer_closed"
	case errors.Is(err, lb.ErrInvalidRequest):
		return "invalid_request"
	case errors.Is(err, lb.ErrUnknownHost):
		return "unknown_host"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection_refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "connection_reset"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection_closed"
	}
	var (
		dnsErr  *net.DNSError
		certErr *tls.CertificateVerificationError
		authErr x509.UnknownAuthorityError
		hostErr x509.HostnameError
		recErr  tls.RecordHeaderError
		alert   tls.AlertError
		timeout interface{ Timeout() bool }
	)
	switch {
	case errors.As(err, &dnsErr):
		return "name_resolution_error"
	case errors.As(err, &certErr), errors.As(err, &authErr), errors.As(err, &hostErr), errors.As(err, &recErr), errors.As(err, &alert):
		return "tls_error"
	case errors.As(err, &timeout) && timeout.Timeout():
		return "timeout"
	}
	return semconv.ErrorType(err).Value.AsString()
}

// statusErrorType returns error.type for a response with status code, or
// "" if the status is not an error: the semantic conventions count a
// client's 4xx and 5xx as errors, named by the code.
func statusErrorType(code int) string {
	if code >= 400 {
		return strconv.Itoa(code)
	}
	return ""
}

// splitAddr returns server.address and server.port for a backend's
// "host:port" (the port may be a service name, as lb allows). ok is false
// when the port is unknown: server.port is then left out.
func splitAddr(addr string) (host string, port int, ok bool) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return addr, 0, false
	}
	if port, err = strconv.Atoi(p); err == nil {
		return host, port, true
	}
	if port, err = net.LookupPort("tcp", p); err == nil {
		return host, port, true
	}
	return host, 0, false
}

// serverAttrs returns server.address and, when known, server.port.
func serverAttrs(host string, port int, ok bool) []attribute.KeyValue {
	if !ok {
		return []attribute.KeyValue{semconv.ServerAddress(host)}
	}
	return []attribute.KeyValue{semconv.ServerAddress(host), semconv.ServerPort(port)}
}

// maxCached bounds a cache of attribute sets: past it the cache starts
// over, so that backends that come and go (DNS churn) do not grow it
// without bound.
const maxCached = 4096

// setCache maps the fields of a measurement to the attribute set (as
// ready options) they stand for, so that a measurement whose fields were
// seen before allocates nothing.
type setCache[K comparable, V any] struct {
	mu sync.RWMutex
	m  map[K]V
}

// get returns the value for k, made by mk on a miss.
func (c *setCache[K, V]) get(k K, mk func(K) V) V {
	c.mu.RLock()
	v, ok := c.m[k]
	c.mu.RUnlock()
	if ok {
		return v
	}
	v = mk(k)
	c.mu.Lock()
	if c.m == nil || len(c.m) >= maxCached {
		c.m = make(map[K]V)
	}
	c.m[k] = v
	c.mu.Unlock()
	return v
}
