package lb_test

import (
	"io"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
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
	var conns atomic.Int64
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
	defer srv.Close()
	addr := ln.Addr().String()

	bal, err := lb.NewBalancer(lb.RoundRobin{}, lb.WithEndpoints(lb.Addrs(addr)))
	if err != nil {
		b.Fatal(err)
	}
	defer bal.Close()

	newPlain := func(idle int) *http.Transport {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConns = 0
		t.MaxIdleConnsPerHost = idle
		return t
	}
	clients := []struct {
		name string
		rt   func() http.RoundTripper
		url  string
	}{
		{"plain", func() http.RoundTripper { return newPlain(lb.DefaultMaxIdleConnsPerBackend) }, "http://" + addr + "/"},
		{"lb", func() http.RoundTripper {
			tr, err := lb.NewTransport(bal)
			if err != nil {
				b.Fatal(err)
			}
			return tr
		}, "http://svc.internal/"},
		{"plain-default-idle", func() http.RoundTripper { return newPlain(0) }, "http://" + addr + "/"},
	}
	for _, conc := range []int{1, 32} {
		for _, cl := range clients {
			b.Run(cl.name+"/c="+strconv.Itoa(conc), func(b *testing.B) {
				rt := cl.rt()
				client := &http.Client{Transport: rt}
				defer client.CloseIdleConnections()
				do := func(req *http.Request) {
					resp, err := client.Do(req)
					if err != nil {
						b.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				newReq := func() *http.Request {
					req, err := http.NewRequest(http.MethodGet, cl.url, nil)
					if err != nil {
						b.Fatal(err)
					}
					return req
				}
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
// that answers from memory: key, pick, request copy, body wrapper, done.
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
