package lbotel

import (
	"context"

	"github.com/go-lb/lb"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/semconv/v1.43.0/httpconv"
)

// AttemptObserver returns a function to give lb.NewTransport through
// lb.WithAttemptObserver: it records each attempt's time to response
// headers (or to its error) in the histogram http.client.request.duration,
// with the backend the attempt went to as server.address and server.port
// (see the package documentation for the attributes, and how an attempt
// differs from a request). The function is safe for concurrent use; once
// an attempt's attributes have been seen it allocates nothing (with the
// OpenTelemetry SDK). The errors are those of bad options, or of the
// MeterProvider.
func AttemptObserver(opts ...Option) (func(lb.AttemptInfo), error) {
	c, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	h, err := httpconv.NewClientRequestDuration(c.meter())
	if err != nil {
		return nil, err
	}
	o := &attemptObserver{hist: h.Inst(), common: c.common()}
	return o.observe, nil
}

type attemptObserver struct {
	hist   metric.Float64Histogram
	common []attribute.KeyValue
	sets   setCache[attemptKey, []metric.RecordOption]
}

// attemptKey is what the attributes of an attempt's measurement are made
// of.
type attemptKey struct {
	backend string
	method  string
	scheme  string
	status  int
	errType string // from the attempt's error; "" without one
	kind    string
}

func (o *attemptObserver) observe(info lb.AttemptInfo) {
	ctx := context.Background()
	k := attemptKey{backend: info.Backend, method: "_OTHER", status: info.StatusCode, kind: kindFirst}
	if r := info.Request; r != nil {
		ctx = r.Context()
		k.method = method(r.Method)
		if r.URL != nil {
			k.scheme = r.URL.Scheme
		}
	}
	if !o.hist.Enabled(ctx) {
		return
	}
	switch {
	case info.Hedged:
		k.kind = kindHedge
	case info.Attempt > 1:
		k.kind = kindRetry
	}
	if info.Err != nil {
		k.errType = errorType(info.Err)
	}
	o.hist.Record(ctx, info.Duration.Seconds(), o.sets.get(k, o.options)...)
}

// options returns the attributes of an attempt with the fields of k.
func (o *attemptObserver) options(k attemptKey) []metric.RecordOption {
	kvs := append(serverAttrs(splitAddr(k.backend)),
		semconv.HTTPRequestMethodKey.String(k.method),
		attemptKindKey.String(k.kind))
	if k.scheme != "" {
		kvs = append(kvs, semconv.URLScheme(k.scheme))
	}
	kvs = append(kvs, outcomeAttrs(k.status, k.errType)...)
	kvs = append(kvs, o.common...)
	return []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(kvs...))}
}

// outcomeAttrs returns http.response.status_code (when there was a
// response) and error.type (the error's, or the status's when it is 4xx
// or 5xx).
func outcomeAttrs(status int, errType string) []attribute.KeyValue {
	var kvs []attribute.KeyValue
	if status > 0 {
		kvs = append(kvs, semconv.HTTPResponseStatusCode(status))
	}
	if errType == "" {
		errType = statusErrorType(status)
	}
	if errType != "" {
		kvs = append(kvs, semconv.ErrorTypeKey.String(errType))
	}
	return kvs
}
