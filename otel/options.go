package lbotel

import (
	"errors"
	"fmt"

	"github.com/go-lb/lb"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
)

// ScopeName is the instrumentation scope (the meter's name) of every
// instrument this package creates.
const ScopeName = "github.com/go-lb/lb/otel"

// Option configures Instrument, AttemptObserver and RoundTripper.
type Option interface {
	apply(*config)
}

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

type config struct {
	provider metric.MeterProvider
	service  string
	attrs    []attribute.KeyValue
	errs     []error
}

// WithMeterProvider sets the MeterProvider the instruments are created
// with. The default (also for nil) is otel.GetMeterProvider(), the global
// one, read when Instrument, AttemptObserver or RoundTripper is called.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return optionFunc(func(c *config) { c.provider = mp })
}

// WithService names the service the instrumented Transport serves ("users"
// or "users.internal"): every measurement gets the attribute
// service.peer.name with it. Without it the attribute is left out. Give
// each Transport (or Balancer) that one MeterProvider sees a name of its
// own: series with the same attributes are summed (counters) or
// overwritten (gauges).
func WithService(name string) Option {
	return optionFunc(func(c *config) { c.service = name })
}

// WithAttributes adds constant attributes to every measurement (a
// deployment, a pool). The keys this package sets itself (see the package
// documentation) are refused, as are invalid attributes (an empty key).
func WithAttributes(kvs ...attribute.KeyValue) Option {
	kvs = append([]attribute.KeyValue(nil), kvs...)
	return optionFunc(func(c *config) {
		for _, kv := range kvs {
			switch {
			case !kv.Valid():
				c.errs = append(c.errs, fmt.Errorf("%w: WithAttributes: attribute %q is not valid (an empty key or no value)", lb.ErrInvalidConfig, kv.Key))
			case reserved[kv.Key]:
				c.errs = append(c.errs, fmt.Errorf("%w: WithAttributes: attribute %q is set by lbotel itself", lb.ErrInvalidConfig, kv.Key))
			default:
				c.attrs = append(c.attrs, kv)
			}
		}
	})
}

// reserved is the attribute keys this package sets.
var reserved = map[attribute.Key]bool{
	semconv.HTTPRequestMethodKey:      true,
	semconv.HTTPResponseStatusCodeKey: true,
	semconv.ServerAddressKey:          true,
	semconv.ServerPortKey:             true,
	semconv.ErrorTypeKey:              true,
	semconv.URLSchemeKey:              true,
	semconv.ServicePeerNameKey:        true,
	attemptKindKey:                    true,
}

// newConfig applies opts and returns the configuration, or the errors of
// bad options joined.
func newConfig(opts []Option) (*config, error) {
	c := new(config)
	for _, o := range opts {
		if o != nil {
			o.apply(c)
		}
	}
	if len(c.errs) > 0 {
		return nil, errors.Join(c.errs...)
	}
	if c.provider == nil {
		c.provider = otel.GetMeterProvider()
	}
	return c, nil
}

// meter returns the package's meter of the configured provider.
func (c *config) meter() metric.Meter {
	return c.provider.Meter(ScopeName, metric.WithSchemaURL(semconv.SchemaURL))
}

// common returns the attributes of every measurement: the service's name,
// if given, and WithAttributes'.
func (c *config) common() []attribute.KeyValue {
	kvs := make([]attribute.KeyValue, 0, len(c.attrs)+1)
	if c.service != "" {
		kvs = append(kvs, semconv.ServicePeerName(c.service))
	}
	return append(kvs, c.attrs...)
}
