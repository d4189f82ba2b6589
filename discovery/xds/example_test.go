package xds_test

import (
	"context"
	"fmt"
	"net"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/go-lb/lb"
	"github.com/go-lb/lb/discovery/xds"
)

// A client follows the endpoints of the "api" cluster that a management
// server sends. The example runs its own management server on loopback
// (go-control-plane's snapshot cache), as a test would; a program would
// name its control plane's address instead (Istio's istiod, Envoy
// Gateway, a go-control-plane server of its own).
func Example() {
	// The management server, and the endpoints it holds for node "web-1".
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	cache := cachev3.NewSnapshotCache(false, cachev3.IDHash{}, nil)
	srv := grpc.NewServer()
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(srv, serverv3.NewServer(context.Background(), cache, nil))
	go func() { _ = srv.Serve(ln) }()
	defer srv.Stop()
	publish := func(version string, zones map[string][]string) {
		assignment := &endpointv3.ClusterLoadAssignment{ClusterName: "api"}
		for zone, ips := range zones {
			l := &endpointv3.LocalityLbEndpoints{Locality: &corev3.Locality{Region: "eu", Zone: zone}}
			if zone != "eu-1a" {
				l.Priority = 1 // a fallback
			}
			for _, ip := range ips {
				l.LbEndpoints = append(l.LbEndpoints, &endpointv3.LbEndpoint{
					HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
						Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
							Address: ip, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 8080},
						}}},
					}},
					LoadBalancingWeight: wrapperspb.UInt32(2),
				})
			}
			assignment.Endpoints = append(assignment.Endpoints, l)
		}
		snap, err := cachev3.NewSnapshot(version, map[resource.Type][]types.Resource{resource.EndpointType: {assignment}})
		if err != nil {
			panic(err)
		}
		if err := cache.SetSnapshot(context.Background(), "web-1", snap); err != nil {
			panic(err)
		}
	}
	publish("1", map[string][]string{"eu-1a": {"10.0.0.1", "10.0.0.2"}, "eu-1b": {"10.0.1.1"}})

	// The client.
	bal, err := lb.NewBalancer(lb.WeightedRoundRobin{})
	if err != nil {
		panic(err)
	}
	defer bal.Close()
	f := lb.StartFollower(context.Background(), xds.Resolver{
		Target:      ln.Addr().String(), // "istiod.istio-system.svc:15010", ...
		DialOptions: []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())},
		Node:        xds.Node{ID: "web-1", Cluster: "web", Locality: xds.Locality{Region: "eu", Zone: "eu-1a"}},
		Clusters:    []string{"api"},
	}, bal)
	defer f.Stop()
	select {
	case <-f.Ready():
	case <-time.After(10 * time.Second):
		panic("no endpoints in 10s")
	}
	show := func() {
		for _, b := range bal.Backends() {
			zone, _ := b.Label(lb.LabelZone)
			prio, _ := b.Label(lb.LabelPriority)
			fmt.Printf("%s weight %d zone %s priority %s\n", b.Addr(), b.Weight(), zone, prio)
		}
	}
	show()

	// The control plane moves the service: the balancer follows.
	publish("2", map[string][]string{"eu-1a": {"10.0.0.3"}})
	for deadline := time.Now().Add(10 * time.Second); len(bal.Backends()) != 1 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond) // poll the balancer, as a test would
	}
	show()
	// Output:
	// 10.0.0.1:8080 weight 2 zone eu-1a priority 0
	// 10.0.0.2:8080 weight 2 zone eu-1a priority 0
	// 10.0.1.1:8080 weight 2 zone eu-1b priority 1
	// 10.0.0.3:8080 weight 2 zone eu-1a priority 0
}

// Convert maps a ClusterLoadAssignment that a program got by other means.
func ExampleConvert() {
	eps, skipped, err := xds.Convert(&endpointv3.ClusterLoadAssignment{
		ClusterName: "api",
		Endpoints: []*endpointv3.LocalityLbEndpoints{{
			Locality:            &corev3.Locality{Region: "us", Zone: "us-1a"},
			LoadBalancingWeight: wrapperspb.UInt32(10),
			LbEndpoints: []*endpointv3.LbEndpoint{
				{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
					Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
						Address: "2001:db8::1", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 443},
					}}},
				}}, HealthStatus: corev3.HealthStatus_DEGRADED},
				{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
					Address: &corev3.Address{Address: &corev3.Address_Pipe{Pipe: &corev3.Pipe{Path: "/run/api.sock"}}},
				}}},
			},
		}},
	})
	fmt.Println(eps, skipped, err)
	// Output:
	// [{[2001:db8::1]:443 1  map[cluster:api health:degraded locality_weight:10 priority:0 region:us zone:us-1a]}] 1 <nil>
}
