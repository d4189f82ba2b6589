package etcd_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/go-lb/lb"
	"github.com/go-lb/lb/discovery/etcd"
)

// A service registers itself under a prefix; a client follows the prefix
// into a Balancer. (exampleEtcd is the address of the etcd these examples
// run against: "127.0.0.1:2379" in a real program.)
func Example() {
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{exampleEtcd}, DialTimeout: 5 * time.Second})
	if err != nil {
		panic(err)
	}
	defer cli.Close()
	ctx := context.Background()

	// In each service instance: register, deregister on the way out. A
	// crashed instance disappears when its TTL runs out.
	reg, err := etcd.Register(ctx, cli, "/example/api/10.0.0.1:8080",
		lb.Endpoint{Addr: "10.0.0.1:8080", Weight: 2}, etcd.RegisterOptions{TTL: 10 * time.Second})
	if err != nil {
		panic(err)
	}

	// In the client: follow the prefix.
	bal, err := lb.NewBalancer(lb.WeightedRoundRobin{})
	if err != nil {
		panic(err)
	}
	defer bal.Close()
	f := lb.StartFollower(ctx, etcd.Resolver{
		Client: cli,
		Prefix: "/example/api/",
		Logger: slog.New(slog.NewTextHandler(os.Stderr, nil)),
	}, bal)
	defer f.Stop()
	<-f.Ready()
	for _, b := range bal.Backends() {
		fmt.Println(b.Addr(), b.Weight())
	}

	// The instance stops: the client's balancer follows.
	if err := reg.Close(); err != nil {
		panic(err)
	}
	for len(bal.Backends()) != 0 {
		time.Sleep(time.Millisecond)
	}
	fmt.Println("backends left:", len(bal.Backends()))
	// Output:
	// 10.0.0.1:8080 2
	// backends left: 0
}

// Values under the prefix are JSON, or a bare host:port.
func ExampleParseEndpoint() {
	for _, v := range []string{
		`{"addr":"10.0.0.1:8080","weight":2,"labels":{"zone":"eu-1"}}`,
		"10.0.0.2:8080",
		"not an endpoint",
	} {
		ep, err := etcd.ParseEndpoint([]byte(v))
		fmt.Printf("%+v %v\n", ep, err)
	}
	// Output:
	// {Addr:10.0.0.1:8080 Weight:2 HashKey: Labels:map[zone:eu-1]} <nil>
	// {Addr:10.0.0.2:8080 Weight:0 HashKey: Labels:map[]} <nil>
	// {Addr: Weight:0 HashKey: Labels:map[]} etcd: malformed endpoint value: lb: invalid endpoint: address "not an endpoint" contains whitespace or a control character
}
