package lb_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/go-lb/lb"
)

// A Follower keeps a Balancer's endpoint set in step with a Resolver; Ready
// tells when the first set is in, so a program can wait for its backends
// before it serves. Static is the simplest Resolver: a fixed list.
func ExampleStartFollower() {
	bal, err := lb.NewBalancer(lb.RoundRobin{})
	if err != nil {
		panic(err)
	}
	defer bal.Close()

	f := lb.StartFollower(context.Background(), lb.Static(lb.Addrs("10.0.0.1:80", "10.0.0.2:80")), bal)
	defer f.Stop()
	select {
	case <-f.Ready():
	case <-f.Done():
		panic(f.Err())
	case <-time.After(5 * time.Second):
		panic("no endpoints after 5s")
	}
	for _, b := range bal.Backends() {
		fmt.Println(b.Addr())
	}
	// Output:
	// 10.0.0.1:80
	// 10.0.0.2:80
}

// A DNS resolver looks a name up every Refresh and reports the set when it
// changes; lookup failures keep the last set. Here "localhost" resolves
// through /etc/hosts; a real service would use a name such as
// "api.internal.:8080" (the trailing dot skips search domains).
func ExampleDNS() {
	bal, err := lb.NewBalancer(lb.P2C{})
	if err != nil {
		panic(err)
	}
	defer bal.Close()

	r := lb.DNS{
		Addr:    "localhost:8080",
		Network: "ip4",
		Refresh: 10 * time.Second,
		Logger:  slog.New(slog.NewTextHandler(os.Stderr, nil)),
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f := lb.StartFollower(ctx, r, bal)
	defer f.Stop()
	select {
	case <-f.Ready():
		fmt.Println(bal.Backends())
	case <-time.After(10 * time.Second):
		fmt.Println("no endpoints yet")
	}
	// Output: [127.0.0.1:8080]
}

// SRV records give ports and weights: only the lowest priority is used,
// and the weights become endpoint weights, which the weighted strategies
// honour. The program follows the set until its context ends.
func ExampleDNS_srv() {
	bal, err := lb.NewBalancer(lb.WeightedRoundRobin{})
	if err != nil {
		panic(err)
	}
	defer bal.Close()

	ctx, stop := context.WithTimeout(context.Background(), time.Minute)
	defer stop()
	err = lb.Follow(ctx, lb.DNS{SRV: "_api._tcp.example.internal."}, bal)
	fmt.Println(err) // context deadline exceeded, after a minute
}
