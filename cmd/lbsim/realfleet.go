package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// The real fleet of the validation: one loopback HTTP server per backend
// of a scenario, which behaves as lbsim's model says a backend does (slots
// and a FIFO queue, log-normal service times, the scenario's faults, kills
// and restarts on the same address), so that what lbsim predicts can be
// held against what lb's real Transport does on it (validate.go).

// realBackend is one backend of the real fleet.
type realBackend struct {
	name   string
	addr   string
	median time.Duration
	sigma  float64
	probe  time.Duration // a check's latency when the backend is up

	factor atomic.Uint64 // float64 bits of the service time factor
	fault  atomic.Pointer[fault]
	shed   atomic.Int64

	adm admission

	mu      sync.Mutex
	rnd     *rand.Rand // fault draws
	srv     *http.Server
	serving sync.WaitGroup // the Serve loops
}

// admission is a backend's slots and FIFO queue.
type admission struct {
	mu       sync.Mutex
	slots    int
	maxQueue int // < 0: no bound
	busy     int
	queue    []chan struct{}
}

// admit waits for a slot; it reports false if the queue is full (shed)
// or the call was abandoned first (gone).
func (a *admission) admit(ctx context.Context) (ok, shed bool) {
	a.mu.Lock()
	if a.busy < a.slots {
		a.busy++
		a.mu.Unlock()
		return true, false
	}
	if a.maxQueue >= 0 && len(a.queue) >= a.maxQueue {
		a.mu.Unlock()
		return false, true
	}
	ch := make(chan struct{})
	a.queue = append(a.queue, ch)
	a.mu.Unlock()
	select {
	case <-ch:
		return true, false
	case <-ctx.Done():
		a.mu.Lock()
		defer a.mu.Unlock()
		for i, c := range a.queue {
			if c == ch {
				a.queue = append(a.queue[:i], a.queue[i+1:]...)
				return false, false
			}
		}
		// The slot was handed over as the call left: pass it on.
		a.releaseLocked()
		return false, false
	}
}

func (a *admission) release() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.releaseLocked()
}

func (a *admission) releaseLocked() {
	if len(a.queue) > 0 {
		close(a.queue[0])
		a.queue = a.queue[1:]
		return
	}
	a.busy--
}

// startRealBackend listens on a free loopback port below the ephemeral
// range (so that it can be listened on again after a kill) and serves.
func startRealBackend(name string, g BackendGroup, probe time.Duration, seed uint64) (*realBackend, error) {
	b := &realBackend{
		name: name, median: g.Median.D(), sigma: g.Sigma, probe: probe,
		adm: admission{slots: g.Slots, maxQueue: g.MaxQueue},
		rnd: rand.New(rand.NewPCG(seed, uint64(len(name))<<32|uint64(name[len(name)-1]))),
	}
	b.factor.Store(floatBits(1))
	var ln net.Listener
	var err error
	for try := 0; try < 200; try++ {
		ln, err = net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(10000+rand.IntN(20000))))
		if err == nil {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("no free loopback port in 10000-29999: %w", err)
	}
	b.addr = ln.Addr().String()
	b.serve(ln)
	return b, nil
}

func (b *realBackend) serve(ln net.Listener) {
	srv := &http.Server{Handler: b, ReadHeaderTimeout: 10 * time.Second}
	b.mu.Lock()
	b.srv = srv
	b.mu.Unlock()
	b.serving.Add(1)
	go func() {
		defer b.serving.Done()
		_ = srv.Serve(ln)
	}()
}

// kill closes the listener and every connection, as a crash would: calls
// in flight are reset, dials refused.
func (b *realBackend) kill() {
	b.mu.Lock()
	srv := b.srv
	b.srv = nil
	b.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
}

// start listens again on the backend's address. The port was ours a
// moment ago; binding it again can fail for a moment while the kernel lets
// go of it, so it is retried for up to 2 s.
func (b *realBackend) start() error {
	b.mu.Lock()
	up := b.srv != nil
	b.mu.Unlock()
	if up {
		return nil
	}
	deadline := time.Now().Add(2 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		ln, err := net.Listen("tcp", b.addr)
		if err == nil {
			b.serve(ln)
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("restarting %s on %s: %w", b.name, b.addr, err)
		}
		<-tick.C
	}
}

// catches reports whether fault f catches this call.
func (b *realBackend) catches(f *fault) bool {
	if f.rate >= 1 {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.rnd.Float64() < f.rate
}

// ServeHTTP serves a call, or a health check (/healthz), as the backend's
// model says: the fault first, then a slot and the service time.
func (b *realBackend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if r.URL.Path == "/healthz" {
		if f := b.fault.Load(); f != nil && !f.probePass && b.catches(f) {
			b.fail(w, r, f)
			return
		}
		if !sleep(ctx, b.probe) {
			return
		}
		w.WriteHeader(http.StatusOK)
		return
	}
	if f := b.fault.Load(); f != nil && b.catches(f) {
		b.fail(w, r, f)
		return
	}
	ok, shed := b.adm.admit(ctx)
	if shed {
		b.shed.Add(1)
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	if !ok {
		return
	}
	defer b.adm.release()
	z, _ := strconv.ParseFloat(r.Header.Get(sizeHeader), 64)
	if !sleep(ctx, serviceTime(b.median, floatFrom(b.factor.Load()), b.sigma, z)) {
		return
	}
	_, _ = io.WriteString(w, "ok")
}

// fail answers a call that fault f caught.
func (b *realBackend) fail(w http.ResponseWriter, r *http.Request, f *fault) {
	ctx := r.Context()
	switch f.mode {
	case modeStatus:
		if !sleep(ctx, f.latency) {
			return
		}
		if f.retryAfter != "" {
			w.Header().Set("Retry-After", f.retryAfter)
		}
		w.WriteHeader(f.status)
	case modeReset:
		if !sleep(ctx, f.latency) {
			return
		}
		conn, _, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // a reset, not a clean close
		}
		conn.Close()
	case modeBlackhole:
		<-ctx.Done()
	case modeStall:
		if !sleep(ctx, f.latency) {
			return
		}
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		<-ctx.Done()
	}
}

// sleep waits d, or until ctx ends; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// stop kills the backend for good and waits for its Serve loop to end;
// its handlers end as their connections close.
func (b *realBackend) stop() {
	b.kill()
	b.serving.Wait()
}

// sizeHeader carries a request's size (its Z) to the real backend, so
// that the real fleet serves the requests lbsim simulates.
const sizeHeader = "X-Lbsim-Size"
