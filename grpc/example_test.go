package lbgrpc_test

import (
	"context"
	"fmt"
	"log"
	"net"

	lbgrpc "github.com/go-lb/lb/grpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
	"google.golang.org/grpc/resolver/ringhash"
)

// nameServer answers every UnaryCall with its name.
type nameServer struct {
	testgrpc.UnimplementedTestServiceServer
	name string
}

func (s nameServer) UnaryCall(context.Context, *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	return &testgrpc.SimpleResponse{ServerId: s.name}, nil
}

// A gRPC client on lb's consistent-hash ring: calls with the same user go
// to the same server. Three servers run on loopback; a manual resolver
// stands in for DNS or xDS. Each endpoint carries a hash key (gRFC A76),
// passed to lb as Endpoint.HashKey.
func Example() {
	lbgrpc.Register() // once, at start-up

	var eps []resolver.Endpoint
	for _, name := range []string{"a", "b", "c"} {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			log.Fatal(err)
		}
		srv := grpc.NewServer()
		testgrpc.RegisterTestServiceServer(srv, nameServer{name: name})
		go srv.Serve(lis)
		defer srv.Stop()
		ep := resolver.Endpoint{Addresses: []resolver.Address{{Addr: lis.Addr().String()}}}
		eps = append(eps, ringhash.SetHashKey(ep, name))
	}
	r := manual.NewBuilderWithScheme("example")
	r.InitialState(resolver.State{Endpoints: eps})

	cc, err := grpc.NewClient("example:///users",
		grpc.WithResolvers(r),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(`{
			"loadBalancingConfig": [{"go_lb": {
				"strategy": "ring",
				"requestHashHeader": "x-user",
				"outlierDetection": {"consecutiveFailures": 5, "baseEjectionTime": "30s"}
			}}],
			"methodConfig": [{
				"name": [{"service": "grpc.testing.TestService"}],
				"retryPolicy": {"maxAttempts": 3, "initialBackoff": "0.1s", "maxBackoff": "1s",
					"backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]}
			}]}`))
	if err != nil {
		log.Fatal(err)
	}
	defer cc.Close()
	client := testgrpc.NewTestServiceClient(cc)

	// The key from the call's metadata (the config's requestHashHeader)
	// or from the context (WithHashKey): each user's calls all go to one
	// server.
	for _, user := range []string{"alice", "bob", "carol"} {
		servers := map[string]bool{}
		for i := 0; i < 3; i++ {
			ctx := metadata.AppendToOutgoingContext(context.Background(), "x-user", user)
			if i == 2 {
				ctx = lbgrpc.WithHashKey(context.Background(), user)
			}
			resp, err := client.UnaryCall(ctx, &testgrpc.SimpleRequest{})
			if err != nil {
				log.Fatal(err)
			}
			servers[resp.GetServerId()] = true
		}
		fmt.Printf("%s: 3 calls, %d server\n", user, len(servers))
	}
	// Output:
	// alice: 3 calls, 1 server
	// bob: 3 calls, 1 server
	// carol: 3 calls, 1 server
}
