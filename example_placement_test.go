package lb_test

import (
	"fmt"
	"strconv"
	"time"

	"github.com/go-lb/lb"
)

// Deterministic subsetting: each client uses 3 of the 10 backends. With
// ordinals (a StatefulSet pod's index, in the label "ordinal"), every
// backend gets the same number of clients, and a backend replaced by a
// new instance of its ordinal moves only its own clients.
func ExampleSubset() {
	var eps []lb.Endpoint
	for i := 0; i < 10; i++ {
		eps = append(eps, lb.Endpoint{Addr: fmt.Sprintf("10.0.0.%d:8080", i), Labels: map[string]string{"ordinal": strconv.Itoa(i)}})
	}
	bal, err := lb.NewBalancer(lb.RoundRobin{}, lb.WithEndpoints(eps),
		lb.WithSubset(lb.Subset{Size: 3, ClientIndex: 4, OrdinalLabel: "ordinal"}))
	if err != nil {
		panic(err)
	}
	defer bal.Close()
	for _, be := range bal.Backends() {
		fmt.Println(be.Addr())
	}

	// Over 10 clients, each backend has 3.
	clients := map[string]int{}
	for c := 0; c < 10; c++ {
		sub, err := lb.SubsetOf(eps, lb.Subset{Size: 3, ClientIndex: c, OrdinalLabel: "ordinal"})
		if err != nil {
			panic(err)
		}
		for _, e := range sub {
			clients[e.Addr]++
		}
	}
	fmt.Println(clients)
	// Output:
	// 10.0.0.2:8080
	// 10.0.0.4:8080
	// 10.0.0.6:8080
	// map[10.0.0.0:8080:3 10.0.0.1:8080:3 10.0.0.2:8080:3 10.0.0.3:8080:3 10.0.0.4:8080:3 10.0.0.5:8080:3 10.0.0.6:8080:3 10.0.0.7:8080:3 10.0.0.8:8080:3 10.0.0.9:8080:3]
}

// Locality: a client in zone us-east1-b prefers its zone while 1/1.4 of
// it is healthy, and spills over to the rest of its region in proportion
// to what it misses. Localities shows the tiers and their shares.
func ExampleLocality() {
	var eps []lb.Endpoint
	for _, z := range []string{"us-east1-b", "us-east1-c"} {
		for i := 0; i < 10; i++ {
			eps = append(eps, lb.Endpoint{Addr: fmt.Sprintf("%s-%d:80", z, i),
				Labels: map[string]string{lb.LabelRegion: "us-east1", lb.LabelZone: z}})
		}
	}
	bal, err := lb.NewBalancer(lb.RoundRobin{}, lb.WithEndpoints(eps),
		lb.WithLocality(lb.Locality{Region: "us-east1", Zone: "us-east1-b"}))
	if err != nil {
		panic(err)
	}
	defer bal.Close()
	show := func() {
		for _, t := range bal.Localities() {
			fmt.Printf("priority %d %-12s %v: %d/%d available, share %.2f\n", t.Priority, t.Proximity, t.Zones, t.Available, t.Backends, t.Share)
		}
	}
	show()
	// Half of the client's zone fails its health checks: 1.4 × 0.5 = 70%
	// of the calls stay in the zone.
	for i := 0; i < 5; i++ {
		_ = bal.SetHealthy(fmt.Sprintf("us-east1-b-%d:80", i), false)
	}
	deadline := time.Now().Add(10 * time.Second) // the picker is rebuilt in the background
	for bal.Localities()[0].Available != 5 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	show()
	// Output:
	// priority 0 same-zone    [us-east1-b]: 10/10 available, share 1.00
	// priority 0 same-region  [us-east1-c]: 10/10 available, share 0.00
	// priority 0 same-zone    [us-east1-b]: 5/10 available, share 0.70
	// priority 0 same-region  [us-east1-c]: 10/10 available, share 0.30
}
