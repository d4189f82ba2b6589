package lbotel_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-lb/lb"
	lbotel "github.com/go-lb/lb/otel"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// reader is a MeterProvider with a ManualReader: collect reads what the
// instruments hold now.
type reader struct {
	r  *sdkmetric.ManualReader
	mp *sdkmetric.MeterProvider
}

func newReader(t *testing.T) *reader {
	t.Helper()
	r := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(r))
	t.Cleanup(func() { require.NoError(t, mp.Shutdown(context.Background())) })
	return &reader{r: r, mp: mp}
}

// collected is one collection, by instrument name.
type collected map[string]metricdata.Metrics

func (r *reader) collect(t *testing.T) collected {
	t.Helper()
	var rm metricdata.ResourceMetrics
	require.NoError(t, r.r.Collect(context.Background(), &rm))
	out := collected{}
	for _, sm := range rm.ScopeMetrics {
		require.Equal(t, "github.com/go-lb/lb/otel", sm.Scope.Name)
		for _, m := range sm.Metrics {
			out[m.Name] = m
		}
	}
	return out
}

// ints returns the points of an int64 sum or gauge, by attribute set.
func (c collected) ints(t *testing.T, name string) map[attribute.Distinct]int64 {
	t.Helper()
	m, ok := c[name]
	require.True(t, ok, "no instrument %s", name)
	out := map[attribute.Distinct]int64{}
	switch d := m.Data.(type) {
	case metricdata.Sum[int64]:
		for _, p := range d.DataPoints {
			out[p.Attributes.Equivalent()] = p.Value
		}
	case metricdata.Gauge[int64]:
		for _, p := range d.DataPoints {
			out[p.Attributes.Equivalent()] = p.Value
		}
	default:
		t.Fatalf("%s is a %T, not an int64 sum or gauge", name, m.Data)
	}
	return out
}

// reals returns the points of a float64 gauge, by attribute set.
func (c collected) reals(t *testing.T, name string) map[attribute.Distinct]float64 {
	t.Helper()
	m, ok := c[name]
	require.True(t, ok, "no instrument %s", name)
	d, ok := m.Data.(metricdata.Gauge[float64])
	require.True(t, ok, "%s is a %T, not a float64 gauge", name, m.Data)
	out := map[attribute.Distinct]float64{}
	for _, p := range d.DataPoints {
		out[p.Attributes.Equivalent()] = p.Value
	}
	return out
}

// hist returns the points of a float64 histogram, by attribute set.
func (c collected) hist(t *testing.T, name string) map[attribute.Distinct]metricdata.HistogramDataPoint[float64] {
	t.Helper()
	m, ok := c[name]
	require.True(t, ok, "no instrument %s", name)
	d, ok := m.Data.(metricdata.Histogram[float64])
	require.True(t, ok, "%s is a %T, not a float64 histogram", name, m.Data)
	out := map[attribute.Distinct]metricdata.HistogramDataPoint[float64]{}
	for _, p := range d.DataPoints {
		out[p.Attributes.Equivalent()] = p
	}
	return out
}

// counts returns the number of measurements of each series of a
// histogram.
func (c collected) counts(t *testing.T, name string) map[attribute.Distinct]uint64 {
	t.Helper()
	out := map[attribute.Distinct]uint64{}
	for k, p := range c.hist(t, name) {
		out[k] = p.Count
	}
	return out
}

// points returns the number of points of m.
func points(t *testing.T, m metricdata.Metrics) int {
	t.Helper()
	switch d := m.Data.(type) {
	case metricdata.Sum[int64]:
		return len(d.DataPoints)
	case metricdata.Gauge[int64]:
		return len(d.DataPoints)
	case metricdata.Gauge[float64]:
		return len(d.DataPoints)
	case metricdata.Histogram[float64]:
		return len(d.DataPoints)
	}
	t.Fatalf("%s is a %T", m.Name, m.Data)
	return 0
}

// set is the attribute set of kvs, as the maps above key it.
func set(kvs ...attribute.KeyValue) attribute.Distinct {
	s := attribute.NewSet(kvs...)
	return s.Equivalent()
}

// hostPort splits a loopback "127.0.0.1:port" address for attributes.
func hostPort(t *testing.T, addr string) (string, int) {
	t.Helper()
	h, p, err := net.SplitHostPort(addr)
	require.NoError(t, err)
	port, err := net.LookupPort("tcp", p)
	require.NoError(t, err)
	return h, port
}

// backend is a loopback HTTP server that counts its requests.
type backend struct {
	srv  *httptest.Server
	hits atomic.Int64
}

func (b *backend) addr() string { return b.srv.Listener.Addr().String() }

// startBackend starts a loopback server answering with h (after
// counting the request); it is closed at the end of the test.
func startBackend(t *testing.T, h http.HandlerFunc) *backend {
	t.Helper()
	b := new(backend)
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.hits.Add(1)
		h(w, r)
	}))
	t.Cleanup(b.srv.Close)
	return b
}

// ok answers 200 with a short body.
func ok(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") }

// status answers with code.
func status(code int) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(code) }
}

// hang answers nothing until the client goes away (10 s at most).
func hang(_ http.ResponseWriter, req *http.Request) {
	select {
	case <-req.Context().Done():
	case <-time.After(10 * time.Second):
	}
}

// instrumented returns a Transport over bal with topts and the attempt
// observer, its instruments registered (Instrument) until the end of the
// test. opts are lbotel's options, r's provider first.
func instrumented(t *testing.T, r *reader, bal *lb.Balancer, opts []lbotel.Option, topts ...lb.TransportOption) *lb.Transport {
	t.Helper()
	opts = append([]lbotel.Option{lbotel.WithMeterProvider(r.mp)}, opts...)
	observe, err := lbotel.AttemptObserver(opts...)
	require.NoError(t, err)
	tr, err := lb.NewTransport(bal, append(topts, lb.WithAttemptObserver(observe))...)
	require.NoError(t, err)
	closeIdle(t, tr)
	m, err := lbotel.Instrument(bal, tr, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, m.Close()) })
	return tr
}

// refusedAddr returns a loopback address where nothing listens: a dial
// there is refused.
func refusedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

// newBalancer returns a round-robin Balancer over addrs, closed at the
// end of the test.
func newBalancer(t *testing.T, addrs []string, opts ...lb.Option) *lb.Balancer {
	t.Helper()
	bal, err := lb.NewBalancer(lb.RoundRobin{}, append([]lb.Option{lb.WithEndpoints(lb.Addrs(addrs...))}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(func() { bal.Close() })
	return bal
}

// get sends n GETs through rt to http://svc/ (or url if it starts with
// "http") and reads and closes each body; it returns the statuses and
// errors.
func get(t *testing.T, rt http.RoundTripper, url string, n int) (statuses []int, errs []error) {
	t.Helper()
	if !strings.HasPrefix(url, "http") {
		url = "http://svc.test" + url
	}
	client := &http.Client{Transport: rt, Timeout: 10 * time.Second}
	for range n {
		resp, err := client.Get(url)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		_, err = io.Copy(io.Discard, resp.Body)
		require.NoError(t, err)
		require.NoError(t, resp.Body.Close())
		statuses = append(statuses, resp.StatusCode)
	}
	return statuses, errs
}

// closeIdle closes the idle connections of tr at the end of the test, so
// that no connection goroutine outlives it.
func closeIdle(t *testing.T, tr interface{ CloseIdleConnections() }) {
	t.Cleanup(tr.CloseIdleConnections)
}

// collectInto collects from r and drops the result (for benchmarks).
func collectInto(tb testing.TB, r *sdkmetric.ManualReader) {
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		tb.Fatal(err)
	}
}
