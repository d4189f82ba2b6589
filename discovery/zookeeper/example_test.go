package zookeeper_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/go-lb/lb"
	"github.com/go-lb/lb/discovery/zookeeper"
)

// A service registers itself under a path; a client follows the path into
// a Balancer. (exampleZK is the address of the ZooKeeper these examples
// run against: "127.0.0.1:2181" in a real program.)
func Example() {
	ctx := context.Background()

	// In each service instance: register, deregister on the way out. A
	// crashed instance disappears when its session expires.
	conn, _, err := zk.Connect([]string{exampleZK}, 10*time.Second, zk.WithLogInfo(false))
	if err != nil {
		panic(err)
	}
	defer conn.Close()
	reg, err := zookeeper.Register(ctx, conn, "/example/api", lb.Endpoint{Addr: "10.0.0.1:8080", Weight: 2}, zookeeper.RegisterOptions{})
	if err != nil {
		panic(err)
	}
	defer reg.Close()
	fmt.Println("registered", reg.Path())

	// In the client: follow the path, through a connection of the
	// resolver's own.
	bal, err := lb.NewBalancer(lb.WeightedRoundRobin{})
	if err != nil {
		panic(err)
	}
	defer bal.Close()
	f := lb.StartFollower(ctx, zookeeper.Resolver{
		Servers: []string{exampleZK},
		Path:    "/example/api",
		Logger:  slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}, bal)
	defer f.Stop()
	<-f.Ready()
	for _, b := range bal.Backends() {
		fmt.Println(b.Addr(), b.Weight())
	}
	// Output:
	// registered /example/api/10.0.0.1:8080
	// 10.0.0.1:8080 2
}

// A child's data is JSON or a bare host:port; a child without data is read
// by its name.
func ExampleParseChild() {
	for _, c := range []struct{ name, data string }{
		{"a", `{"addr":"10.0.0.1:8080","weight":2,"labels":{"zone":"eu-1"}}`},
		{"b", "10.0.0.2:8080"},
		{"10.0.0.3:8080", ""},
		{"member-0000000001", ""},
	} {
		ep, err := zookeeper.ParseChild(c.name, []byte(c.data))
		fmt.Printf("%+v %v\n", ep, err)
	}
	// Output:
	// {Addr:10.0.0.1:8080 Weight:2 HashKey: Labels:map[zone:eu-1]} <nil>
	// {Addr:10.0.0.2:8080 Weight:0 HashKey: Labels:map[]} <nil>
	// {Addr:10.0.0.3:8080 Weight:0 HashKey: Labels:map[]} <nil>
	// {Addr: Weight:0 HashKey: Labels:map[]} znode "member-0000000001" has no data, and its name is not an endpoint: lb: invalid endpoint: address "member-0000000001" is not host:port: address member-0000000001: missing port in address
}
