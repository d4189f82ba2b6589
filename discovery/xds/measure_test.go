package xds_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-lb/lb"
	"github.com/go-lb/lb/discovery/xds"
	"github.com/go-lb/lb/internal/resolvertest"
)

// These tests measure; they assert only correctness and log the figures.
// Run them alone, without -race, for figures worth quoting:
//
//	cd discovery/xds && go test -run TestMeasure -count=1 -v .

// appliedAt reports when the balancer took a set: now.
func appliedAt(*lb.Balancer) time.Time { return time.Now() }

// From a new snapshot in the management server (the SetSnapshot call) to
// the balancer's new picker, over 100 changes of one endpoint in a
// cluster of 10.
func TestMeasureChangeLatency(t *testing.T) {
	const changes = 100
	cp := startControlPlane(t, "127.0.0.1:0", nil)
	base := manyEndpoints("api", 10, 0)
	cp.set(t, "n", "0", base)
	bal, err := lb.NewBalancer(lb.RoundRobin{})
	require.NoError(t, err)
	defer bal.Close()
	applied := make(chan time.Time, 1)
	stop := resolvertest.FollowInto(t, cp.resolver("n", "api"), bal, applied, appliedAt)
	defer stop()
	<-applied
	lat := make([]time.Duration, 0, changes)
	for i := range changes {
		c := manyEndpoints("api", 10, 0)
		want := 10
		if i%2 == 0 {
			c.Endpoints[0].LbEndpoints = append(c.Endpoints[0].LbEndpoints, ep(fmt.Sprintf("10.9.0.%d", i/2), 80))
			want++
		}
		start := time.Now()
		cp.set(t, "n", fmt.Sprint(i+1), c)
		end := <-applied
		require.Len(t, bal.Backends(), want, "change %d", i)
		lat = append(lat, end.Sub(start))
	}
	resolvertest.NothingMore(t, applied)
	med, maxd := resolvertest.MedianMax(lat)
	t.Logf("EDS change -> new picker, over %d changes: median %v, max %v (budget: median < 100ms)", changes, med, maxd)
}

// 10,000 endpoints: time from the start of Watch to the first set (and
// into a Balancer, to its first picker), and the heap a running resolver
// holds per endpoint.
func TestMeasureLargeSet(t *testing.T) {
	const n, small = 10000, 1000
	cp := startControlPlane(t, "127.0.0.1:0", nil)
	cp.set(t, "big", "1", manyEndpoints("api", n, 0))
	cp.set(t, "small", "1", manyEndpoints("api", small, 0))
	// A first client of each warms the server (it marshals each resource
	// once and keeps it), so that the figures below are the client's.
	resolvertest.MeasureFirstSet(t, cp.resolver("big", "api"), n)
	resolvertest.MeasureFirstSet(t, cp.resolver("small", "api"), small)

	big := resolvertest.MeasureFirstSet(t, cp.resolver("big", "api"), n)
	bigHeap := big.Heap
	smallHeap := resolvertest.MeasureFirstSet(t, cp.resolver("small", "api"), small).Heap
	assert.Positive(t, bigHeap, "a running resolver holds some memory")
	t.Logf("%d endpoints: first set after %v (budget: < 1s)", n, big.After.Round(time.Microsecond))
	t.Logf("heap held by a running resolver: %.0f KiB with %d endpoints, %.0f KiB with %d: %.0f B per endpoint (the difference), %.0f B per endpoint overall",
		float64(bigHeap)/1024, n, float64(smallHeap)/1024, small,
		float64(bigHeap-smallHeap)/(n-small), float64(bigHeap)/n)

	bal, err := lb.NewBalancer(lb.RoundRobin{})
	require.NoError(t, err)
	defer bal.Close()
	applied := make(chan time.Time, 1)
	start := time.Now()
	stop := resolvertest.FollowInto(t, cp.resolver("big", "api"), bal, applied, appliedAt)
	end := <-applied
	stop()
	require.Len(t, bal.Backends(), n)
	t.Logf("%d endpoints into a Balancer (round robin): first picker after %v", n, end.Sub(start).Round(time.Microsecond))
}

// From the start of Watch to the first picker of a Balancer over 10,000
// endpoints: the resolver alone (the set is dropped), and into a Balancer
// of each of two strategies. (A benchmark, not a test: weighted round
// robin takes seconds to build its schedule under -race.)
func BenchmarkFirstSet10k(b *testing.B) {
	const n = 10000
	cp := startControlPlane(b, "127.0.0.1:0", nil)
	cp.set(b, "n", "1", manyEndpoints("api", n, 0))
	for _, bb := range []struct {
		name string
		b    lb.Builder // nil: no balancer
	}{{"resolver", nil}, {"round-robin", lb.RoundRobin{}}, {"weighted-round-robin", lb.WeightedRoundRobin{}}} {
		b.Run(bb.name, func(b *testing.B) {
			for b.Loop() {
				var bal *lb.Balancer
				if bb.b != nil {
					var err error
					if bal, err = lb.NewBalancer(bb.b); err != nil {
						b.Fatal(err)
					}
				}
				ctx, cancel := context.WithCancel(context.Background())
				err := cp.resolver("n", "api").Watch(ctx, func(eps []lb.Endpoint) error {
					if bal != nil {
						if err := bal.Update(eps); err != nil {
							return err
						}
					}
					cancel()
					return nil
				})
				if !errors.Is(err, context.Canceled) {
					b.Fatal(err)
				}
				if bal != nil {
					if len(bal.Backends()) != n {
						b.Fatal(len(bal.Backends()))
					}
					_ = bal.Close()
				}
			}
		})
	}
}

// Convert of a ClusterLoadAssignment of 10,000 endpoints in 4 localities.
func BenchmarkConvert(b *testing.B) {
	c := manyEndpoints("api", 10000, 0)
	b.ReportAllocs()
	for b.Loop() {
		eps, _, err := xds.Convert(c)
		if err != nil || len(eps) != 10000 {
			b.Fatal(len(eps), err)
		}
	}
}
