package lbotel

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/go-lb/lb"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
)

// RequestDurationName is the name of the per-request histogram that
// RoundTripper records.
const RequestDurationName = "lb.client.request.duration"

// durationBounds are the bucket boundaries the semantic conventions
// recommend for http.client.request.duration, in seconds; the
// per-request histogram uses them too.
var durationBounds = []float64{0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10}

// RoundTripper wraps next, usually an *lb.Transport, and records in the
// histogram lb.client.request.duration how long each request took as
// its caller saw it: from RoundTrip to the end of the response body (read
// to its end, failed, or closed), all attempts, retries and hedges
// included, or to the error when there is no response. server.address and
// server.port are the request URL's (the service, not a backend).
//
// The RoundTripper keeps http.RoundTripper's contract: it hands next the
// caller's request as it is and returns what next returns; only the
// response body is wrapped, to see its end (the body of a 101 Switching
// Protocols response, the connection, is left as it is: that request is
// over when the protocol switches). Its
// CloseIdleConnections calls next's, so http.Client.CloseIdleConnections
// still reaches the Transport. A response body that is never closed is
// never recorded (and, with lb.Transport, keeps its backend's call in
// flight). The errors are for a nil next, bad options, or the
// MeterProvider's.
func RoundTripper(next http.RoundTripper, opts ...Option) (http.RoundTripper, error) {
	if t, ok := next.(*lb.Transport); next == nil || ok && t == nil {
		return nil, fmt.Errorf("%w: RoundTripper needs the RoundTripper to wrap, got nil", lb.ErrInvalidConfig)
	}
	c, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	h, err := c.meter().Float64Histogram(RequestDurationName,
		metric.WithUnit("s"),
		metric.WithDescription("Duration of HTTP client requests through lb, all attempts included, to the end of the response body."),
		metric.WithExplicitBucketBoundaries(durationBounds...))
	if err != nil {
		return nil, err
	}
	return &requestRecorder{next: next, hist: h, common: c.common()}, nil
}

type requestRecorder struct {
	next   http.RoundTripper
	hist   metric.Float64Histogram
	common []attribute.KeyValue
	sets   setCache[requestKey, []metric.RecordOption]
}

// requestKey is what the attributes of a request's measurement are made
// of.
type requestKey struct {
	host    string // the URL's host[:port]
	scheme  string
	method  string
	status  int
	errType string // from the request's or the body's error; "" without one
}

// RoundTrip implements http.RoundTripper.
func (rr *requestRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := rr.next.RoundTrip(req)
	if req == nil || req.URL == nil || !rr.hist.Enabled(req.Context()) {
		return resp, err
	}
	k := requestKey{host: req.URL.Host, scheme: req.URL.Scheme, method: method(req.Method)}
	if err != nil || resp == nil {
		if err != nil {
			k.errType = errorType(err)
		}
		rr.record(req.Context(), k, start)
		return resp, err
	}
	k.status = resp.StatusCode
	if resp.Body == nil || resp.Body == http.NoBody || resp.StatusCode == http.StatusSwitchingProtocols {
		// No body to wait for; or a protocol upgrade, whose body is the
		// connection, handed over as it is (an io.ReadWriteCloser): the
		// HTTP request is over.
		rr.record(req.Context(), k, start)
		return resp, nil
	}
	resp.Body = &timedBody{rc: resp.Body, rr: rr, ctx: req.Context(), key: k, start: start}
	return resp, nil
}

// CloseIdleConnections calls next's CloseIdleConnections, if it has one.
func (rr *requestRecorder) CloseIdleConnections() {
	if c, ok := rr.next.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

func (rr *requestRecorder) record(ctx context.Context, k requestKey, start time.Time) {
	rr.hist.Record(ctx, time.Since(start).Seconds(), rr.sets.get(k, rr.options)...)
}

// options returns the attributes of a request with the fields of k.
func (rr *requestRecorder) options(k requestKey) []metric.RecordOption {
	u := url.URL{Scheme: k.scheme, Host: k.host}
	kvs := []attribute.KeyValue{semconv.ServerAddress(u.Hostname()), semconv.HTTPRequestMethodKey.String(k.method)}
	port, err := strconv.Atoi(u.Port())
	if err != nil {
		port = defaultPort(k.scheme)
	}
	if port > 0 {
		kvs = append(kvs, semconv.ServerPort(port))
	}
	if k.scheme != "" {
		kvs = append(kvs, semconv.URLScheme(k.scheme))
	}
	kvs = append(kvs, outcomeAttrs(k.status, k.errType)...)
	kvs = append(kvs, rr.common...)
	return []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(kvs...))}
}

// timedBody is a response body that records its request's duration when
// it ends: read to io.EOF, failed, or closed, whichever comes first.
type timedBody struct {
	rc    io.ReadCloser
	rr    *requestRecorder
	ctx   context.Context
	key   requestKey
	start time.Time
	done  atomic.Bool
}

func (b *timedBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if err != nil {
		b.finish(err)
	}
	return n, err
}

func (b *timedBody) Close() error {
	err := b.rc.Close()
	b.finish(nil)
	return err
}

// finish records the request once; err is what ended the body (io.EOF
// or nil: no error).
func (b *timedBody) finish(err error) {
	if !b.done.CompareAndSwap(false, true) {
		return
	}
	k := b.key
	if err != nil && err != io.EOF {
		k.errType = errorType(err)
	}
	b.rr.record(b.ctx, k, b.start)
}

// defaultPort returns the port of a URL without one: its scheme's (0 if
// it is neither http nor https).
func defaultPort(scheme string) int {
	switch scheme {
	case "http":
		return 80
	case "https":
		return 443
	}
	return 0
}
