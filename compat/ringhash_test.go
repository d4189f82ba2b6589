package compat

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/go-lb/lb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	_ "google.golang.org/grpc/balancer/ringhash" // registers ring_hash_experimental
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/experimental/balancer/weight"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
	grpcringhash "google.golang.org/grpc/resolver/ringhash"
)

// hashHeader carries the request hash key: grpc-go's ring_hash hashes its
// value with XXH64 (gRFC A76's requestHashHeader).
const hashHeader = "x-lb-key"

// grpcFleet is n gRPC servers on loopback ports, each serving the health
// service; a call's peer tells which server took it.
type grpcFleet struct {
	addrs   []string
	servers []*grpc.Server
}

func startFleet(t *testing.T, n int) *grpcFleet {
	t.Helper()
	f := &grpcFleet{}
	for i := 0; i < n; i++ {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		s := grpc.NewServer()
		healthpb.RegisterHealthServer(s, health.NewServer())
		go func() { _ = s.Serve(lis) }()
		f.addrs = append(f.addrs, lis.Addr().String())
		f.servers = append(f.servers, s)
	}
	t.Cleanup(func() {
		for _, s := range f.servers {
			s.Stop()
		}
	})
	return f
}

// ringHashCase is one ring: servers 0 to n-1 of the fleet, their weights
// (nil: 1), their A76 hash keys (nil: the address), and the ring sizes.
type ringHashCase struct {
	name     string
	n        int
	weight   func(i int) int
	hashKey  func(i int) string
	min, max int
}

// TestRingHashAgreement drives grpc-go's ring_hash policy (v1.85.0) over
// loopback servers: each key is a call with the key in the hash header,
// and the server that answers is where gRPC placed the key. lb's
// CompatRingHash must name the same server for every key.
func TestRingHashAgreement(t *testing.T) {
	t.Parallel()
	fleet := startFleet(t, 100)
	ks := keys(1000, 3)
	for _, tc := range []ringHashCase{
		{name: "N=3 weights 1,2,3", n: 3, weight: func(i int) int { return i + 1 }},
		{name: "N=10", n: 10},
		{name: "N=40 weights 1+i%5", n: 40, weight: func(i int) int { return 1 + i%5 }},
		{name: "N=100", n: 100},
		{name: "N=20 hash keys, weights 1+i%3, ring 100-500", n: 20, weight: func(i int) int { return 1 + i%3 },
			hashKey: func(i int) string { return fmt.Sprintf("node-%d", i) }, min: 100, max: 500},
		{name: "N=7 weights 1+i*i, ring 4096", n: 7, weight: func(i int) int { return 1 + i*i }, min: 4096, max: 4096},
		{name: "N=2 weights 5000,1 (the light one gets no point)", n: 2, weight: func(i int) int { return 1 + 4999*(1-i) }},
	} {
		eps, lbEps := tc.endpoints(fleet)
		p, err := lb.Ring{Compat: lb.CompatRingHash, MinRingSize: tc.min, MaxRingSize: tc.max}.New(lbEps)
		require.NoError(t, err, tc.name)
		got := grpcPlacements(t, tc, eps, ks)
		agree := 0
		for i, k := range ks {
			b, err := p.Pick(k)
			require.NoError(t, err)
			if b.Addr() == got[i] {
				agree++
			}
		}
		t.Logf("grpc ring_hash %s: %d keys, %.2f%% agree", tc.name, len(ks), 100*float64(agree)/float64(len(ks)))
		assert.Equal(t, len(ks), agree, tc.name)
	}
}

func (tc ringHashCase) endpoints(f *grpcFleet) ([]resolver.Endpoint, []lb.Endpoint) {
	var eps []resolver.Endpoint
	var lbEps []lb.Endpoint
	for i := 0; i < tc.n; i++ {
		ep := resolver.Endpoint{Addresses: []resolver.Address{{Addr: f.addrs[i]}}}
		lbEp := lb.Endpoint{Addr: f.addrs[i]}
		if tc.weight != nil {
			ep = weight.Set(ep, weight.EndpointInfo{Weight: uint32(tc.weight(i))})
			lbEp.Weight = tc.weight(i)
		}
		if tc.hashKey != nil {
			ep = grpcringhash.SetHashKey(ep, tc.hashKey(i))
			lbEp.HashKey = tc.hashKey(i)
		}
		eps, lbEps = append(eps, ep), append(lbEps, lbEp)
	}
	return eps, lbEps
}

// grpcPlacements returns the server gRPC's ring_hash sends each key to.
func grpcPlacements(t *testing.T, tc ringHashCase, eps []resolver.Endpoint, ks []string) []string {
	t.Helper()
	r := manual.NewBuilderWithScheme("lbcompat")
	r.InitialState(resolver.State{Endpoints: eps})
	cfg := fmt.Sprintf(`{"loadBalancingConfig":[{"ring_hash_experimental":{%s"requestHashHeader":%q}}]}`, sizes(tc.min, tc.max), hashHeader)
	cc, err := grpc.NewClient(r.Scheme()+":///fleet", grpc.WithResolvers(r),
		grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithDefaultServiceConfig(cfg))
	require.NoError(t, err)
	defer cc.Close()
	client := healthpb.NewHealthClient(cc)
	out := make([]string, len(ks))
	for i, k := range ks {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		ctx = metadata.AppendToOutgoingContext(ctx, hashHeader, k)
		var p peer.Peer
		_, err := client.Check(ctx, &healthpb.HealthCheckRequest{}, grpc.Peer(&p), grpc.WaitForReady(true))
		cancel()
		require.NoError(t, err, "%s key %q", tc.name, k)
		out[i] = p.Addr.String()
	}
	return out
}

func sizes(lo, hi int) string {
	s := ""
	if lo != 0 {
		s += fmt.Sprintf(`"minRingSize":%d,`, lo)
	}
	if hi != 0 {
		s += fmt.Sprintf(`"maxRingSize":%d,`, hi)
	}
	return s
}
