package lbotel_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"

	"github.com/go-lb/lb"
	lbotel "github.com/go-lb/lb/otel"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// Example instruments a Balancer and its Transport: the attempt observer
// goes to NewTransport, Instrument registers the per-backend and
// per-Transport instruments, and RoundTripper measures requests as the
// caller sees them. A ManualReader stands in for an exporter.
func Example() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") }))
	defer srv.Close()

	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())
	opts := []lbotel.Option{lbotel.WithMeterProvider(mp), lbotel.WithService("users")}

	bal, err := lb.NewBalancer(lb.RoundRobin{}, lb.WithEndpoints(lb.Addrs(srv.Listener.Addr().String())))
	if err != nil {
		panic(err)
	}
	defer bal.Close()
	observe, err := lbotel.AttemptObserver(opts...)
	if err != nil {
		panic(err)
	}
	tr, err := lb.NewTransport(bal, lb.WithAttemptObserver(observe))
	if err != nil {
		panic(err)
	}
	m, err := lbotel.Instrument(bal, tr, opts...)
	if err != nil {
		panic(err)
	}
	defer m.Close()
	rt, err := lbotel.RoundTripper(tr, opts...)
	if err != nil {
		panic(err)
	}
	client := &http.Client{Transport: rt}
	defer client.CloseIdleConnections()

	for range 3 {
		resp, err := client.Get("http://users.internal/v1/users/42")
		if err != nil {
			panic(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		panic(err)
	}
	for _, m := range rm.ScopeMetrics[0].Metrics {
		switch d := m.Data.(type) {
		case metricdata.Sum[int64]:
			if m.Name == "lb.backend.picks" || m.Name == "lb.transport.requests" {
				fmt.Printf("%s: %d\n", m.Name, d.DataPoints[0].Value)
			}
		case metricdata.Histogram[float64]:
			p := d.DataPoints[0]
			addr, _ := p.Attributes.Value("server.address")
			fmt.Printf("%s (%s): %d measurements to %s\n", m.Name, m.Unit, p.Count, addr.Emit())
		}
	}
	// Unordered output:
	// lb.backend.picks: 3
	// lb.transport.requests: 3
	// http.client.request.duration (s): 3 measurements to 127.0.0.1
	// lb.client.request.duration (s): 3 measurements to users.internal
}
