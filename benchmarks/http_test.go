package benchmarks

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-lb/lb"
)

// runConcurrent makes total calls of do from c goroutines and returns the
// first error.
func runConcurrent(c, total int, do func() error) error {
	var (
		next  atomic.Int64
		wg    sync.WaitGroup
		first error
		once  sync.Once
	)
	for w := 0; w < c; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(total) {
				if err := do(); err != nil {
					once.Do(func() { first = err })
					return
				}
			}
		}()
	}
	wg.Wait()
	return first
}

// startRow starts a fleet and row's client on it, closed at the end of
// the benchmark, and returns them with the context for the requests.
func startRow(b *testing.B, row HTTPRow) (context.Context, *Fleet, *Client) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	b.Cleanup(cancel)
	f := NewFleet(HTTPBackends)
	b.Cleanup(f.Close)
	cl, err := row.New(f)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(cl.Close)
	return ctx, f, cl
}

// BenchmarkHTTP sends GET requests to HTTPBackends loopback backends
// through each client, from 1 and 32 concurrent callers. ns/op is wall
// time per request; allocs/op counts the whole process, the in-process
// servers included (the same for every client); conns/1k-req is the TCP
// connections the backends accepted per 1,000 requests after a warm-up.
func BenchmarkHTTP(b *testing.B) {
	for _, row := range HTTPRows() {
		for _, c := range HTTPConcurrency {
			b.Run(fmt.Sprintf("http/%s/c=%d", row.ID, c), func(b *testing.B) {
				ctx, f, cl := startRow(b, row)
				do := func() error { return cl.Do(ctx) }
				if err := runConcurrent(c, 4*c, do); err != nil { // warm-up
					b.Fatal(err)
				}
				conns := f.Conns()
				b.ReportAllocs()
				b.ResetTimer()
				err := runConcurrent(c, b.N, do)
				b.StopTimer()
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(f.Conns()-conns)*1000/float64(b.N), "conns/1k-req")
			})
		}
	}
}

// BenchmarkHTTPPaired measures each client against the plain client with
// lb's pool size (plain-idle256) on one fleet. Three clients take turns in
// blocks of requests a few milliseconds long, in an order that cycles
// through all six: two identical plain clients (A and B) and the client
// measured, so that load from elsewhere on a shared machine slows each
// alike. From one caller, each round dials fresh connections (one
// connection's speed differs by a few percent). Reported per request,
// medians over the rounds: vs-plain-x (the client's time over the plain
// clients' mean), vs-plain-ns/req (the difference), both times (ns/req,
// plain-ns/req), and a control, control-x and control-ns/req: plain B
// against plain A, how far two identical clients differ here. ns/op
// counts all three clients' requests. It resolves differences of a few
// percent where BenchmarkHTTP, whose rows run a second apart, does not.
func BenchmarkHTTPPaired(b *testing.B) {
	orders := [6][3]int{{0, 1, 2}, {1, 2, 0}, {2, 0, 1}, {2, 1, 0}, {1, 0, 2}, {0, 2, 1}}
	for _, row := range HTTPRows() {
		if row.Baseline {
			continue
		}
		for _, c := range HTTPConcurrency {
			b.Run(fmt.Sprintf("paired/%s/c=%d", row.ID, c), func(b *testing.B) {
				ctx, f, cl := startRow(b, row)
				plainA := newPlain(f, lb.DefaultMaxIdleConnsPerBackend)
				defer plainA.Close()
				plainB := newPlain(f, lb.DefaultMaxIdleConnsPerBackend)
				defer plainB.Close()
				const a, measured, bb = 0, 1, 2
				clients := [3]*Client{plainA, cl, plainB}
				run := func(k, n int) float64 {
					start := time.Now()
					if err := runConcurrent(c, n, func() error { return clients[k].Do(ctx) }); err != nil {
						b.Fatal(err)
					}
					return float64(time.Since(start)) / float64(n)
				}
				for k := range clients {
					run(k, 4*c) // warm-up: the connections the concurrency needs
				}
				block := 200 // about 8 ms from one caller
				if c > 1 {
					block = 1000 // about 20 ms from 32
				}
				var plainNs, rowNs, ratio, diff, control, controlNs []float64
				b.ResetTimer()
				for r, left := 0, b.N; left > 0; r++ {
					n := min(block, (left+2)/3)
					left -= 3 * n
					order := orders[r%len(orders)]
					if c == 1 {
						b.StopTimer()
						for _, k := range order {
							clients[k].CloseIdleConnections()
						}
						for _, k := range order {
							run(k, 2*HTTPBackends)
						}
						b.StartTimer()
					}
					var ns [3]float64
					for _, k := range order {
						ns[k] = run(k, n)
					}
					plain := (ns[a] + ns[bb]) / 2
					plainNs, rowNs = append(plainNs, plain), append(rowNs, ns[measured])
					ratio, diff = append(ratio, ns[measured]/plain), append(diff, ns[measured]-plain)
					control, controlNs = append(control, ns[bb]/ns[a]), append(controlNs, ns[bb]-ns[a])
				}
				b.StopTimer()
				b.ReportMetric(sortedMedian(rowNs), "ns/req")
				b.ReportMetric(sortedMedian(plainNs), "plain-ns/req")
				b.ReportMetric(sortedMedian(ratio), "vs-plain-x")
				b.ReportMetric(sortedMedian(diff), "vs-plain-ns/req")
				b.ReportMetric(sortedMedian(control), "control-x")
				b.ReportMetric(sortedMedian(controlNs), "control-ns/req")
			})
		}
	}
}

// sortedMedian sorts xs and returns its median; 0 for none.
func sortedMedian(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	slices.Sort(xs)
	n := len(xs)
	if n%2 == 1 {
		return xs[n/2]
	}
	return (xs[n/2-1] + xs[n/2]) / 2
}

func TestHTTPClients(t *testing.T) {
	for _, row := range HTTPRows() {
		t.Run(row.ID, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			f := NewFleet(HTTPBackends)
			defer f.Close()
			cl, err := row.New(f)
			require.NoError(t, err)
			defer cl.Close()
			const calls = 40
			require.NoError(t, runConcurrent(4, calls, func() error { return cl.Do(ctx) }))
			var total int64
			for i, n := range f.Requests() {
				// Every client spreads its calls over all the backends.
				assert.Positive(t, n, "backend %d got no request", i)
				total += n
			}
			assert.Equal(t, int64(calls), total)
			assert.Positive(t, f.Conns())
		})
	}
}
