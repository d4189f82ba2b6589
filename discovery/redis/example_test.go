package redis_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/go-lb/lb"
	lbredis "github.com/go-lb/lb/discovery/redis"
)

// A service instance registers itself; a client follows the service into
// a Balancer. (shared.addr is the address of the redis-server these
// examples run against: "localhost:6379" in a real program.)
func Example() {
	cli := goredis.NewClient(&goredis.Options{Addr: shared.addr})
	defer cli.Close()
	ctx := context.Background()

	// In each service instance: register, deregister on the way out. A
	// crashed instance disappears when its TTL runs out.
	reg, err := lbredis.Register(ctx, cli, "example-api",
		lb.Endpoint{Addr: "10.0.0.1:8080", Weight: 2}, lbredis.RegisterOptions{TTL: 10 * time.Second})
	if err != nil {
		panic(err)
	}

	// In the client: follow the service.
	bal, err := lb.NewBalancer(lb.WeightedRoundRobin{})
	if err != nil {
		panic(err)
	}
	defer bal.Close()
	f := lb.StartFollower(ctx, lbredis.Resolver{
		Client:  cli,
		Service: "example-api",
		Logger:  slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
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
