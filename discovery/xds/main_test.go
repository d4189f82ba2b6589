package xds_test

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	edsv3 "github.com/envoyproxy/go-control-plane/envoy/service/endpoint/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/go-lb/lb"
	"github.com/go-lb/lb/discovery/xds"
	"github.com/go-lb/lb/internal/resolvertest"
)

// TestMain fails the package if any goroutine is left once the tests end:
// every test stops its management servers, and the resolvers and their
// connections must leave nothing behind. No goroutine is ignored.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// controlPlane is go-control-plane's xDS server over a snapshot cache, on
// a loopback port: the management server the tests run against.
type controlPlane struct {
	addr  string
	cache cachev3.SnapshotCache

	cancel context.CancelFunc
	srv    *grpc.Server
	done   chan struct{}

	mu        sync.Mutex
	requests  []*discoveryv3.DiscoveryRequest
	received  []time.Time // when each request came
	responses []*discoveryv3.DiscoveryResponse
}

// startControlPlane starts a management server over cache on addr
// ("127.0.0.1:0" for a free port); it is stopped at the test's end. A nil
// cache is a new snapshot cache that is not in ADS mode (in ADS mode, it
// answers only requests that name every resource it holds for the node).
func startControlPlane(t testing.TB, addr string, cache cachev3.SnapshotCache) *controlPlane {
	t.Helper()
	var ln net.Listener
	require.Eventually(t, func() bool {
		var err error
		ln, err = net.Listen("tcp", addr)
		return err == nil
	}, resolvertest.Deadline, 10*time.Millisecond, "listening on %s", addr)
	if cache == nil {
		cache = cachev3.NewSnapshotCache(false, cachev3.IDHash{}, nil)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cp := &controlPlane{
		addr:   ln.Addr().String(),
		cache:  cache,
		cancel: cancel,
		srv:    grpc.NewServer(),
		done:   make(chan struct{}),
	}
	xs := serverv3.NewServer(ctx, cp.cache, serverv3.CallbackFuncs{
		StreamRequestFunc: func(_ int64, req *discoveryv3.DiscoveryRequest) error {
			cp.mu.Lock()
			cp.requests = append(cp.requests, req)
			cp.received = append(cp.received, time.Now())
			cp.mu.Unlock()
			return nil
		},
		StreamResponseFunc: func(_ context.Context, _ int64, _ *discoveryv3.DiscoveryRequest, resp *discoveryv3.DiscoveryResponse) {
			cp.mu.Lock()
			cp.responses = append(cp.responses, resp)
			cp.mu.Unlock()
		},
	})
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(cp.srv, xs)
	edsv3.RegisterEndpointDiscoveryServiceServer(cp.srv, xs)
	go func() {
		defer close(cp.done)
		_ = cp.srv.Serve(ln)
	}()
	t.Cleanup(cp.stop)
	return cp
}

// stop ends every stream and closes the port; it may be called again.
func (cp *controlPlane) stop() {
	cp.srv.Stop()
	cp.cancel()
	<-cp.done
}

// set makes version, holding clas, the snapshot of node.
func (cp *controlPlane) set(t testing.TB, node, version string, clas ...*endpointv3.ClusterLoadAssignment) {
	t.Helper()
	res := make([]types.Resource, len(clas))
	for i, c := range clas {
		res[i] = c
	}
	snap, err := cachev3.NewSnapshot(version, map[resource.Type][]types.Resource{resource.EndpointType: res})
	require.NoError(t, err)
	require.NoError(t, cp.cache.SetSnapshot(context.Background(), node, snap))
}

// waitRequest waits for a request that match accepts and returns it.
func (cp *controlPlane) waitRequest(t testing.TB, what string, match func(*discoveryv3.DiscoveryRequest) bool) *discoveryv3.DiscoveryRequest {
	t.Helper()
	var got *discoveryv3.DiscoveryRequest
	require.Eventually(t, func() bool {
		cp.mu.Lock()
		defer cp.mu.Unlock()
		for _, r := range cp.requests {
			if match(r) {
				got = r
				return true
			}
		}
		return false
	}, resolvertest.Deadline, time.Millisecond, "waiting for %s", what)
	return got
}

// nonceOf returns the nonce of the response of version sent to the
// client, waiting for it.
func (cp *controlPlane) nonceOf(t testing.TB, version string) string {
	t.Helper()
	var nonce string
	require.Eventually(t, func() bool {
		cp.mu.Lock()
		defer cp.mu.Unlock()
		for _, r := range cp.responses {
			if r.GetVersionInfo() == version {
				nonce = r.GetNonce()
				return true
			}
		}
		return false
	}, resolvertest.Deadline, time.Millisecond, "waiting for the response of version %q", version)
	return nonce
}

func (cp *controlPlane) nacks() []*discoveryv3.DiscoveryRequest {
	out, _ := cp.nackTimes()
	return out
}

// nackTimes returns the NACKs received and when each came.
func (cp *controlPlane) nackTimes() ([]*discoveryv3.DiscoveryRequest, []time.Time) {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	var out []*discoveryv3.DiscoveryRequest
	var at []time.Time
	for i, r := range cp.requests {
		if r.GetErrorDetail() != nil {
			out = append(out, r)
			at = append(at, cp.received[i])
		}
	}
	return out, at
}

// resolver is a Resolver for node against cp, with short backoffs.
func (cp *controlPlane) resolver(node string, clusters ...string) xds.Resolver {
	return xds.Resolver{
		Target:      cp.addr,
		DialOptions: []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())},
		Node:        xds.Node{ID: node, Cluster: "test", Locality: xds.Locality{Region: "r1", Zone: "z1"}},
		Clusters:    clusters,
		MinBackoff:  10 * time.Millisecond,
		MaxBackoff:  200 * time.Millisecond,
	}
}

// watchRun is a Watch running in its own goroutine; each set it reports
// arrives on sets.
type watchRun struct {
	sets   chan []lb.Endpoint
	cancel context.CancelFunc
	done   chan error
}

// watch runs r.Watch until the test ends (or stop is called).
func watch(t testing.TB, r xds.Resolver) *watchRun {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w := &watchRun{sets: make(chan []lb.Endpoint, 16), cancel: cancel, done: make(chan error, 1)}
	go func() {
		w.done <- r.Watch(ctx, func(eps []lb.Endpoint) error {
			select {
			case w.sets <- eps:
			case <-ctx.Done():
			}
			return nil
		})
	}()
	t.Cleanup(func() { w.stop(t) })
	return w
}

// next returns the next set reported.
func (w *watchRun) next(t testing.TB) []lb.Endpoint {
	t.Helper()
	select {
	case eps := <-w.sets:
		return eps
	case err := <-w.done:
		t.Fatalf("Watch returned %v while a set was awaited", err)
	case <-time.After(resolvertest.Deadline):
		t.Fatal("no set reported in time")
	}
	return nil
}

// quiet fails if a set was reported and not yet read.
func (w *watchRun) quiet(t testing.TB) {
	t.Helper()
	select {
	case eps := <-w.sets:
		t.Fatalf("an unexpected set was reported: %v", resolvertest.Addrs(eps))
	default:
	}
}

// stop cancels the Watch and checks that it returned context.Canceled.
func (w *watchRun) stop(t testing.TB) {
	t.Helper()
	w.cancel()
	select {
	case err, ok := <-w.done:
		if ok {
			require.ErrorIs(t, err, context.Canceled)
			close(w.done)
		}
	case <-time.After(resolvertest.Deadline):
		t.Fatal("Watch did not return after its context ended")
	}
}

// Builders of EDS resources.

func cla(name string, locs ...*endpointv3.LocalityLbEndpoints) *endpointv3.ClusterLoadAssignment {
	return &endpointv3.ClusterLoadAssignment{ClusterName: name, Endpoints: locs}
}

// loc is a locality of region and zone at priority p; weight 0 leaves its
// weight unset.
func loc(region, zone string, p, weight uint32, eps ...*endpointv3.LbEndpoint) *endpointv3.LocalityLbEndpoints {
	l := &endpointv3.LocalityLbEndpoints{
		Locality:    &corev3.Locality{Region: region, Zone: zone},
		LbEndpoints: eps,
		Priority:    p,
	}
	if weight != 0 {
		l.LoadBalancingWeight = wrapperspb.UInt32(weight)
	}
	return l
}

type epOpt func(*endpointv3.LbEndpoint)

func weight(w uint32) epOpt {
	return func(e *endpointv3.LbEndpoint) { e.LoadBalancingWeight = wrapperspb.UInt32(w) }
}

func health(h corev3.HealthStatus) epOpt {
	return func(e *endpointv3.LbEndpoint) { e.HealthStatus = h }
}

func hostname(h string) epOpt {
	return func(e *endpointv3.LbEndpoint) { e.GetEndpoint().Hostname = h }
}

func hashKey(k string) epOpt {
	return func(e *endpointv3.LbEndpoint) {
		e.Metadata = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
			"envoy.lb": {Fields: map[string]*structpb.Value{"hash_key": structpb.NewStringValue(k)}},
		}}
	}
}

// ep is an endpoint at ip:port.
func ep(ip string, port uint32, opts ...epOpt) *endpointv3.LbEndpoint {
	e := &endpointv3.LbEndpoint{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
		Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
			Address: ip, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
		}}},
	}}}
	for _, o := range opts {
		o(e)
	}
	return e
}

// pipe is an endpoint on a Unix socket, which lb cannot dial.
func pipe(path string) *endpointv3.LbEndpoint {
	return &endpointv3.LbEndpoint{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
		Address: &corev3.Address{Address: &corev3.Address_Pipe{Pipe: &corev3.Pipe{Path: path}}},
	}}}
}

// manyEndpoints is a ClusterLoadAssignment of n endpoints over four zones,
// of weights 1 to 3; seed shifts the addresses.
func manyEndpoints(name string, n, seed int) *endpointv3.ClusterLoadAssignment {
	zones := make([][]*endpointv3.LbEndpoint, 4)
	for i := range n {
		j := i + seed
		ip := fmt.Sprintf("10.%d.%d.%d", j>>16&0xff, j>>8&0xff, j&0xff)
		zones[i%4] = append(zones[i%4], ep(ip, 8080, weight(uint32(1+i%3))))
	}
	c := cla(name)
	for z, eps := range zones {
		c.Endpoints = append(c.Endpoints, loc("r1", fmt.Sprintf("z%d", z), 0, 0, eps...))
	}
	return c
}
