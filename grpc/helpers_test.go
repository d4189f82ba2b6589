package lbgrpc_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-lb/lb"
	lbgrpc "github.com/go-lb/lb/grpc"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/experimental/balancer/weight"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
	"google.golang.org/grpc/resolver/ringhash"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"
)

// testPolicy is the name the tests' builder is registered under (in
// TestMain): NewBuilder with an OnBalancer hook that files each Balancer
// by its ClientConn's target.
const testPolicy = "go_lb_test"

var balancers sync.Map // target -> *lb.Balancer

func onBalancer(target string, b *lb.Balancer) { balancers.Store(target, b) }

// testServer is a real gRPC server on a loopback port, running the
// TestService of grpc-go's interop tests and the health service. Its
// UnaryCall answers with the server's name, or fails as told.
type testServer struct {
	testgrpc.UnimplementedTestServiceServer
	name   string
	addr   string
	srv    *grpc.Server
	health *health.Server

	calls   atomic.Int64
	accepts atomic.Int64 // connections accepted
	failing atomic.Bool  // answer UNAVAILABLE
	delay   atomic.Int64 // nanoseconds to take per call
	hanging chan struct{}
}

// hangHeader makes UnaryCall wait for the caller to give up.
const hangHeader = "x-test-hang"

func startServer(t testing.TB, name string) *testServer {
	t.Helper()
	return serve(t, name, "127.0.0.1:0")
}

// restartServer starts a new server with old's name on old's address,
// once old is stopped.
func restartServer(t testing.TB, old *testServer) *testServer {
	t.Helper()
	return serve(t, old.name, old.addr)
}

func serve(t testing.TB, name, addr string) *testServer {
	t.Helper()
	lis, err := net.Listen("tcp", addr)
	require.NoError(t, err)
	s := &testServer{name: name, addr: lis.Addr().String(), srv: grpc.NewServer(),
		health: health.NewServer(), hanging: make(chan struct{}, 64)}
	testgrpc.RegisterTestServiceServer(s.srv, s)
	healthpb.RegisterHealthServer(s.srv, s.health)
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = s.srv.Serve(countingListener{lis, &s.accepts})
	}()
	t.Cleanup(func() {
		s.stop()
		<-served
	})
	return s
}

// countingListener counts the connections it accepts.
type countingListener struct {
	net.Listener
	n *atomic.Int64
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

// stop kills the server: listener and connections closed, calls in
// flight cut off.
func (s *testServer) stop() { s.srv.Stop() }

func (s *testServer) UnaryCall(ctx context.Context, req *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	s.calls.Add(1)
	if md, _ := metadata.FromIncomingContext(ctx); len(md.Get(hangHeader)) > 0 {
		s.hanging <- struct{}{}
		<-ctx.Done()
		return nil, status.FromContextError(ctx.Err()).Err()
	}
	if st := req.GetResponseStatus(); st != nil {
		return nil, status.Error(codes.Code(st.GetCode()), st.GetMessage())
	}
	if s.failing.Load() {
		return nil, status.Errorf(codes.Unavailable, "%s is failing", s.name)
	}
	if d := time.Duration(s.delay.Load()); d > 0 {
		tm := time.NewTimer(d) // the server's work takes d
		defer tm.Stop()
		select {
		case <-tm.C:
		case <-ctx.Done():
			return nil, status.FromContextError(ctx.Err()).Err()
		}
	}
	return &testgrpc.SimpleResponse{ServerId: s.name}, nil
}

// endpoint is the server's resolver endpoint, with its name as hash key
// (so ring and Maglev placements do not depend on the port) and weight w.
func (s *testServer) endpoint(w uint32) resolver.Endpoint {
	e := resolver.Endpoint{Addresses: []resolver.Address{{Addr: s.addr}}}
	if w != 0 {
		e = weight.Set(e, weight.EndpointInfo{Weight: w})
	}
	return ringhash.SetHashKey(e, s.name)
}

func endpointsOf(servers ...*testServer) []resolver.Endpoint {
	eps := make([]resolver.Endpoint, len(servers))
	for i, s := range servers {
		eps[i] = s.endpoint(0)
	}
	return eps
}

// retryPolicy makes UnaryCall retryable on UNAVAILABLE, as an idempotent
// method may be.
const retryPolicy = `"methodConfig": [{
	"name": [{"service": "grpc.testing.TestService", "method": "UnaryCall"}],
	"retryPolicy": {"maxAttempts": 5, "initialBackoff": "0.01s", "maxBackoff": "0.05s",
		"backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]}}]`

// serviceConfig is a service config selecting the test policy with the
// given JSON config, followed by more top-level fields (retryPolicy, ...).
func serviceConfig(lbConfig string, more ...string) string {
	parts := append([]string{fmt.Sprintf(`"loadBalancingConfig": [{%q: %s}]`, testPolicy, lbConfig)}, more...)
	return "{" + strings.Join(parts, ", ") + "}"
}

// testClient is a ClientConn through the test policy, fed by a manual
// resolver.
type testClient struct {
	t        testing.TB
	cc       *grpc.ClientConn
	r        *manual.Resolver
	tc       testgrpc.TestServiceClient
	target   string
	attempts *attemptCounter
}

var schemes atomic.Int64

func newClient(t testing.TB, sc string, eps []resolver.Endpoint) *testClient {
	t.Helper()
	scheme := fmt.Sprintf("lbtest%d", schemes.Add(1))
	r := manual.NewBuilderWithScheme(scheme)
	r.InitialState(resolver.State{Endpoints: eps})
	ac := new(attemptCounter)
	target := scheme + ":///svc"
	cc, err := grpc.NewClient(target,
		grpc.WithResolvers(r),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(sc),
		grpc.WithStatsHandler(ac),
		// Reconnect within milliseconds, not gRPC's default second.
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 10 * time.Millisecond, Multiplier: 1.6, MaxDelay: 100 * time.Millisecond},
			MinConnectTimeout: time.Second,
		}))
	require.NoError(t, err)
	t.Cleanup(func() { _ = cc.Close() })
	cc.Connect()
	return &testClient{t: t, cc: cc, r: r, tc: testgrpc.NewTestServiceClient(cc), target: target, attempts: ac}
}

// balancer returns the lb.Balancer the policy made for the client.
func (c *testClient) balancer() *lb.Balancer {
	c.t.Helper()
	var b *lb.Balancer
	require.Eventually(c.t, func() bool {
		v, ok := balancers.Load(c.target)
		if ok {
			b = v.(*lb.Balancer)
		}
		return ok
	}, 5*time.Second, time.Millisecond)
	return b
}

// stats returns the balancer's Stats by hash name.
func (c *testClient) stats() map[string]lb.Stats {
	out := map[string]lb.Stats{}
	for _, s := range c.balancer().Stats() {
		name := s.Endpoint.HashKey
		if name == "" {
			name = s.Endpoint.Addr
		}
		out[name] = s
	}
	return out
}

func (c *testClient) update(eps []resolver.Endpoint) {
	c.r.UpdateState(resolver.State{Endpoints: eps})
}

// call makes one UnaryCall and returns the name of the server that answered.
func (c *testClient) call(ctx context.Context, opts ...grpc.CallOption) (string, error) {
	resp, err := c.tc.UnaryCall(ctx, &testgrpc.SimpleRequest{}, opts...)
	return resp.GetServerId(), err
}

// keyed makes a call with key as its hash key, through WithHashKey or, when
// header is set, through that metadata.
func (c *testClient) keyed(key, header string) string {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if header != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, header, key)
	} else {
		ctx = lbgrpc.WithHashKey(ctx, key)
	}
	name, err := c.call(ctx)
	require.NoError(c.t, err)
	return name
}

// warm calls until every server has answered once: then every SubConn is
// READY and the distribution of the next calls is the strategy's.
func (c *testClient) warm(servers ...*testServer) {
	c.t.Helper()
	seen := map[string]bool{}
	require.Eventually(c.t, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if name, err := c.call(ctx); err == nil {
			seen[name] = true
		}
		return len(seen) == len(servers)
	}, 10*time.Second, time.Millisecond)
}

// attemptCounter is a client stats.Handler that counts call attempts
// (each retry is one more).
type attemptCounter struct {
	attempts, transparent atomic.Int64
}

func (a *attemptCounter) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context {
	return ctx
}

func (a *attemptCounter) HandleRPC(_ context.Context, s stats.RPCStats) {
	if b, ok := s.(*stats.Begin); ok {
		a.attempts.Add(1)
		if b.IsTransparentRetryAttempt {
			a.transparent.Add(1)
		}
	}
}

func (a *attemptCounter) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context {
	return ctx
}

func (a *attemptCounter) HandleConn(context.Context, stats.ConnStats) {}
