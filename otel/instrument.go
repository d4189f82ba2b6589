package lbotel

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/go-lb/lb"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// instKind is the kind of an observable instrument.
type instKind int

const (
	counter   instKind = iota // monotonic sum
	upDown                    // non-monotonic sum
	gauge                     // last value
	gaugeReal                 // last value, float64
)

// instSpec describes one observable instrument and where its value
// comes from: a backend's Stats (backend) or the Transport's (transport).
type instSpec struct {
	name, unit, desc string
	kind             instKind
	backend          func(*lb.Stats) int64   // an int64 instrument's value
	backendReal      func(*lb.Stats) float64 // a float64 gauge's value
	transport        func(*lb.TransportStats) uint64
}

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// backendSpecs are the per-backend instruments, read from
// Balancer.Stats. The package documentation's table lists them.
var backendSpecs = []instSpec{
	{name: "lb.backend.picks", unit: "{pick}", kind: counter,
		desc:    "Calls picked on the backend: its successes, failures, calls in flight and calls cancelled.",
		backend: func(s *lb.Stats) int64 { return int64(s.Picks) }},
	{name: "lb.backend.successes", unit: "{call}", kind: counter,
		desc:    "Calls on the backend that ended as a success.",
		backend: func(s *lb.Stats) int64 { return int64(s.Successes) }},
	{name: "lb.backend.failures", unit: "{call}", kind: counter,
		desc:    "Calls on the backend that ended as the backend's failure (an error, a failure status).",
		backend: func(s *lb.Stats) int64 { return int64(s.Failures) }},
	{name: "lb.backend.in_flight", unit: "{call}", kind: upDown,
		desc:    "Calls picked on the backend and not yet done (response bodies not yet closed included).",
		backend: func(s *lb.Stats) int64 { return int64(s.InFlight) }},
	{name: "lb.backend.ejections", unit: "{ejection}", kind: counter,
		desc:    "Times outlier detection ejected the backend since it joined.",
		backend: func(s *lb.Stats) int64 { return int64(s.Ejections) }},
	{name: "lb.backend.ejected", unit: "1", kind: gauge,
		desc:    "1 while outlier detection keeps the backend out of the picker, else 0.",
		backend: func(s *lb.Stats) int64 { return b2i(s.Ejected) }},
	{name: "lb.backend.unhealthy", unit: "1", kind: gauge,
		desc:    "1 while a health check has marked the backend down, else 0.",
		backend: func(s *lb.Stats) int64 { return b2i(s.Unhealthy) }},
	{name: "lb.backend.slow_start.share", unit: "1", kind: gaugeReal,
		desc:        "The backend's slow-start share of a full share, from 0 to 1 (1 when it is not ramping).",
		backendReal: func(s *lb.Stats) float64 { return s.Share }},
	{name: "lb.backend.failure_score", unit: "1", kind: gaugeReal,
		desc:        "The backend's failure score: a moving average of its recent outcomes, from 0 (successes) to 1 (failures).",
		backendReal: func(s *lb.Stats) float64 { return s.FailureScore }},
	{name: "lb.backend.latency", unit: "s", kind: gaugeReal,
		desc:        "The backend's latency EWMA (time to response headers), as load-aware strategies weigh it.",
		backendReal: func(s *lb.Stats) float64 { return s.Latency.Seconds() }},
}

// transportSpecs are the per-Transport instruments, read from
// Transport.Stats.
var transportSpecs = []instSpec{
	{name: "lb.transport.requests", unit: "{request}", kind: counter,
		desc:      "Requests the Transport took (valid requests for a host it serves).",
		transport: func(s *lb.TransportStats) uint64 { return s.Requests }},
	{name: "lb.transport.errors", unit: "{request}", kind: counter,
		desc:      "Requests that ended with an error and no response.",
		transport: func(s *lb.TransportStats) uint64 { return s.Errors }},
	{name: "lb.transport.retries", unit: "{attempt}", kind: counter,
		desc:      "Attempts after a failed one, on another backend.",
		transport: func(s *lb.TransportStats) uint64 { return s.Retries }},
	{name: "lb.transport.retries_denied", unit: "{attempt}", kind: counter,
		desc:      "Retries and hedges the retry budget refused.",
		transport: func(s *lb.TransportStats) uint64 { return s.RetriesDenied }},
	{name: "lb.transport.hedges", unit: "{attempt}", kind: counter,
		desc:      "Hedged attempts sent.",
		transport: func(s *lb.TransportStats) uint64 { return s.Hedges }},
	{name: "lb.transport.hedge_wins", unit: "{request}", kind: counter,
		desc:      "Requests a hedged attempt answered first.",
		transport: func(s *lb.TransportStats) uint64 { return s.HedgeWins }},
	{name: "lb.transport.per_try_timeouts", unit: "{attempt}", kind: counter,
		desc:      "Attempts abandoned by the per-try timeout.",
		transport: func(s *lb.TransportStats) uint64 { return s.PerTryTimeouts }},
	{name: "lb.transport.body_stalls", unit: "{response}", kind: counter,
		desc:      "Response bodies ended by the body idle timeout.",
		transport: func(s *lb.TransportStats) uint64 { return s.BodyStalls }},
}

// Metrics is the registration of a Balancer's and a Transport's
// instruments (Instrument). Close unregisters them.
type Metrics struct {
	reg  metric.Registration
	once sync.Once
	err  error

	bal    *lb.Balancer
	tr     *lb.Transport
	common []attribute.KeyValue
	trOpt  metric.ObserveOption
	bInts  []metric.Int64Observable // by backendSpecs index; nil for a float instrument
	bReals []metric.Float64Observable
	tInts  []metric.Int64Observable

	mu   sync.Mutex // guards what follows: readers may collect concurrently
	sets map[string]*backendSet
	gen  uint64
}

// backendSet is the attribute set of a backend's measurements, and the
// last collection that saw the backend.
type backendSet struct {
	opt  metric.ObserveOption
	seen uint64
}

// Instrument registers the per-backend instruments of bal (read from
// Balancer.Stats) and the per-Transport instruments of tr (read from
// Transport.Stats) with the MeterProvider (WithMeterProvider; default the
// global one). They are observable instruments: their values are read when
// the provider's reader collects, so nothing is added to a pick or a
// request. Either bal or tr may be nil (a Balancer used without a
// Transport, as the gRPC module does), not both. Close unregisters them.
//
// The per-attempt latency histogram is not here: lb.NewTransport needs it
// before the Transport exists; see AttemptObserver. Instrument each
// Balancer and Transport once per MeterProvider: two registrations whose
// series have the same attributes are summed (counters) or overwrite each
// other (gauges); WithService or WithAttributes tells them apart.
//
// The errors wrap lb.ErrInvalidConfig for bad input, or are the
// MeterProvider's.
func Instrument(bal *lb.Balancer, tr *lb.Transport, opts ...Option) (*Metrics, error) {
	if bal == nil && tr == nil {
		return nil, fmt.Errorf("%w: Instrument needs a Balancer or a Transport, got neither", lb.ErrInvalidConfig)
	}
	c, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	meter := c.meter()
	m := &Metrics{bal: bal, tr: tr, common: c.common(), sets: map[string]*backendSet{}}
	var (
		all  []metric.Observable
		errs []error
	)
	if bal != nil {
		m.bInts = make([]metric.Int64Observable, len(backendSpecs))
		m.bReals = make([]metric.Float64Observable, len(backendSpecs))
		for i, s := range backendSpecs {
			if s.kind == gaugeReal {
				g, err := meter.Float64ObservableGauge(s.name, metric.WithUnit(s.unit), metric.WithDescription(s.desc))
				m.bReals[i] = g
				all, errs = append(all, g), append(errs, err)
				continue
			}
			o, err := intObservable(meter, s)
			m.bInts[i] = o
			all, errs = append(all, o), append(errs, err)
		}
	}
	if tr != nil {
		m.trOpt = metric.WithAttributeSet(attribute.NewSet(m.common...))
		m.tInts = make([]metric.Int64Observable, len(transportSpecs))
		for i, s := range transportSpecs {
			o, err := intObservable(meter, s)
			m.tInts[i] = o
			all, errs = append(all, o), append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	m.reg, err = meter.RegisterCallback(m.observe, all...)
	if err != nil {
		return nil, err
	}
	return m, nil
}

// intObservable creates the int64 observable instrument of spec s.
func intObservable(meter metric.Meter, s instSpec) (metric.Int64Observable, error) {
	switch s.kind {
	case counter:
		return meter.Int64ObservableCounter(s.name, metric.WithUnit(s.unit), metric.WithDescription(s.desc))
	case upDown:
		return meter.Int64ObservableUpDownCounter(s.name, metric.WithUnit(s.unit), metric.WithDescription(s.desc))
	default:
		return meter.Int64ObservableGauge(s.name, metric.WithUnit(s.unit), metric.WithDescription(s.desc))
	}
}

// Close unregisters the instruments: collections after it report none of
// them. It is safe to call more than once; later calls return the first
// call's result.
func (m *Metrics) Close() error {
	m.once.Do(func() { m.err = m.reg.Unregister() })
	return m.err
}

// observe is the callback of the registration.
func (m *Metrics) observe(_ context.Context, o metric.Observer) error {
	if m.tr != nil {
		ts := m.tr.Stats()
		for i, s := range transportSpecs {
			o.ObserveInt64(m.tInts[i], int64(s.transport(&ts)), m.trOpt)
		}
	}
	if m.bal == nil {
		return nil
	}
	stats := m.bal.Stats()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.gen++
	for i := range stats {
		st := &stats[i]
		opt := m.backendOpt(st.Endpoint.Addr)
		for j, s := range backendSpecs {
			if s.kind == gaugeReal {
				o.ObserveFloat64(m.bReals[j], s.backendReal(st), opt)
			} else {
				o.ObserveInt64(m.bInts[j], s.backend(st), opt)
			}
		}
	}
	if len(m.sets) > len(stats) {
		for addr, bs := range m.sets {
			if bs.seen != m.gen {
				delete(m.sets, addr) // the backend left the set
			}
		}
	}
	return nil
}

// backendOpt returns the attribute set of addr's measurements. Called
// with m.mu held.
func (m *Metrics) backendOpt(addr string) metric.ObserveOption {
	bs := m.sets[addr]
	if bs == nil {
		kvs := append(serverAttrs(splitAddr(addr)), m.common...)
		bs = &backendSet{opt: metric.WithAttributeSet(attribute.NewSet(kvs...))}
		m.sets[addr] = bs
	}
	bs.seen = m.gen
	return bs.opt
}
