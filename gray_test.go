package lb_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/go-lb/lb"
)

// Gray failures: backends that fail in ways harder than a refused port,
// each tested on loopback with the README's configuration (P2C, outlier
// detection with its defaults, an http.Client timeout), scaled to test
// time where the README's numbers are long.

// readmeBalancer returns the README's Balancer options.
func readmeBalancer(extra ...lb.Option) []lb.Option {
	return append([]lb.Option{lb.WithOutlierDetection(lb.OutlierDetection{})}, extra...)
}

// load is the outcome of a run of requests.
type load struct {
	requests, failed, status5xx atomic.Int64
	mu                          sync.Mutex
	errs                        []error
}

func (l *load) String() string {
	return fmt.Sprintf("%d requests, %d failed, %d 5xx", l.requests.Load(), l.failed.Load(), l.status5xx.Load())
}

// drive sends n requests from conc goroutines, each made by mk.
func drive(t *testing.T, c *http.Client, n, conc int, mk func(i int) *http.Request) *load {
	t.Helper()
	l := &load{}
	var next atomic.Int64
	var wg sync.WaitGroup
	for g := 0; g < conc; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				l.requests.Add(1)
				resp, err := c.Do(mk(i))
				if err != nil {
					l.failed.Add(1)
					l.mu.Lock()
					if len(l.errs) < 5 {
						l.errs = append(l.errs, err)
					}
					l.mu.Unlock()
					continue
				}
				if _, err := io.Copy(io.Discard, resp.Body); err != nil {
					l.failed.Add(1)
				}
				resp.Body.Close()
				if resp.StatusCode >= 500 {
					l.status5xx.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return l
}

func getReq(int) *http.Request {
	r, _ := http.NewRequest(http.MethodGet, "http://svc.internal/", nil)
	return r
}

func postReq(i int) *http.Request {
	r, _ := http.NewRequest(http.MethodPost, "http://svc.internal/orders", strings.NewReader(fmt.Sprint("order-", i)))
	return r
}

// A backend that answers 503 at once draws no traffic by looking fast
// and idle: callers see at most a few of its answers (GETs are retried
// elsewhere, POSTs go to it rarely), and it is ejected.
func TestGrayFastErrors(t *testing.T) {
	t.Parallel()
	for _, method := range []string{"GET", "POST"} {
		t.Run(method, func(t *testing.T) {
			t.Parallel()
			backs, eps := startTBackends(t, 5)
			bad := backs[0]
			bad.mode.Store(mode503)
			tr, bal := newTestTransport(t, lb.P2C{}, eps, readmeBalancer())
			c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
			mk := getReq
			if method == "POST" {
				mk = postReq
			}
			l := drive(t, c, 2000, 16, mk)
			s := statsOf(bal, bad.addr)
			var attempts uint64
			for _, st := range bal.Stats() {
				attempts += st.Picks
			}
			share := float64(s.Picks) / float64(attempts)
			t.Logf("%s: %v; the 503 backend had %.1f%% of %d attempts, %d ejections", method, l, 100*share, attempts, s.Ejections)
			assert.Zero(t, l.failed.Load())
			assert.LessOrEqual(t, l.status5xx.Load(), int64(200), "at most 10%% of requests see a 503")
			assert.Less(t, share, 0.10, "the failing backend draws little traffic")
			assert.Positive(t, s.Ejections, "and is ejected")
		})
	}
}

// Retry-After on a 503 keeps picks off the backend for as long as it asks.
func TestGrayRetryAfter(t *testing.T) {
	t.Parallel()
	backs, eps := startTBackends(t, 3)
	busy := backs[0]
	var asked atomic.Int64
	busy.mu.Lock()
	busy.handler = func(w http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		w.Header().Set("Retry-After", "1")
		http.Error(w, "busy", http.StatusServiceUnavailable)
	}
	busy.mu.Unlock()
	tr, _ := newTestTransport(t, lb.RoundRobin{}, eps, nil)
	c := &http.Client{Transport: tr}
	start := time.Now()
	l := drive(t, c, 300, 1, getReq) // one at a time: no request races the first answer
	secs := int64(time.Since(start)/time.Second) + 1
	assert.Zero(t, l.failed.Load())
	assert.Zero(t, l.status5xx.Load(), "retried elsewhere")
	assert.LessOrEqual(t, asked.Load(), secs, "held off for a second after each Retry-After (%d asked in %d s)", asked.Load(), secs)
}

// A backend that accepts connections and never answers: P2C sees its calls
// pile up and avoids it, so at most 3% of requests fail; with a per-try
// timeout or hedging none do, and the blackhole is charged and ejected.
func TestGrayBlackhole(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		opts    []lb.TransportOption
		maxFail float64
		charged bool
	}{
		{"README configuration", nil, 0.03, false},
		// Generous bounds: a loaded machine's healthy answers must not be
		// cut short by them.
		{"per-try timeout", []lb.TransportOption{lb.WithPerTryTimeout(time.Second)}, 0, true},
		{"hedging", []lb.TransportOption{lb.WithHedging(lb.Hedging{Delay: 200 * time.Millisecond})}, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			backs, eps := startTBackends(t, 5)
			hole := backs[0]
			hole.hold()
			tr, bal := newTestTransport(t, lb.P2C{}, eps, readmeBalancer(), tt.opts...)
			// The README's 10 s client timeout, scaled down for the test.
			c := &http.Client{Transport: tr, Timeout: 3 * time.Second}
			l := drive(t, c, 1500, 16, getReq)
			s := statsOf(bal, hole.addr)
			ts := tr.Stats()
			t.Logf("%s: %v; blackhole: %d picks, %d failures, %d ejections; %d retries, %d hedges (%d won), %d per-try timeouts",
				tt.name, l, s.Picks, s.Failures, s.Ejections, ts.Retries, ts.Hedges, ts.HedgeWins, ts.PerTryTimeouts)
			assert.LessOrEqual(t, float64(l.failed.Load()), tt.maxFail*1500, "%v: %v", l, l.errs)
			if tt.charged {
				assert.Positive(t, s.Failures, "the blackhole is charged")
				assert.Positive(t, s.Ejections, "and ejected")
			}
			for _, b := range backs[1:] {
				assert.Zero(t, statsOf(bal, b.addr).Failures, "healthy backends are not charged")
			}
			hole.release()
		})
	}
}
