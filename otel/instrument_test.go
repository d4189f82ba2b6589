package lbotel_test

import (
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/go-lb/lb"
	lbotel "github.com/go-lb/lb/otel"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
)

// ejectAtOnce ejects a backend at its first failure, for an hour, with
// no cap on how many are out, and no other rule.
var ejectAtOnce = lb.OutlierDetection{
	ConsecutiveFailures:        1,
	BaseEjectionTime:           time.Hour,
	MaxEjectionTime:            time.Hour,
	MaxEjectionPercent:         100,
	SuccessRateStdevFactor:     -1,
	FailurePercentageThreshold: -1,
}

// ample is a retry budget that no test here runs out of.
var ample = lb.RetryBudget{Ratio: 1000, MinPerSecond: 1000}

// TestRetriesAndEjections runs ten GETs over three backends, one that
// answers, one that answers 503 and one that refuses connections, with
// retries and an ejection at the first failure: each failing backend is
// tried once, ejected, and every request ends on the good one. Every
// per-backend and per-Transport instrument, both histograms, and their
// attributes are checked.
func TestRetriesAndEjections(t *testing.T) {
	r := newReader(t)
	good, bad := startBackend(t, ok), startBackend(t, status(http.StatusServiceUnavailable))
	refused := refusedAddr(t)
	bal := newBalancer(t, []string{good.addr(), bad.addr(), refused}, lb.WithOutlierDetection(ejectAtOnce))
	opts := []lbotel.Option{lbotel.WithMeterProvider(r.mp), lbotel.WithService("svc")}
	tr := instrumented(t, r, bal, opts, lb.WithMaxAttempts(3), lb.WithRetryBudget(ample))
	rt, err := lbotel.RoundTripper(tr, opts...)
	require.NoError(t, err)

	const n = 10
	statuses, errs := get(t, rt, "/", n)
	require.Empty(t, errs)
	for _, s := range statuses {
		require.Equal(t, http.StatusOK, s)
	}
	require.EqualValues(t, n, good.hits.Load())
	require.EqualValues(t, 1, bad.hits.Load(), "ejected at its first failure")
	c := r.collect(t)

	svc := semconv.ServicePeerName("svc")
	attrs := map[string][]attribute.KeyValue{}
	for _, a := range []string{good.addr(), bad.addr(), refused} {
		h, p := hostPort(t, a)
		attrs[a] = []attribute.KeyValue{semconv.ServerAddress(h), semconv.ServerPort(p), svc}
	}
	gs, bs, rs := set(attrs[good.addr()]...), set(attrs[bad.addr()]...), set(attrs[refused]...)
	wantInts := []struct {
		give string
		want map[attribute.Distinct]int64
	}{
		{"lb.backend.picks", map[attribute.Distinct]int64{gs: n, bs: 1, rs: 1}},
		{"lb.backend.successes", map[attribute.Distinct]int64{gs: n, bs: 0, rs: 0}},
		{"lb.backend.failures", map[attribute.Distinct]int64{gs: 0, bs: 1, rs: 1}},
		{"lb.backend.in_flight", map[attribute.Distinct]int64{gs: 0, bs: 0, rs: 0}},
		{"lb.backend.ejections", map[attribute.Distinct]int64{gs: 0, bs: 1, rs: 1}},
		{"lb.backend.ejected", map[attribute.Distinct]int64{gs: 0, bs: 1, rs: 1}},
		{"lb.backend.unhealthy", map[attribute.Distinct]int64{gs: 0, bs: 0, rs: 0}},
		{"lb.transport.requests", map[attribute.Distinct]int64{set(svc): n}},
		{"lb.transport.errors", map[attribute.Distinct]int64{set(svc): 0}},
		{"lb.transport.retries", map[attribute.Distinct]int64{set(svc): 2}},
		{"lb.transport.retries_denied", map[attribute.Distinct]int64{set(svc): 0}},
		{"lb.transport.hedges", map[attribute.Distinct]int64{set(svc): 0}},
		{"lb.transport.hedge_wins", map[attribute.Distinct]int64{set(svc): 0}},
		{"lb.transport.per_try_timeouts", map[attribute.Distinct]int64{set(svc): 0}},
		{"lb.transport.body_stalls", map[attribute.Distinct]int64{set(svc): 0}},
	}
	for _, w := range wantInts {
		assert.Equal(t, w.want, c.ints(t, w.give), w.give)
	}
	// One failure from a clean score: 0 + 0.25*(1-0).
	assert.Equal(t, map[attribute.Distinct]float64{gs: 0, bs: 0.25, rs: 0.25}, c.reals(t, "lb.backend.failure_score"))
	assert.Equal(t, map[attribute.Distinct]float64{gs: 1, bs: 1, rs: 1}, c.reals(t, "lb.backend.slow_start.share"))
	lat := c.reals(t, "lb.backend.latency")
	for _, st := range bal.Stats() {
		h, p := hostPort(t, st.Endpoint.Addr)
		assert.Equal(t, st.Latency.Seconds(), lat[set(semconv.ServerAddress(h), semconv.ServerPort(p), svc)], st.Endpoint.Addr)
	}
	assert.Positive(t, lat[gs])

	// Attempts: the good backend's ten, first tries or retries after a
	// failing backend was tried first; one on each failing backend.
	attempt := func(addr string, kind string, kvs ...attribute.KeyValue) attribute.Distinct {
		return set(append(append(kvs, attrs[addr]...), semconv.HTTPRequestMethodGet, semconv.URLScheme("http"), attribute.String("lb.attempt.kind", kind))...)
	}
	counts := c.counts(t, "http.client.request.duration")
	ok200 := semconv.HTTPResponseStatusCode(200)
	badFirst := counts[attempt(bad.addr(), "first", semconv.HTTPResponseStatusCode(503), semconv.ErrorTypeKey.String("503"))]
	badRetry := counts[attempt(bad.addr(), "retry", semconv.HTTPResponseStatusCode(503), semconv.ErrorTypeKey.String("503"))]
	refFirst := counts[attempt(refused, "first", semconv.ErrorTypeKey.String("connection_refused"))]
	refRetry := counts[attempt(refused, "retry", semconv.ErrorTypeKey.String("connection_refused"))]
	goodFirst, goodRetry := counts[attempt(good.addr(), "first", ok200)], counts[attempt(good.addr(), "retry", ok200)]
	assert.EqualValues(t, 1, badFirst+badRetry)
	assert.EqualValues(t, 1, refFirst+refRetry)
	assert.EqualValues(t, n, goodFirst+goodRetry)
	assert.Equal(t, badFirst+refFirst, goodRetry, "a request that started on a failing backend ended on the good one")
	var total uint64
	for _, v := range counts {
		total += v
	}
	assert.EqualValues(t, n+2, total, "no other series")
	for _, p := range c.hist(t, "http.client.request.duration") {
		assert.Equal(t, []float64{0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10}, p.Bounds, "the conventions' buckets")
	}
	assert.Equal(t, "s", c["http.client.request.duration"].Unit)

	// Requests: ten, on the service's name.
	reqs := c.hist(t, lbotel.RequestDurationName)
	require.Len(t, reqs, 1)
	p, found := reqs[set(semconv.ServerAddress("svc.test"), semconv.ServerPort(80), semconv.HTTPRequestMethodGet, semconv.URLScheme("http"), ok200, svc)]
	require.True(t, found, "attributes: %v", c[lbotel.RequestDurationName].Data)
	assert.EqualValues(t, n, p.Count)
	assert.Equal(t, "s", c[lbotel.RequestDurationName].Unit)
}

// TestInFlightSlowStartHealth holds a response body open (one call in
// flight), adds a backend under slow start (its share starts at the
// minimum) and marks it down (unhealthy).
func TestInFlightSlowStartHealth(t *testing.T) {
	r := newReader(t)
	release := make(chan struct{})
	streaming := startBackend(t, func(w http.ResponseWriter, req *http.Request) {
		io.WriteString(w, "head")
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-req.Context().Done():
		}
	})
	joiner := startBackend(t, ok)
	bal := newBalancer(t, []string{streaming.addr()}, lb.WithSlowStart(lb.SlowStart{Window: time.Hour}))
	tr, err := lb.NewTransport(bal)
	require.NoError(t, err)
	closeIdle(t, tr)
	m, err := lbotel.Instrument(bal, nil, lbotel.WithMeterProvider(r.mp))
	require.NoError(t, err)
	defer m.Close()
	sh, sp := hostPort(t, streaming.addr())
	ss := set(semconv.ServerAddress(sh), semconv.ServerPort(sp))
	jh, jp := hostPort(t, joiner.addr())
	js := set(semconv.ServerAddress(jh), semconv.ServerPort(jp))

	resp, err := (&http.Client{Transport: tr}).Get("http://svc.test/")
	require.NoError(t, err)
	buf := make([]byte, 4)
	_, err = io.ReadFull(resp.Body, buf)
	require.NoError(t, err)
	c := r.collect(t)
	assert.Equal(t, map[attribute.Distinct]int64{ss: 1}, c.ints(t, "lb.backend.in_flight"), "the body is open")
	assert.Equal(t, map[attribute.Distinct]int64{ss: 1}, c.ints(t, "lb.backend.picks"))
	assert.Equal(t, map[attribute.Distinct]int64{ss: 0}, c.ints(t, "lb.backend.successes"))
	_, hasTransport := c["lb.transport.requests"]
	assert.False(t, hasTransport, "no Transport was instrumented")

	close(release)
	_, err = io.Copy(io.Discard, resp.Body)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.NoError(t, bal.Update(lb.Addrs(streaming.addr(), joiner.addr())))
	c = r.collect(t)
	assert.Equal(t, map[attribute.Distinct]int64{ss: 0, js: 0}, c.ints(t, "lb.backend.in_flight"))
	assert.Equal(t, map[attribute.Distinct]int64{ss: 1, js: 0}, c.ints(t, "lb.backend.successes"))
	share := c.reals(t, "lb.backend.slow_start.share")
	assert.Equal(t, 1.0, share[ss], "in the first set: a full share")
	assert.InDelta(t, 0.1, share[js], 0.01, "joined: the default MinWeight")
	for _, st := range bal.Stats() {
		if st.Endpoint.Addr == joiner.addr() {
			assert.Equal(t, st.Share, share[js], "the share Stats reports")
		}
	}

	require.NoError(t, bal.SetHealthy(joiner.addr(), false))
	c = r.collect(t)
	assert.Equal(t, map[attribute.Distinct]int64{ss: 0, js: 1}, c.ints(t, "lb.backend.unhealthy"))

	// A backend that leaves the set is no longer reported.
	require.NoError(t, bal.Update(lb.Addrs(joiner.addr())))
	c = r.collect(t)
	assert.Equal(t, map[attribute.Distinct]int64{js: 0}, c.ints(t, "lb.backend.picks"))
}

// TestHedging hedges every request that waits 20 ms for headers, on a
// backend that never answers: the hedge on the other backend wins, and
// the attempt it beat is reported with error.type hedge_lost.
func TestHedging(t *testing.T) {
	r := newReader(t)
	stuck, fast := startBackend(t, hang), startBackend(t, ok)
	bal := newBalancer(t, []string{stuck.addr(), fast.addr()})
	tr := instrumented(t, r, bal, nil, lb.WithMaxAttempts(2), lb.WithRetryBudget(ample),
		lb.WithHedging(lb.Hedging{Delay: 20 * time.Millisecond}))

	const n = 4
	_, errs := get(t, tr, "/", n)
	require.Empty(t, errs)
	// Every request that started on the stuck backend was hedged, and
	// the hedge won; one that started on the fast backend is hedged only
	// if that took 20 ms (a loaded machine), and then the hedge lost.
	// (The server may not see an attempt cancelled early.)
	st := tr.Stats()
	hedged, won := int64(st.Hedges), int64(st.HedgeWins)
	require.Positive(t, won, "round robin sends some first attempts to the stuck backend")
	require.LessOrEqual(t, stuck.hits.Load(), hedged)
	require.EqualValues(t, n, fast.hits.Load())

	sh, sp := hostPort(t, stuck.addr())
	fh, fp := hostPort(t, fast.addr())
	attempt := func(h string, p int, kind string, kvs ...attribute.KeyValue) attribute.Distinct {
		return set(append(kvs, semconv.ServerAddress(h), semconv.ServerPort(p), semconv.HTTPRequestMethodGet, semconv.URLScheme("http"), attribute.String("lb.attempt.kind", kind))...)
	}
	ok200, lost := semconv.HTTPResponseStatusCode(200), semconv.ErrorTypeKey.String("hedge_lost")
	want := map[attribute.Distinct]uint64{
		attempt(fh, fp, "hedge", ok200): uint64(won),
		attempt(fh, fp, "first", ok200): uint64(n - won),
		attempt(sh, sp, "first", lost):  uint64(won),
	}
	if hedged > won {
		want[attempt(sh, sp, "hedge", lost)] = uint64(hedged - won)
	}
	// The lost attempts are reported once they are cancelled, after the
	// requests returned.
	var got map[attribute.Distinct]uint64
	require.Eventually(t, func() bool {
		got = r.collect(t).counts(t, "http.client.request.duration")
		return assert.ObjectsAreEqual(want, got)
	}, 5*time.Second, 5*time.Millisecond, "got %v", r.collect(t)["http.client.request.duration"].Data)
	c := r.collect(t)
	none := set()
	assert.Equal(t, map[attribute.Distinct]int64{none: hedged}, c.ints(t, "lb.transport.hedges"))
	assert.Equal(t, map[attribute.Distinct]int64{none: won}, c.ints(t, "lb.transport.hedge_wins"))
	assert.Equal(t, map[attribute.Distinct]int64{none: 0}, c.ints(t, "lb.transport.retries"))
	ss, fs := set(semconv.ServerAddress(sh), semconv.ServerPort(sp)), set(semconv.ServerAddress(fh), semconv.ServerPort(fp))
	require.Eventually(t, func() bool {
		return r.collect(t).ints(t, "lb.backend.in_flight")[ss] == 0
	}, 5*time.Second, 5*time.Millisecond)
	c = r.collect(t)
	assert.Equal(t, map[attribute.Distinct]int64{ss: hedged, fs: n}, c.ints(t, "lb.backend.picks"))
	assert.Equal(t, map[attribute.Distinct]int64{ss: 0, fs: n}, c.ints(t, "lb.backend.successes"))
	assert.Equal(t, map[attribute.Distinct]int64{ss: 0, fs: 0}, c.ints(t, "lb.backend.failures"), "a lost hedge is neither")
}

// TestPerTryTimeout abandons attempts on a backend that sends no headers
// within the per-try timeout, and retries them on the other.
func TestPerTryTimeout(t *testing.T) {
	const perTry = 250 * time.Millisecond // well above a loaded machine's loopback request
	r := newReader(t)
	stuck, fast := startBackend(t, hang), startBackend(t, ok)
	bal := newBalancer(t, []string{stuck.addr(), fast.addr()})
	tr := instrumented(t, r, bal, nil, lb.WithMaxAttempts(2), lb.WithRetryBudget(ample),
		lb.WithPerTryTimeout(perTry))

	const n = 4
	_, errs := get(t, tr, "/", n)
	require.Empty(t, errs)
	// Every first attempt on the stuck backend timed out, and was retried.
	timedOut := int64(tr.Stats().PerTryTimeouts)
	require.Positive(t, timedOut, "round robin sends some first attempts to the stuck backend")
	require.LessOrEqual(t, stuck.hits.Load(), timedOut)
	require.EqualValues(t, n, fast.hits.Load())

	c := r.collect(t)
	none := set()
	assert.Equal(t, map[attribute.Distinct]int64{none: timedOut}, c.ints(t, "lb.transport.per_try_timeouts"))
	assert.Equal(t, map[attribute.Distinct]int64{none: timedOut}, c.ints(t, "lb.transport.retries"))
	sh, sp := hostPort(t, stuck.addr())
	key := set(semconv.ServerAddress(sh), semconv.ServerPort(sp), semconv.HTTPRequestMethodGet, semconv.URLScheme("http"),
		attribute.String("lb.attempt.kind", "first"), semconv.ErrorTypeKey.String("per_try_timeout"))
	p, found := c.hist(t, "http.client.request.duration")[key]
	require.True(t, found)
	assert.EqualValues(t, timedOut, p.Count)
	least, _ := p.Min.Value()
	assert.GreaterOrEqual(t, least, 0.9*perTry.Seconds(), "each waited the per-try timeout")
	assert.Equal(t, map[attribute.Distinct]int64{set(semconv.ServerAddress(sh), semconv.ServerPort(sp)): timedOut},
		filter(c.ints(t, "lb.backend.failures"), set(semconv.ServerAddress(sh), semconv.ServerPort(sp))))
}

// filter returns the entry of m at k alone.
func filter[V any](m map[attribute.Distinct]V, k attribute.Distinct) map[attribute.Distinct]V {
	return map[attribute.Distinct]V{k: m[k]}
}

// TestBudgetDenialsAndErrors sends GETs to two backends that refuse
// connections, with a budget of about one retry a second: every request
// fails, and each made its retry or was denied one.
func TestBudgetDenialsAndErrors(t *testing.T) {
	r := newReader(t)
	bal := newBalancer(t, []string{refusedAddr(t), refusedAddr(t)})
	opts := []lbotel.Option{lbotel.WithMeterProvider(r.mp)}
	tr, err := lb.NewTransport(bal, lb.WithMaxAttempts(2),
		lb.WithRetryBudget(lb.RetryBudget{Ratio: 0.001, MinPerSecond: 1, Window: time.Second}))
	require.NoError(t, err)
	closeIdle(t, tr)
	m, err := lbotel.Instrument(bal, tr, opts...)
	require.NoError(t, err)
	defer m.Close()
	rt, err := lbotel.RoundTripper(tr, opts...)
	require.NoError(t, err)

	const n = 5
	_, errs := get(t, rt, "/", n)
	require.Len(t, errs, n)
	c := r.collect(t)
	none := set()
	retries, denied := c.ints(t, "lb.transport.retries")[none], c.ints(t, "lb.transport.retries_denied")[none]
	assert.EqualValues(t, n, retries+denied, "each request retried once or was denied")
	assert.Positive(t, denied, "five requests in under a second leave no budget for five retries")
	assert.Equal(t, tr.Stats().RetriesDenied, uint64(denied))
	assert.Equal(t, map[attribute.Distinct]int64{none: n}, c.ints(t, "lb.transport.errors"))
	assert.Equal(t, map[attribute.Distinct]int64{none: n}, c.ints(t, "lb.transport.requests"))
	assert.Equal(t, map[attribute.Distinct]uint64{
		set(semconv.ServerAddress("svc.test"), semconv.ServerPort(80), semconv.HTTPRequestMethodGet, semconv.URLScheme("http"),
			semconv.ErrorTypeKey.String("connection_refused")): n,
	}, c.counts(t, lbotel.RequestDurationName))
}

// TestInstrumentClose unregisters the instruments: a collection after
// Close reports none of their points, and Close can be called again.
func TestInstrumentClose(t *testing.T) {
	r := newReader(t)
	bal := newBalancer(t, []string{"127.0.0.1:1"})
	tr, err := lb.NewTransport(bal)
	require.NoError(t, err)
	m, err := lbotel.Instrument(bal, tr, lbotel.WithMeterProvider(r.mp), lbotel.WithAttributes(attribute.String("pool", "blue")))
	require.NoError(t, err)
	c := r.collect(t)
	assert.Equal(t, map[attribute.Distinct]int64{set(attribute.String("pool", "blue")): 0}, c.ints(t, "lb.transport.requests"))
	assert.Equal(t, map[attribute.Distinct]int64{set(semconv.ServerAddress("127.0.0.1"), semconv.ServerPort(1), attribute.String("pool", "blue")): 0},
		c.ints(t, "lb.backend.picks"))
	require.NoError(t, m.Close())
	require.NoError(t, m.Close())
	for name, m := range r.collect(t) {
		assert.Zero(t, points(t, m), "%s still reported", name)
	}
}

// TestGlobalMeterProvider: without WithMeterProvider, the global
// provider is used.
func TestGlobalMeterProvider(t *testing.T) {
	r := newReader(t)
	prev := otel.GetMeterProvider()
	otel.SetMeterProvider(r.mp)
	t.Cleanup(func() { otel.SetMeterProvider(prev) })
	bal := newBalancer(t, []string{"127.0.0.1:1"})
	m, err := lbotel.Instrument(bal, nil)
	require.NoError(t, err)
	defer m.Close()
	assert.Equal(t, map[attribute.Distinct]int64{set(semconv.ServerAddress("127.0.0.1"), semconv.ServerPort(1)): 0},
		r.collect(t).ints(t, "lb.backend.picks"))
}
