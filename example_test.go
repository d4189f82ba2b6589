package lb_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/go-lb/lb"
)

// Round robin, used alone: build over three addresses, pick, look at the
// address. Stripes: 1 keeps one strict global order.
func ExampleRoundRobin() {
	p, err := lb.RoundRobin{Stripes: 1}.New(lb.Addrs("10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"))
	if err != nil {
		panic(err)
	}
	counts := map[string]int{}
	for i := 0; i < 300; i++ {
		b, _ := p.Pick("")
		counts[b.Addr()]++
	}
	fmt.Println(counts)
	// Output: map[10.0.0.1:80:100 10.0.0.2:80:100 10.0.0.3:80:100]
}

// Smooth weighted round robin spreads a heavy backend's turns out: weights
// 5, 1, 1 give nginx's a a b a c a a.
func ExampleWeightedRoundRobin() {
	p, err := lb.WeightedRoundRobin{Stripes: 1}.New([]lb.Endpoint{
		{Addr: "a:80", Weight: 5},
		{Addr: "b:80", Weight: 1},
		{Addr: "c:80", Weight: 1},
	})
	if err != nil {
		panic(err)
	}
	// The picker starts at a random point of its period; print one period
	// from where "b" follows two a's, to show the sequence.
	seq := ""
	for i := 0; i < 14; i++ {
		b, _ := p.Pick("")
		seq += b.Addr()[:1]
	}
	for i := 0; i < 7; i++ {
		if seq[i:i+3] == "aab" && seq[i+3:i+7] == "acaa" {
			fmt.Println(seq[i : i+7])
		}
	}
	// Output: aabacaa
}

// Weighted random: a backend of weight 9 gets about 90% of the calls.
func ExampleWeightedRandom() {
	p, err := lb.WeightedRandom{}.New([]lb.Endpoint{
		{Addr: "stable:80", Weight: 9},
		{Addr: "canary:80", Weight: 1},
	})
	if err != nil {
		panic(err)
	}
	canary := 0
	for i := 0; i < 100000; i++ {
		b, _ := p.Pick("")
		if b.Addr() == "canary:80" {
			canary++
		}
	}
	fmt.Println(canary > 9000 && canary < 11000)
	// Output: true
}

// The hash ring sends a key to the same backend every time, in every
// process, and gives a preference list for replicas.
func ExampleRing() {
	ring, err := lb.Ring{}.New(lb.Addrs("10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"))
	if err != nil {
		panic(err)
	}
	b, _ := ring.Pick("user-42")
	again, _ := ring.Pick("user-42")
	fmt.Println(b == again)
	replicas := ring.AppendPreferences(nil, "user-42", 2)
	fmt.Println(len(replicas), replicas[0] == b, replicas[1] != b)
	// Output:
	// true
	// 2 true true
}

// Maglev: O(1) lookups and near-perfect balance.
func ExampleMaglev() {
	m, err := lb.Maglev{}.New(lb.Addrs("10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"))
	if err != nil {
		panic(err)
	}
	b, _ := m.Pick("cart-7")
	fmt.Println(b.Addr() != "", m.TableSize())
	// Output: true 65537
}

// A Balancer owns the live set: Pick, then Done with how the call went;
// Update follows membership changes and keeps the counters of backends
// that stay.
func ExampleBalancer() {
	bal, err := lb.NewBalancer(lb.P2C{}, lb.WithEndpoints(lb.Addrs("10.0.0.1:80", "10.0.0.2:80")))
	if err != nil {
		panic(err)
	}
	defer bal.Close()

	pick, err := bal.Pick("")
	if err != nil {
		panic(err)
	}
	// ... call pick.Addr() ...
	pick.Done(nil, 3*time.Millisecond)

	if err := bal.Update(lb.Addrs("10.0.0.2:80", "10.0.0.3:80")); err != nil {
		panic(err)
	}
	for _, s := range bal.Stats() {
		fmt.Println(s.Endpoint.Addr, s.InFlight)
	}

	_ = bal.Update(nil)
	_, err = bal.Pick("")
	fmt.Println(errors.Is(err, lb.ErrNoEndpoints))
	// Output:
	// 10.0.0.2:80 0
	// 10.0.0.3:80 0
	// true
}

// Invalid input is an error that says what is wrong, never a panic.
func ExampleEndpoint_Validate() {
	err := lb.Endpoint{Addr: "10.0.0.1:80", Weight: -1}.Validate()
	fmt.Println(err)
	fmt.Println(errors.Is(err, lb.ErrInvalidEndpoint))
	// Output:
	// lb: invalid endpoint: weight of "10.0.0.1:80" is -1; weights must be >= 1 (0 means 1) and <= 1048576
	// true
}

// Outlier detection ejects a backend after consecutive failures and
// readmits it later.
func ExampleWithOutlierDetection() {
	bal, err := lb.NewBalancer(lb.RoundRobin{},
		lb.WithEndpoints(lb.Addrs("10.0.0.1:80", "10.0.0.2:80")),
		lb.WithOutlierDetection(lb.OutlierDetection{ConsecutiveFailures: 2, BaseEjectionTime: time.Minute}))
	if err != nil {
		panic(err)
	}
	defer bal.Close()
	refused := errors.New("connection refused")
	for i := 0; i < 4; i++ {
		pick, _ := bal.Pick("")
		if pick.Addr() == "10.0.0.1:80" {
			pick.Done(refused, 0)
		} else {
			pick.Done(nil, time.Millisecond)
		}
	}
	for _, s := range bal.Stats() {
		fmt.Println(s.Endpoint.Addr, "ejected:", s.Ejected)
	}
	// Output:
	// 10.0.0.1:80 ejected: true
	// 10.0.0.2:80 ejected: false
}

// A Builder's Rand makes the random choices repeatable, for simulations and
// tests: the same seed gives the same picks in every run.
func ExampleRandom_seeded() {
	eps := lb.Addrs("10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80")
	for run := 0; run < 2; run++ {
		p, err := lb.Random{Rand: rand.NewPCG(42, 1)}.New(eps)
		if err != nil {
			panic(err)
		}
		var picks []string
		for i := 0; i < 6; i++ {
			b, _ := p.Pick("")
			picks = append(picks, b.Addr()[7:8])
		}
		fmt.Println(strings.Join(picks, " "))
	}
	// Output:
	// 1 2 2 2 3 1
	// 1 2 2 2 3 1
}
