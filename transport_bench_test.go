package lb_test

import (
	"io"
	"net"
	"net/http"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-lb/lb"
)

// BenchmarkTransport compares the Transport with a plain http.Client on
// the same loopback backend, in the same run, at concurrency 1 and 32:
// the difference per request is the Transport's overhead. Both use
// http.Transports with the same settings (the plain one with
// MaxIdleConnsPerHost raised as the Transport's default base has it, so
// that the comparison is not about net/http's default of 2). The
// "plain-default-idle" case is a plain client with net/http's default of
// 2 idle connections per host, the trap the default base avoids. Reported
// per op: ns, B, allocs, new TCP connections per 1,000 requests, and the
// CPU time client and server used per request (cpu-ns/op, where the
// platform tells).
func BenchmarkTransport(b *testing.B) {
	addr, conns := startBenchBackend(b)
	bal, err := lb.NewBalancer(lb.RoundRobin{}, lb.WithEndpoints(lb.Addrs(addr)))
	if err != nil {
		b.Fatal(err)
	}
	defer bal.Close()

	clients := []struct {
		name string
		rt   func() http.RoundTripper
		url  string
	}{
		{"plain", func() http.RoundTripper { return newBenchPlain(lb.DefaultMaxIdleConnsPerBackend) }, "http://" + addr + "/"},
		{"lb", func() http.RoundTripper {
			tr, err := lb.NewTransport(bal)
			if err != nil {
				b.Fatal(err)
			}
			return tr
		}, "http://svc.internal/"},
		{"plain-default-idle", func() http.RoundTripper { return newBenchPlain(0) }, "http://" + addr + "/"},
	}
	for _, conc := range []int{1, 32} {
		for _, cl := range clients {
			b.Run(cl.name+"/c="+strconv.Itoa(conc), func(b *testing.B) {
				rt := cl.rt()
				client := &http.Client{Transport: rt}
				defer client.CloseIdleConnections()
				do := func(req *http.Request) { benchDo(b, client, req) }
				newReq := func() *http.Request { return benchRequest(b, cl.url) }
				do(newReq()) // warm up one connection
				conns.Store(0)
				b.ReportAllocs()
				cpu0, cpuOK := processCPU()
				b.ResetTimer()
				if conc == 1 {
					req := newReq()
					for i := 0; i < b.N; i++ {
						do(req)
					}
				} else {
					b.SetParallelism(max(1, conc/runtime.GOMAXPROCS(0)))
					b.RunParallel(func(pb *testing.PB) {
						req := newReq()
						for pb.Next() {
							do(req)
						}
					})
				}
				b.StopTimer()
				b.ReportMetric(float64(conns.Load())*1000/float64(b.N), "conns/1k-req")
				if cpu1, ok := processCPU(); ok && cpuOK {
					// Client and server run in this process: the CPU both
					// spend per request, steadier than ns/op when other
					// processes compete for the CPUs.
					b.ReportMetric(float64(cpu1-cpu0)/float64(b.N), "cpu-ns/op")
				}
			})
		}
	}
}

// BenchmarkTransportOverhead measures the Transport alone, over a base
// of one's own (WithBase) that answers from memory: key, pick, the copy
// of the request whose URL names the backend (the default base needs no
// copy), body wrapper, done.
func BenchmarkTransportOverhead(b *testing.B) {
	for _, tc := range []struct {
		name    string
		builder lb.Builder
		opts    []lb.TransportOption
	}{
		{"round-robin", lb.RoundRobin{}, nil},
		{"ring+header-key", lb.Ring{}, []lb.TransportOption{lb.WithKey(lb.HeaderKey("X-User"))}},
		{"p2c+5xx-failures", lb.P2C{}, []lb.TransportOption{lb.WithFailureStatus(lb.Is5xx)}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			bal, err := lb.NewBalancer(tc.builder, lb.WithEndpoints(lb.Addrs("10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80")))
			if err != nil {
				b.Fatal(err)
			}
			defer bal.Close()
			tr, err := lb.NewTransport(bal, append([]lb.TransportOption{lb.WithBase(newMemoryBase())}, tc.opts...)...)
			if err != nil {
				b.Fatal(err)
			}
			req, err := http.NewRequest(http.MethodGet, "http://svc.internal/", nil)
			if err != nil {
				b.Fatal(err)
			}
			req.Header.Set("X-User", "user-42")
			b.ReportAllocs()
			cpu0, cpuOK := processCPU()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				resp, err := tr.RoundTrip(req)
				if err != nil {
					b.Fatal(err)
				}
				resp.Body.Close()
			}
			b.StopTimer()
			if cpu1, ok := processCPU(); ok && cpuOK {
				b.ReportMetric(float64(cpu1-cpu0)/float64(b.N), "cpu-ns/op")
			}
		})
	}
}

// memoryBase answers every request with a 200 and a body, from memory,
// allocating nothing: one response, reused (the benchmark is serial and
// closes each body before the next request), so that the allocations
// counted are the Transport's.
type memoryBase struct {
	resp *http.Response
	body memoryBody
}

// memoryBody is a reusable response body: a strings.Reader with a no-op
// Close (io.NopCloser would allocate on every call).
type memoryBody struct{ strings.Reader }

func (*memoryBody) Close() error { return nil }

func newMemoryBase() *memoryBase {
	m := &memoryBase{}
	m.resp = &http.Response{StatusCode: http.StatusOK}
	return m
}

func (m *memoryBase) RoundTrip(r *http.Request) (*http.Response, error) {
	m.body.Reset("ok")
	m.resp.Body = &m.body
	m.resp.Request = r
	return m.resp, nil
}

// BenchmarkTransportVsPlain measures the Transport's overhead against a
// plain http.Client in a way a shared, noisy machine allows. Three
// clients take turns on the same loopback backend, in blocks of requests
// a few milliseconds long: two identical plain clients (A and B) and the
// Transport, in an order that cycles through all six so that whatever
// else the machine runs slows each alike. Each round of three blocks gives
// the Transport's difference from the plain clients' mean, and the
// difference between the two plain clients: a control that measures
// nothing but the method's noise. Reported, as medians over the rounds,
// per request:
//
//	plain-ns/req, lb-ns/req        wall time (at c=32: 1/throughput)
//	overhead-ns/req, overhead-%    the Transport against plain, wall time
//	overhead-cpu-ns/req, -cpu-%    the same in CPU time (client and
//	                               server, both in this process)
//	control-ns/req, control-%      plain B against plain A: how far two
//	                               identical clients differ here; an
//	                               overhead within it is not resolved
//
// ns/op counts all clients' requests and says little on its own; run
// with -benchtime 5s or more for enough rounds.
func BenchmarkTransportVsPlain(b *testing.B) {
	addr, _ := startBenchBackend(b)
	bal, err := lb.NewBalancer(lb.RoundRobin{}, lb.WithEndpoints(lb.Addrs(addr)))
	if err != nil {
		b.Fatal(err)
	}
	defer bal.Close()
	tr, err := lb.NewTransport(bal)
	if err != nil {
		b.Fatal(err)
	}
	const plainA, viaLB, plainB = 0, 1, 2
	clients := [3]*http.Client{
		{Transport: newBenchPlain(lb.DefaultMaxIdleConnsPerBackend)},
		{Transport: tr},
		{Transport: newBenchPlain(lb.DefaultMaxIdleConnsPerBackend)},
	}
	urls := [3]string{"http://" + addr + "/", "http://svc.internal/", "http://" + addr + "/"}
	for _, c := range clients {
		defer c.CloseIdleConnections()
	}
	orders := [6][3]int{{0, 1, 2}, {1, 2, 0}, {2, 0, 1}, {2, 1, 0}, {1, 0, 2}, {0, 2, 1}}

	for _, conc := range []int{1, 32} {
		b.Run("c="+strconv.Itoa(conc), func(b *testing.B) {
			// run sends n requests through client k at concurrency conc
			// and returns the wall and CPU time per request.
			run := func(k, n int) (wall, cpu float64) {
				cpu0, _ := processCPU()
				start := time.Now()
				if conc == 1 {
					req := benchRequest(b, urls[k])
					for i := 0; i < n; i++ {
						benchDo(b, clients[k], req)
					}
				} else {
					var left atomic.Int64
					left.Store(int64(n))
					var wg sync.WaitGroup
					for w := 0; w < conc; w++ {
						req := benchRequest(b, urls[k])
						wg.Add(1)
						go func() {
							defer wg.Done()
							for left.Add(-1) >= 0 {
								benchDo(b, clients[k], req)
							}
						}()
					}
					wg.Wait()
				}
				elapsed := time.Since(start)
				cpu1, _ := processCPU()
				return float64(elapsed) / float64(n), float64(cpu1-cpu0) / float64(n)
			}
			block := 200 // about 8 ms at c=1
			if conc > 1 {
				block = 1000 // about 20 ms at c=32
			}
			for k := range clients {
				run(k, 4*conc) // warm up: the connections the concurrency needs
			}
			var plainNs, lbNs, diff, ratio, diffCPU, ratioCPU, control, controlRatio []float64
			b.ResetTimer()
			for r, left := 0, b.N; left > 0; r++ {
				n := min(block, (left+2)/3)
				left -= 3 * n
				// From one caller, fresh connections each round, dialled
				// in the round's order: one connection's speed differs by
				// a few percent, which would otherwise favor one client
				// for a whole run. (At c=32 each client's 32 connections
				// average that out, and redialling them would pile up
				// sockets in TIME_WAIT.)
				order := orders[r%len(orders)]
				if conc == 1 {
					b.StopTimer()
					for _, k := range order {
						clients[k].CloseIdleConnections()
					}
					for _, k := range order {
						run(k, 2)
					}
					b.StartTimer()
				}
				var wall, cpu [3]float64
				for _, k := range order {
					wall[k], cpu[k] = run(k, n)
				}
				plain := (wall[plainA] + wall[plainB]) / 2
				plainCPU := (cpu[plainA] + cpu[plainB]) / 2
				plainNs, lbNs = append(plainNs, plain), append(lbNs, wall[viaLB])
				diff, ratio = append(diff, wall[viaLB]-plain), append(ratio, wall[viaLB]/plain-1)
				diffCPU, ratioCPU = append(diffCPU, cpu[viaLB]-plainCPU), append(ratioCPU, cpu[viaLB]/plainCPU-1)
				control = append(control, wall[plainB]-wall[plainA])
				controlRatio = append(controlRatio, wall[plainB]/wall[plainA]-1)
			}
			b.StopTimer()
			b.ReportMetric(median(plainNs), "plain-ns/req")
			b.ReportMetric(median(lbNs), "lb-ns/req")
			b.ReportMetric(median(diff), "overhead-ns/req")
			b.ReportMetric(100*median(ratio), "overhead-%")
			if _, ok := processCPU(); ok {
				b.ReportMetric(median(diffCPU), "overhead-cpu-ns/req")
				b.ReportMetric(100*median(ratioCPU), "overhead-cpu-%")
			}
			b.ReportMetric(median(control), "control-ns/req")
			b.ReportMetric(100*median(controlRatio), "control-%")
		})
	}
}

// median returns the median of xs, which it sorts; 0 for none.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	sort.Float64s(xs)
	n := len(xs)
	if n%2 == 1 {
		return xs[n/2]
	}
	return (xs[n/2-1] + xs[n/2]) / 2
}

// startBenchBackend starts a loopback HTTP server answering "ok", stopped
// at the end of the benchmark, and returns its address and a count of the
// connections it accepted.
func startBenchBackend(b *testing.B) (string, *atomic.Int64) {
	b.Helper()
	conns := new(atomic.Int64)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			_, _ = io.WriteString(w, "ok")
		}),
		ReadHeaderTimeout: 10 * time.Second,
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				conns.Add(1)
			}
		},
	}
	go func() { _ = srv.Serve(ln) }()
	b.Cleanup(func() { srv.Close() })
	return ln.Addr().String(), conns
}

// newBenchPlain returns a clone of http.DefaultTransport keeping idle
// idle connections per host (0: net/http's default of 2).
func newBenchPlain(idle int) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 0
	t.MaxIdleConnsPerHost = idle
	return t
}

// benchRequest returns a GET request for url.
func benchRequest(b *testing.B, url string) *http.Request {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		b.Fatal(err)
	}
	return req
}

// benchDo sends req through client and reads and closes the response body.
func benchDo(b *testing.B, client *http.Client, req *http.Request) {
	resp, err := client.Do(req)
	if err != nil {
		b.Error(err)
		return
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
}
