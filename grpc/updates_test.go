package lbgrpc_test

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-lb/lb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/status"
)

// TestAddressUpdates: the policy follows the resolver: an added server
// gets calls, a removed one gets none and leaves lb's set, an empty set
// fails calls fast, and a set again serves them.
func TestAddressUpdates(t *testing.T) {
	t.Parallel()
	a, b, c := startServer(t, "a"), startServer(t, "b"), startServer(t, "c")
	cl := newClient(t, serviceConfig(`{}`), endpointsOf(a, b))
	cl.warm(a, b)
	assert.Len(t, cl.stats(), 2)

	cl.update(endpointsOf(a, b, c))
	cl.warm(a, b, c) // c gets calls
	assert.Len(t, cl.stats(), 3)

	cl.update(endpointsOf(b, c))
	assert.Len(t, cl.stats(), 2)
	assert.NotContains(t, cl.stats(), "a")
	before := a.calls.Load()
	for i := 0; i < 20; i++ {
		name, err := cl.call(context.Background())
		require.NoError(t, err)
		assert.NotEqual(t, "a", name)
	}
	assert.Equal(t, before, a.calls.Load(), "calls reached the removed server")

	// An empty set: calls fail at once with UNAVAILABLE (the ClientConn is
	// in TRANSIENT_FAILURE), and lb's set is empty.
	cl.update(nil)
	assert.Empty(t, cl.stats())
	_, err := cl.call(context.Background())
	assert.Equal(t, codes.Unavailable, status.Code(err))
	assert.Contains(t, err.Error(), "no usable endpoints")
	assert.Equal(t, connectivity.TransientFailure, cl.cc.GetState())

	cl.update(endpointsOf(c))
	name, err := cl.call(context.Background(), grpc.WaitForReady(true))
	require.NoError(t, err)
	assert.Equal(t, "c", name)
}

// TestEndpointsFromResolver: an endpoint's first address is its lb
// address, its weight and hash key come from its attributes, and endpoints
// lb cannot use are skipped (the others still serve).
func TestEndpointsFromResolver(t *testing.T) {
	t.Parallel()
	a, b := startServer(t, "a"), startServer(t, "b")
	eps := []resolver.Endpoint{
		a.endpoint(3),
		{Addresses: []resolver.Address{{Addr: b.addr}}},             // no attributes
		{Addresses: []resolver.Address{{Addr: "/tmp/lbgrpc.sock"}}}, // a Unix socket, as gRPC's unix resolver gives it
		{Addresses: []resolver.Address{{Addr: a.addr}}},             // a repeated address
		{},
	}
	cl := newClient(t, serviceConfig(`{}`), eps)
	cl.warm(a, b)
	got := map[string]lb.Endpoint{}
	for _, s := range cl.balancer().Stats() {
		got[s.Endpoint.Addr] = s.Endpoint
	}
	assert.Equal(t, map[string]lb.Endpoint{
		a.addr: {Addr: a.addr, Weight: 3, HashKey: "a"},
		b.addr: {Addr: b.addr, Weight: 1},
	}, got)
}

// TestMultiAddressEndpoint: an endpoint with several addresses is one lb
// backend; its calls go to its first READY address, and it stays up while
// one of them is.
func TestMultiAddressEndpoint(t *testing.T) {
	t.Parallel()
	a1, a2 := startServer(t, "a1"), startServer(t, "a2")
	ep := resolver.Endpoint{Addresses: []resolver.Address{{Addr: a1.addr}, {Addr: a2.addr}}}
	cl := newClient(t, serviceConfig(`{}`), []resolver.Endpoint{ep})
	cl.warm(a1)
	require.Len(t, cl.stats(), 1)
	assert.Contains(t, cl.stats(), a1.addr)

	a1.stop()
	require.Eventually(t, func() bool {
		name, err := cl.call(context.Background())
		return err == nil && name == "a2"
	}, 10*time.Second, time.Millisecond)
	assert.False(t, cl.stats()[a1.addr].Unhealthy, "the endpoint is up through its second address")
}

// TestConnectivity: with no server reachable the ClientConn goes to
// TRANSIENT_FAILURE and fail-fast calls fail with the connection error;
// a wait-for-ready call waits, and is served once a live server is
// resolved.
func TestConnectivity(t *testing.T) {
	t.Parallel()
	dead := deadAddr(t)
	cl := newClient(t, serviceConfig(`{"strategy": "p2c"}`), []resolver.Endpoint{{Addresses: []resolver.Address{{Addr: dead}}}})
	waitState(t, cl.cc, connectivity.TransientFailure)
	_, err := cl.call(context.Background())
	assert.Equal(t, codes.Unavailable, status.Code(err))
	assert.Contains(t, err.Error(), "no backend is ready: last connection error")
	assert.True(t, cl.stats()[dead].Unhealthy)

	var wg sync.WaitGroup
	wg.Add(1)
	var name string
	var wfrErr error
	go func() {
		defer wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		name, wfrErr = cl.call(ctx, grpc.WaitForReady(true))
	}()
	s := startServer(t, "live")
	cl.update([]resolver.Endpoint{{Addresses: []resolver.Address{{Addr: dead}}}, s.endpoint(0)})
	wg.Wait()
	require.NoError(t, wfrErr)
	assert.Equal(t, "live", name)
	waitState(t, cl.cc, connectivity.Ready)
}

// TestHealthChecking: with the service config's healthCheckConfig, gRPC's
// client-side health checks drive the SubConns' states, and the policy
// follows: a server whose health service says NOT_SERVING gets no calls
// and is marked down in lb, until it serves again.
func TestHealthChecking(t *testing.T) {
	t.Parallel()
	a, b := startServer(t, "a"), startServer(t, "b")
	cl := newClient(t, serviceConfig(`{}`, `"healthCheckConfig": {"serviceName": ""}`), endpointsOf(a, b))
	cl.warm(a, b)

	a.health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	require.Eventually(t, func() bool { return cl.stats()["a"].Unhealthy }, 10*time.Second, time.Millisecond)
	before := a.calls.Load()
	for i := 0; i < 20; i++ {
		name, err := cl.call(context.Background())
		require.NoError(t, err)
		assert.Equal(t, "b", name)
	}
	assert.Equal(t, before, a.calls.Load())

	a.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	cl.warm(a, b)
	assert.False(t, cl.stats()["a"].Unhealthy)
}

// TestConfigChange: a new service config that changes the strategy gets a
// new lb.Balancer; one that changes only the picker's settings (the hash
// header) keeps the Balancer and its counters.
func TestConfigChange(t *testing.T) {
	t.Parallel()
	a, b := startServer(t, "a"), startServer(t, "b")
	cl := newClient(t, serviceConfig(`{"strategy": "ring"}`), endpointsOf(a, b))
	cl.warm(a, b)
	first := cl.balancer()

	apply := func(lbConfig string) {
		t.Helper()
		sc := cl.r.CC().ParseServiceConfig(serviceConfig(lbConfig))
		require.NoError(t, sc.Err)
		cl.r.UpdateState(resolver.State{Endpoints: endpointsOf(a, b), ServiceConfig: sc})
	}
	apply(`{"strategy": "ring", "requestHashHeader": "x-user"}`)
	assert.Same(t, first, cl.balancer(), "the picker's settings keep the Balancer")
	picks := cl.stats()["a"].Picks + cl.stats()["b"].Picks
	assert.Positive(t, picks)

	apply(`{"strategy": "maglev"}`)
	second := cl.balancer()
	assert.NotSame(t, first, second, "a new strategy gets a new Balancer")
	_, err := first.Pick("")
	assert.ErrorIs(t, err, lb.ErrClosed, "the old Balancer is closed")
	name, err := cl.call(context.Background())
	require.NoError(t, err)
	assert.Contains(t, []string{"a", "b"}, name)
}

// TestResolverError: a resolver error before any endpoint fails calls with
// that error; after a good set it changes nothing (the last good set
// serves), and shows in the failure only when no backend is ready.
func TestResolverError(t *testing.T) {
	t.Parallel()
	cl := newClient(t, serviceConfig(`{}`), nil)
	cl.r.CC().ReportError(errors.New("no such zone"))
	require.Eventually(t, func() bool {
		_, err := cl.call(context.Background())
		return status.Code(err) == codes.Unavailable && strings.Contains(err.Error(), "no such zone")
	}, 10*time.Second, time.Millisecond)

	s := startServer(t, "s")
	cl.update(endpointsOf(s))
	cl.warm(s)
	cl.r.CC().ReportError(errors.New("zone gone for a while"))
	name, err := cl.call(context.Background())
	require.NoError(t, err)
	assert.Equal(t, "s", name)

	s.stop()
	waitState(t, cl.cc, connectivity.TransientFailure)
	require.Eventually(t, func() bool {
		_, err := cl.call(context.Background())
		return strings.Contains(err.Error(), "zone gone for a while") && strings.Contains(err.Error(), "last connection error")
	}, 10*time.Second, time.Millisecond)
}

// TestRefusedEndpointSet: a set lb refuses (here a ring that would need
// more points than lb allows) is not applied: the previous set serves, and
// with none the calls fail with lb's reason.
func TestRefusedEndpointSet(t *testing.T) {
	t.Parallel()
	a, b := startServer(t, "a"), startServer(t, "b")
	// 16 points per unit of weight: lb's limit of 8,388,608 points is
	// passed with a weight of 1,048,576 (lb.MaxWeight).
	cfg := serviceConfig(`{"strategy": "ring", "ring": {"replicas": 16}}`)
	cl := newClient(t, cfg, []resolver.Endpoint{a.endpoint(lb.MaxWeight)})
	waitState(t, cl.cc, connectivity.TransientFailure)
	_, err := cl.call(context.Background())
	assert.Equal(t, codes.Unavailable, status.Code(err))
	assert.Contains(t, err.Error(), "needs more than 8388608 points")

	cl.update(endpointsOf(a))
	cl.warm(a)
	cl.update(append(endpointsOf(a), b.endpoint(lb.MaxWeight)))
	require.Len(t, cl.stats(), 1, "the refused set was not applied")
	name, err := cl.call(context.Background())
	require.NoError(t, err)
	assert.Equal(t, "a", name)
}

// TestReconnect: a server that dies and comes back on its address is
// used again: its SubConn reconnects, and its keys return to it.
func TestReconnect(t *testing.T) {
	t.Parallel()
	a, b := startServer(t, "a"), startServer(t, "b")
	cl := newClient(t, serviceConfig(`{"strategy": "ring"}`, retryPolicy), endpointsOf(a, b))
	key := ""
	for i := 0; key == ""; i++ {
		if k := "user-" + strconv.Itoa(i); cl.keyed(k, "") == "a" {
			key = k
		}
	}
	a.stop()
	assert.Equal(t, "b", cl.keyed(key, ""), "a's key moves while a is down")
	require.Eventually(t, func() bool { return cl.stats()["a"].Unhealthy }, 10*time.Second, time.Millisecond)

	back := restartServer(t, a)
	require.Eventually(t, func() bool { return cl.keyed(key, "") == "a" }, 10*time.Second, time.Millisecond)
	assert.False(t, cl.stats()["a"].Unhealthy)
	assert.Positive(t, back.calls.Load())
}

// deadAddr returns a loopback address where nothing listens.
func deadAddr(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := lis.Addr().String()
	require.NoError(t, lis.Close())
	return addr
}

func waitState(t *testing.T, cc *grpc.ClientConn, want connectivity.State) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for s := cc.GetState(); s != want; s = cc.GetState() {
		require.True(t, cc.WaitForStateChange(ctx, s), "the ClientConn stayed %v, waiting for %v", s, want)
	}
}
