package lb_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/go-lb/lb"
)

// exampleBackends starts n loopback servers that answer with their name
// ("a", "b", ...) and returns their endpoints and a function that stops
// them.
func exampleBackends(n int) ([]lb.Endpoint, func()) {
	var eps []lb.Endpoint
	var srvs []*httptest.Server
	for i := 0; i < n; i++ {
		name := string(rune('a' + i))
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/healthz" && name == "b" {
				http.Error(w, "not ready", http.StatusServiceUnavailable)
				return
			}
			io.WriteString(w, name)
		}))
		srvs = append(srvs, srv)
		eps = append(eps, lb.Endpoint{Addr: srv.Listener.Addr().String()})
	}
	return eps, func() {
		for _, s := range srvs {
			s.Close()
		}
	}
}

// exampleFetch GETs url and returns the body, or the error's text.
func exampleFetch(c *http.Client, url string) string {
	resp, err := c.Get(url)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// The Transport is the http.Client integration: each request goes to a
// backend the Balancer picks. The URL names the service; the Host header
// stays "users.internal".
func ExampleNewTransport() {
	eps, stop := exampleBackends(3)
	defer stop()

	bal, err := lb.NewBalancer(lb.RoundRobin{Stripes: 1}, lb.WithEndpoints(eps))
	if err != nil {
		panic(err)
	}
	defer bal.Close()
	tr, err := lb.NewTransport(bal)
	if err != nil {
		panic(err)
	}
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()

	counts := map[string]int{}
	for i := 0; i < 30; i++ {
		counts[exampleFetch(client, "http://users.internal/v1/users/42")]++
	}
	fmt.Println(counts)
	// Output: map[a:10 b:10 c:10]
}

// ServedBy tells which backend answered a request: the response's
// Request is the caller's, whose URL names the service. Here a request to
// a dead backend is retried on the live one, which ServedBy reports.
func ExampleServedBy() {
	eps, stop := exampleBackends(1)
	defer stop()
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := ln.Addr().String()
	ln.Close()

	bal, err := lb.NewBalancer(lb.RoundRobin{Stripes: 1}, lb.WithEndpoints([]lb.Endpoint{{Addr: dead}, eps[0]}))
	if err != nil {
		panic(err)
	}
	defer bal.Close()
	tr, err := lb.NewTransport(bal)
	if err != nil {
		panic(err)
	}
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()

	for i := 0; i < 2; i++ {
		ctx, servedBy := lb.ServedBy(context.Background())
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://users.internal/v1/users/42", nil)
		resp, err := client.Do(req)
		if err != nil {
			panic(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Printf("body %s, served by the live backend: %v, URL host %s\n",
			body, servedBy() == eps[0].Addr, resp.Request.URL.Host)
	}
	// Output:
	// body a, served by the live backend: true, URL host users.internal
	// body a, served by the live backend: true, URL host users.internal
}

// A backend that refuses connections costs nothing but a retry: the
// request never reached it, so it is sent to another backend, whatever its
// method. Outlier detection then ejects the dead backend.
func ExampleTransport_retries() {
	eps, stop := exampleBackends(2)
	defer stop()
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := ln.Addr().String()
	ln.Close() // nothing listens there any more
	eps = append(eps, lb.Endpoint{Addr: dead})

	bal, err := lb.NewBalancer(lb.RoundRobin{}, lb.WithEndpoints(eps),
		lb.WithOutlierDetection(lb.OutlierDetection{ConsecutiveFailures: 3, BaseEjectionTime: time.Minute}))
	if err != nil {
		panic(err)
	}
	defer bal.Close()
	tr, err := lb.NewTransport(bal)
	if err != nil {
		panic(err)
	}
	client := &http.Client{Transport: tr}
	defer client.CloseIdleConnections()

	failed := 0
	for i := 0; i < 30; i++ {
		resp, err := client.Post("http://orders.internal/v1/orders", "application/json", strings.NewReader(`{"item":1}`))
		if err != nil {
			failed++
			continue
		}
		resp.Body.Close()
	}
	st := tr.Stats()
	fmt.Println("requests:", st.Requests, "failed:", failed, "retried:", st.Retries > 0)
	fmt.Println("dead backend ejected:", bal.Stats()[2].Ejected)
	// Output:
	// requests: 30 failed: 0 retried: true
	// dead backend ejected: true
}

// When nothing answers, the error says whether the request may have run
// somewhere: here it was never sent, so it is safe to send again later.
func ExampleError() {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := ln.Addr().String()
	ln.Close()
	bal, err := lb.NewBalancer(lb.Random{}, lb.WithEndpoints(lb.Addrs(dead)))
	if err != nil {
		panic(err)
	}
	defer bal.Close()
	tr, err := lb.NewTransport(bal)
	if err != nil {
		panic(err)
	}
	_, err = (&http.Client{Transport: tr}).Post("http://payments.internal/v1/pay", "text/plain", strings.NewReader("10 EUR"))
	fmt.Println("never sent:", errors.Is(err, lb.ErrNotSent))
	fmt.Println("may have executed:", errors.Is(err, lb.ErrMaybeExecuted))
	var lbErr *lb.Error
	if errors.As(err, &lbErr) {
		fmt.Println("attempts:", len(lbErr.Attempts), "reason:", lbErr.Reason)
	}
	// Output:
	// never sent: true
	// may have executed: false
	// attempts: 1 reason: no backend left
}

// Sticky sessions: with a hash strategy and a key, every request of a user
// goes to the same backend.
func ExampleHeaderKey() {
	eps, stop := exampleBackends(5)
	defer stop()
	bal, err := lb.NewBalancer(lb.Ring{}, lb.WithEndpoints(eps))
	if err != nil {
		panic(err)
	}
	defer bal.Close()
	tr, err := lb.NewTransport(bal, lb.WithKey(lb.HeaderKey("X-User-Id")))
	if err != nil {
		panic(err)
	}
	client := &http.Client{Transport: tr}
	defer client.CloseIdleConnections()

	seen := map[string]bool{}
	for i := 0; i < 20; i++ {
		req, _ := http.NewRequest(http.MethodGet, "http://cart.internal/v1/cart", nil)
		req.Header.Set("X-User-Id", "user-42")
		resp, err := client.Do(req)
		if err != nil {
			panic(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		seen[string(b)] = true
	}
	fmt.Println("backends that served user-42:", len(seen))
	// Output: backends that served user-42: 1
}

// Active health checks mark a backend whose health endpoint fails down;
// the picker leaves it out until it passes again.
func ExampleStartHealthChecks() {
	eps, stop := exampleBackends(3) // "b" answers 503 on /healthz
	defer stop()
	bal, err := lb.NewBalancer(lb.RoundRobin{}, lb.WithEndpoints(eps))
	if err != nil {
		panic(err)
	}
	defer bal.Close()
	hc, err := lb.StartHealthChecks(context.Background(), bal, lb.HealthCheck{
		Path:               "/healthz",
		Interval:           10 * time.Millisecond,
		UnhealthyThreshold: 2,
	})
	if err != nil {
		panic(err)
	}
	defer hc.Close()

	deadline := time.Now().Add(10 * time.Second)
	for !bal.Stats()[1].Unhealthy && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	for i, s := range bal.Stats() {
		fmt.Printf("%c unhealthy: %v\n", 'a'+i, s.Unhealthy)
	}
	// Output:
	// a unhealthy: false
	// b unhealthy: true
	// c unhealthy: false
}
