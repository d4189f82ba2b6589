// Package lbotel exports lb's metrics through OpenTelemetry
// (go.opentelemetry.io/otel/metric): per-backend and per-Transport
// instruments read from a Balancer's and a Transport's Stats, a latency
// histogram per attempt fed by lb.WithAttemptObserver, and, optionally, a
// latency histogram per request as the caller sees it.
//
//	observe, err := lbotel.AttemptObserver(lbotel.WithMeterProvider(mp), lbotel.WithService("users"))
//	tr, err := lb.NewTransport(bal, lb.WithAttemptObserver(observe))
//	m, err := lbotel.Instrument(bal, tr, lbotel.WithMeterProvider(mp), lbotel.WithService("users"))
//	defer m.Close()
//	rt, err := lbotel.RoundTripper(tr, lbotel.WithMeterProvider(mp), lbotel.WithService("users")) // optional
//	client := &http.Client{Transport: rt}
//
// Without WithMeterProvider the global provider (otel.GetMeterProvider) is
// used. The meter's name is ScopeName; the schema is that of the semantic
// conventions v1.43.0. Nothing here starts a goroutine: observable
// instruments are read by the reader's collection, on its goroutine.
//
// # Instruments
//
// Per backend (Instrument, from Balancer.Stats; observable, so a pick pays
// nothing for them). Attributes: server.address and server.port (the
// backend's address), and service.peer.name (WithService) and
// WithAttributes' where given.
//
//	name                          instrument             unit        value
//	lb.backend.picks              Int64ObservableCounter {pick}      Stats.Picks
//	lb.backend.successes          Int64ObservableCounter {call}      Stats.Successes
//	lb.backend.failures           Int64ObservableCounter {call}      Stats.Failures
//	lb.backend.in_flight          Int64ObservableUpDown  {call}      Stats.InFlight
//	lb.backend.ejections          Int64ObservableCounter {ejection}  Stats.Ejections
//	lb.backend.ejected            Int64ObservableGauge   1           Stats.Ejected (0 or 1)
//	lb.backend.unhealthy          Int64ObservableGauge   1           Stats.Unhealthy (0 or 1)
//	lb.backend.slow_start.share   Float64ObservableGauge 1           Stats.Share (0 to 1)
//	lb.backend.failure_score      Float64ObservableGauge 1           Stats.FailureScore (0 to 1)
//	lb.backend.latency            Float64ObservableGauge s           Stats.Latency (the EWMA)
//
// Per Transport (Instrument, from Transport.Stats; observable).
// Attributes: service.peer.name and WithAttributes' where given.
//
//	name                          instrument             unit        value
//	lb.transport.requests         Int64ObservableCounter {request}   TransportStats.Requests
//	lb.transport.errors           Int64ObservableCounter {request}   TransportStats.Errors
//	lb.transport.retries          Int64ObservableCounter {attempt}   TransportStats.Retries
//	lb.transport.retries_denied   Int64ObservableCounter {attempt}   TransportStats.RetriesDenied (by the budget)
//	lb.transport.hedges           Int64ObservableCounter {attempt}   TransportStats.Hedges
//	lb.transport.hedge_wins       Int64ObservableCounter {request}   TransportStats.HedgeWins
//	lb.transport.per_try_timeouts Int64ObservableCounter {attempt}   TransportStats.PerTryTimeouts
//	lb.transport.body_stalls      Int64ObservableCounter {response}  TransportStats.BodyStalls
//
// Histograms (synchronous), in seconds, with the bucket boundaries the
// semantic conventions recommend (5 ms to 10 s):
//
//	name                          recorded by      from                   to
//	http.client.request.duration  AttemptObserver  an attempt's start     its response headers, or its error
//	lb.client.request.duration    RoundTripper     RoundTrip              the response body's end, or the error
//
// Their attributes:
//
//	attribute                  http.client.request.duration        lb.client.request.duration
//	http.request.method        the method ("_OTHER" if not one     the same
//	                           the conventions know)
//	server.address             the backend's host                  the request URL's host (the service)
//	server.port                the backend's port                  the URL's port, or its scheme's
//	url.scheme                 the URL's scheme                    the same
//	http.response.status_code  when there was a response           the same
//	error.type                 see below                           the same, also for a body's error
//	lb.attempt.kind            first, retry or hedge               -
//	service.peer.name          WithService, if given               the same
//
// error.type is set when the attempt or request failed: the status code
// ("503") for a response of status 400 or more, as the conventions say for
// HTTP clients, or a name for the error: per_try_timeout, body_stalled,
// hedge_lost (another attempt answered first), canceled (the caller's
// context), timeout (the caller's deadline, a dial's),
// no_endpoints, balancer_closed, invalid_request, unknown_host,
// connection_refused, connection_reset, connection_closed,
// name_resolution_error, tls_error; any other error gets the
// conventions' default, its type's name ("*net.OpError").
//
// # An attempt, and a request
//
// The semantic conventions ask HTTP client instrumentation for one
// measurement per request sent over the wire, retries and redirects each
// their own. That is lb's attempt, so http.client.request.duration is per
// attempt, and lb's retries and hedges each count: a request retried once
// gives two measurements, one on each backend, and a hedged request two
// that overlap in time. server.address is the backend the attempt went to
// (the server that answered, as the base RoundTripper sees it when given
// one with lb.WithBase), not the URL's host, which with lb names a service
// of many backends; service.peer.name names the service. The duration
// ends at the response headers (net/http's RoundTrip returns then), as in
// other Go and .NET clients: a body read afterwards is not in it.
//
// A caller sees something else: one request, its backends' attempts and
// the waits between them, up to the end of the body. RoundTripper measures
// that, as lb.client.request.duration, whose server.address is the URL's
// host. Attempts ended by lb (a hedge that lost, an attempt abandoned at
// the per-try timeout) appear in the attempt histogram with their
// error.type; the request histogram shows only how each request ended.
//
// # Cardinality and cost
//
// A series is one combination of attribute values: per backend, method,
// status code, error type and attempt kind. lb's backends are a bounded
// set; methods are folded to the known ones. Attribute sets are cached
// (up to 4,096 combinations per observer, then the cache starts over), so
// a measurement whose attributes were seen before allocates nothing.
// Recording an attempt costs what the OpenTelemetry SDK's own Record of
// seven attributes costs (v1.47: about 0.6 µs with warm caches, 1 to 2 µs
// of CPU inside a loop of loopback requests, where caches are cold), and
// about 30 ns with no SDK behind the global provider. BenchmarkAttemptObserver
// and BenchmarkOverhead in this package's tests measure it.
//
// Counters are read from lb's own counters, which live as long as a
// backend stays in the Balancer's set: a backend that leaves and comes
// back starts from zero, which exporters show as a counter reset. A
// backend that leaves the set stops being reported.
package lbotel
