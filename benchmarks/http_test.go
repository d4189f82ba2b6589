package benchmarks

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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

// BenchmarkHTTP sends GET requests to HTTPBackends loopback backends
// through each client, from 1 and 32 concurrent callers. ns/op is wall
// time per request; allocs/op counts the whole process, the in-process
// servers included (the same for every client); conns/1k-req is the TCP
// connections the backends accepted per 1,000 requests after a warm-up.
func BenchmarkHTTP(b *testing.B) {
	for _, row := range HTTPRows() {
		for _, c := range HTTPConcurrency {
			b.Run(fmt.Sprintf("http/%s/c=%d", row.ID, c), func(b *testing.B) {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
				defer cancel()
				f := NewFleet(HTTPBackends)
				defer f.Close()
				cl, err := row.New(f)
				if err != nil {
					b.Fatal(err)
				}
				defer cl.Close()
				do := func() error { return cl.Do(ctx) }
				if err := runConcurrent(c, 4*c, do); err != nil { // warm-up
					b.Fatal(err)
				}
				conns := f.Conns()
				b.ReportAllocs()
				b.ResetTimer()
				err = runConcurrent(c, b.N, do)
				b.StopTimer()
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(f.Conns()-conns)*1000/float64(b.N), "conns/1k-req")
			})
		}
	}
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
