package lbotel_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/go-lb/lb"
	lbotel "github.com/go-lb/lb/otel"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
)

// attemptInfo is an attempt as the Transport reports it.
func attemptInfo(tb testing.TB) lb.AttemptInfo {
	req, err := http.NewRequest("GET", "http://svc.test/v1/users/42", nil)
	require.NoError(tb, err)
	return lb.AttemptInfo{Request: req, Backend: "10.0.0.1:8080", Attempt: 1, Duration: 1500 * time.Microsecond, StatusCode: 200}
}

// TestAttemptObserverAllocs: once an attempt's attributes have been seen,
// recording one allocates nothing (with the SDK).
func TestAttemptObserverAllocs(t *testing.T) {
	observe, err := lbotel.AttemptObserver(lbotel.WithMeterProvider(newReader(t).mp), lbotel.WithService("svc"))
	require.NoError(t, err)
	info := attemptInfo(t)
	failed := info
	failed.StatusCode, failed.Err, failed.Failure, failed.Attempt = 0, lb.ErrPerTryTimeout, true, 2
	observe(info)
	observe(failed)
	assert.Zero(t, testing.AllocsPerRun(100, func() { observe(info) }))
	assert.Zero(t, testing.AllocsPerRun(100, func() { observe(failed) }))
}

// BenchmarkAttemptObserver is the observer's cost per attempt, with the
// SDK behind it (serial, parallel), against the floor: the SDK's own
// Record of a histogram with a ready attribute set of the same seven
// attributes (sdk-record), which any instrumentation pays. noop is the
// observer with a MeterProvider that records nothing (the global one
// when no SDK is set up).
func BenchmarkAttemptObserver(b *testing.B) {
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	defer mp.Shutdown(context.Background())
	observe, err := lbotel.AttemptObserver(lbotel.WithMeterProvider(mp), lbotel.WithService("svc"))
	require.NoError(b, err)
	info := attemptInfo(b)
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			observe(info)
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				observe(info)
			}
		})
	})
	b.Run("sdk-record", func(b *testing.B) {
		h, err := mp.Meter("bench").Float64Histogram("bench.duration")
		require.NoError(b, err)
		opt := []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(
			semconv.ServerAddress("10.0.0.1"), semconv.ServerPort(8080), semconv.HTTPRequestMethodGet,
			attribute.String("lb.attempt.kind", "first"), semconv.URLScheme("http"), semconv.HTTPResponseStatusCode(200),
			semconv.ServicePeerName("svc")))}
		ctx := context.Background()
		b.ReportAllocs()
		for b.Loop() {
			h.Record(ctx, 0.0015, opt...)
		}
	})
	b.Run("noop", func(b *testing.B) {
		observe, err := lbotel.AttemptObserver(lbotel.WithMeterProvider(noop.NewMeterProvider()))
		require.NoError(b, err)
		b.ReportAllocs()
		for b.Loop() {
			observe(info)
		}
	})
}

// BenchmarkOverhead measures what the instrumentation adds to a request
// over loopback, against the same Transport without it. Four clients take
// turns on one backend, in blocks of 200 requests, in an order that
// rotates each round so that whatever else the machine runs slows each
// alike: two bare Transports (A and B), one with the attempt observer, and
// one fully instrumented (observer, Instrument being collected every
// round, and RoundTripper on top). Reported, as medians over the rounds,
// per request:
//
//	bare-ns/req                      the bare Transports' mean time
//	observer-ns/req, observer-%      the observer's Transport against bare
//	full-ns/req, full-%              the fully instrumented one against bare
//	*-cpu-ns/req                     the same in CPU time (client and server)
//	control-ns/req                   bare B against bare A: the method's
//	                                 noise; an overhead within it is not
//	                                 resolved
//
// Run with -benchtime 200000x (250 rounds) or more: on a shared machine
// the control shows how far the method resolves.
func BenchmarkOverhead(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(ok))
	defer srv.Close()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())
	opts := []lbotel.Option{lbotel.WithMeterProvider(mp), lbotel.WithService("svc")}
	// Each Transport has a Balancer of its own, over the same backend: the
	// first Transport to send to a backend keeps its connections on the
	// Backend, the others find theirs in a map.
	transport := func(observer bool) (*lb.Balancer, *lb.Transport) {
		bal, err := lb.NewBalancer(lb.RoundRobin{}, lb.WithEndpoints(lb.Addrs(srv.Listener.Addr().String())))
		require.NoError(b, err)
		b.Cleanup(func() { bal.Close() })
		var topts []lb.TransportOption
		if observer {
			observe, err := lbotel.AttemptObserver(opts...)
			require.NoError(b, err)
			topts = append(topts, lb.WithAttemptObserver(observe))
		}
		tr, err := lb.NewTransport(bal, topts...)
		require.NoError(b, err)
		return bal, tr
	}
	bal, full := transport(true)
	m, err := lbotel.Instrument(bal, full, opts...)
	require.NoError(b, err)
	defer m.Close()
	wrapped, err := lbotel.RoundTripper(full, opts...)
	require.NoError(b, err)
	_, trA := transport(false)
	_, trO := transport(true)
	_, trB := transport(false)
	const bareA, observed, bareB, instrumented = 0, 1, 2, 3
	clients := [4]*http.Client{{Transport: trA}, {Transport: trO}, {Transport: trB}, {Transport: wrapped}}
	for _, c := range clients {
		defer c.CloseIdleConnections()
	}
	req, err := http.NewRequest("GET", "http://svc.test/", nil)
	require.NoError(b, err)
	run := func(k, n int) (wall, cpu float64) {
		cpu0, _ := processCPU()
		start := time.Now()
		for range n {
			resp, err := clients[k].Do(req)
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		elapsed := time.Since(start)
		cpu1, _ := processCPU()
		return float64(elapsed) / float64(n), float64(cpu1-cpu0) / float64(n)
	}
	for k := range clients {
		run(k, 10) // warm up: connections, attribute caches
	}
	const block = 200
	var bare, obs, fullD, obsCPU, fullCPU, control, obsPct, fullPct []float64
	b.ResetTimer()
	for r, left := 0, b.N; left > 0; r++ {
		left -= 4 * block
		var order [4]int
		for i := range order {
			order[i] = (i + r) % 4
			if r%2 == 1 {
				order[i] = (3 - i + r) % 4
			}
		}
		// Fresh connections each round, dialled in the round's order: one
		// connection's speed differs by a few percent, which would
		// otherwise favour one client for a whole run.
		b.StopTimer()
		collectInto(b, reader)
		for _, k := range order {
			clients[k].CloseIdleConnections()
		}
		for _, k := range order {
			run(k, 2)
		}
		b.StartTimer()
		var wall, cpu [4]float64
		for _, k := range order {
			wall[k], cpu[k] = run(k, block)
		}
		base, baseCPU := (wall[bareA]+wall[bareB])/2, (cpu[bareA]+cpu[bareB])/2
		bare = append(bare, base)
		obs, fullD = append(obs, wall[observed]-base), append(fullD, wall[instrumented]-base)
		obsPct, fullPct = append(obsPct, 100*(wall[observed]/base-1)), append(fullPct, 100*(wall[instrumented]/base-1))
		obsCPU, fullCPU = append(obsCPU, cpu[observed]-baseCPU), append(fullCPU, cpu[instrumented]-baseCPU)
		control = append(control, wall[bareB]-wall[bareA])
	}
	b.StopTimer()
	b.ReportMetric(median(bare), "bare-ns/req")
	b.ReportMetric(median(obs), "observer-ns/req")
	b.ReportMetric(median(obsPct), "observer-%")
	b.ReportMetric(median(fullD), "full-ns/req")
	b.ReportMetric(median(fullPct), "full-%")
	if _, ok := processCPU(); ok {
		b.ReportMetric(median(obsCPU), "observer-cpu-ns/req")
		b.ReportMetric(median(fullCPU), "full-cpu-ns/req")
	}
	b.ReportMetric(median(control), "control-ns/req")
}

// median returns the median of xs, which it sorts.
func median(xs []float64) float64 {
	slices.Sort(xs)
	if len(xs) == 0 {
		return 0
	}
	return xs[len(xs)/2]
}
