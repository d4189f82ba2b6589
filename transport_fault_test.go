package lb_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-lb/lb"
)

// recordHandler is a slog.Handler that keeps the records it gets.
type recordHandler struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (h *recordHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.recs = append(h.recs, r.Clone())
	return nil
}
func (h *recordHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *recordHandler) WithGroup(string) slog.Handler      { return h }

// ejection is one "backend ejected" log record.
type ejection struct {
	at  time.Time
	dur time.Duration
}

// ejections returns the ejections of addr logged so far, and the
// readmissions.
func (h *recordHandler) ejections(addr string) (ej []ejection, readmitted []time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, r := range h.recs {
		var a string
		var d time.Duration
		r.Attrs(func(at slog.Attr) bool {
			switch at.Key {
			case "addr":
				a = at.Value.String()
			case "for":
				d = at.Value.Duration()
			}
			return true
		})
		if a != addr {
			continue
		}
		switch r.Message {
		case "lb: backend ejected":
			ej = append(ej, ejection{r.Time, d})
		case "lb: backend readmitted":
			readmitted = append(readmitted, r.Time)
		}
	}
	return ej, readmitted
}

// faultScenario is what happens to one backend between 25% and 75% of
// the requests.
type faultScenario int

const (
	faultKill faultScenario = iota // listener and open connections closed, restarted at 75%
	fault503                       // answers 503, healthy again at 75%
)

// faultReport is what a fault run measured.
type faultReport struct {
	requests, failed       int
	retries, retriesDenied uint64
	heldAtKill             int64
	victimAttemptsDown     uint64 // attempts on the victim while it was down
	ejections              int
	firstEjection          time.Duration // from the fault to the first ejection
	ejectedTime, downTime  time.Duration // logged ejection time within the fault, and the fault's length
	shareAfter, idealShare float64       // victim's share of the last quarter
	elapsed                time.Duration
}

// runFault sends n GETs at concurrency c through a Transport over 5
// backends; one of them fails (scenario) from 25% to 75% of the requests.
func runFault(t *testing.T, scenario faultScenario, n, c int) faultReport {
	t.Helper()
	bs, eps := startTBackends(t, 5)
	victim := bs[2]
	logs := &recordHandler{}
	od := lb.OutlierDetection{ConsecutiveFailures: 3, BaseEjectionTime: 20 * time.Millisecond, MaxEjectionTime: 80 * time.Millisecond}
	tr, bal := newTestTransport(t, lb.RoundRobin{}, eps,
		[]lb.Option{lb.WithOutlierDetection(od), lb.WithLogger(slog.New(logs))},
		lb.WithFailureStatus(lb.Is5xx))
	client := &http.Client{Transport: tr}

	var (
		next        atomic.Int64
		failed      atomic.Int64
		gate        sync.RWMutex // the restart pauses the workers until readmission
		mu          sync.Mutex   // guards the fields the fault and restart set
		servedAfter [5]atomic.Int64
		rep         faultReport
		faultAt     time.Time
		restartAt   time.Time
		attemptsAt  uint64
	)
	quarter, threeQuarters := int64(n/4), int64(3*n/4)
	index := map[string]int{}
	for i, b := range bs {
		index[b.name] = i
	}
	request := func(i int64) {
		resp, err := client.Get("http://svc.internal/")
		if err != nil {
			failed.Add(1)
			t.Logf("request %d: %v", i, err)
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			failed.Add(1)
			t.Logf("request %d: status %d", i, resp.StatusCode)
			return
		}
		if i > threeQuarters {
			servedAfter[index[resp.Header.Get("X-Backend")]].Add(1)
		}
	}
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < c; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				// Each request holds the gate for reading, so that the
				// restart can wait for the requests in flight.
				gate.RLock()
				i := next.Add(1)
				if i > int64(n) {
					gate.RUnlock()
					return
				}
				switch i {
				case quarter:
					mu.Lock()
					attemptsAt = statsOf(bal, victim.addr).Picks
					faultAt = time.Now()
					if scenario == faultKill {
						// Hold requests on the victim so that some are in
						// flight when it dies.
						victim.hold()
						require.Eventually(t, func() bool { return victim.active.Load() >= 4 }, 10*time.Second, time.Millisecond, "requests in flight on the victim")
						rep.heldAtKill = victim.active.Load()
						victim.kill()
						victim.release()
					} else {
						victim.mode.Store(mode503)
					}
					mu.Unlock()
				case threeQuarters:
					// Pause: let the requests in flight end, so that no
					// late failure ejects the victim after its restart.
					gate.RUnlock()
					gate.Lock()
					mu.Lock()
					rep.victimAttemptsDown = statsOf(bal, victim.addr).Picks - attemptsAt
					restartAt = time.Now()
					victim.mode.Store(modeOK)
					if scenario == faultKill {
						victim.restart()
					}
					require.
						// Readmission is on a timer (at most MaxEjectionTime):
						// let it happen before the last quarter, so that the
						// share measured below does not depend on the
						// machine's speed.
						Eventually(t, func() bool { return !statsOf(bal, victim.addr).Ejected }, 10*time.Second, time.Millisecond, "readmission")
					mu.Unlock()
					gate.Unlock()
					gate.RLock()
				}
				request(i)
				gate.RUnlock()
			}
		}()
	}
	wg.Wait()
	rep.elapsed = time.Since(start)
	rep.requests, rep.failed = n, int(failed.Load())
	st := tr.Stats()
	rep.retries, rep.retriesDenied = st.Retries, st.RetriesDenied
	rep.downTime = restartAt.Sub(faultAt)
	ej, _ := logs.ejections(victim.addr)
	rep.ejections = len(ej)
	for i, e := range ej {
		if i == 0 {
			rep.firstEjection = e.at.Sub(faultAt)
		}
		if e.at.Before(restartAt) {
			rep.ejectedTime += min(e.dur, restartAt.Sub(e.at))
		}
	}
	var total int64
	for i := range servedAfter {
		total += servedAfter[i].Load()
	}
	rep.shareAfter = float64(servedAfter[2].Load()) / float64(total)
	rep.idealShare = 1.0 / float64(len(bs))
	for _, s := range bal.Stats() {
		assert.Zero(t, s.InFlight, "every pick is done")
	}
	return rep
}

// TestTransportFault is the fault test: 5 backends, 10,000 GETs at
// concurrency 32; one backend is killed (listener and open connections
// closed) at 25% and restarted on its address at 75%, or answers 503 in
// between. No request may fail, not even those in flight at the kill;
// the failing backend is ejected, gets next to no traffic while down, and
// gets its share again once back.
func TestTransportFault(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		scenario faultScenario
	}{
		{"kill and restart", faultKill},
		{"503 for the middle half", fault503},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := runFault(t, tt.scenario, 10000, 32)
			t.Logf("%s: requests %d, failed %d, retried %d (denied %d), in flight at the kill %d, "+
				"attempts on the victim while down %d, ejections %d, first ejection %v after the fault, "+
				"ejected %v of %v down, share of the last quarter %.3f (ideal %.3f), elapsed %v",
				tt.name, rep.requests, rep.failed, rep.retries, rep.retriesDenied, rep.heldAtKill,
				rep.victimAttemptsDown, rep.ejections, rep.firstEjection.Round(time.Millisecond),
				rep.ejectedTime.Round(time.Millisecond), rep.downTime.Round(time.Millisecond),
				rep.shareAfter, rep.idealShare, rep.elapsed.Round(time.Millisecond))
			require.Zero(t, rep.failed, "no request fails")
			if tt.scenario == faultKill {
				assert.GreaterOrEqual(t, rep.heldAtKill, int64(4), "requests were in flight at the kill")
			}
			require.Positive(t, rep.ejections, "the victim was ejected")
			// After each readmission while down, at most ConsecutiveFailures
			// failures plus what the 32 workers had in flight reach the
			// victim before it is ejected again.
			assert.LessOrEqual(t, rep.victimAttemptsDown, uint64((rep.ejections+1)*(3+32)),
				"next to no traffic while down")
			assert.Less(t, rep.victimAttemptsDown, uint64(rep.requests/2/5), "less than the share it would get without ejection")
			assert.Greater(t, rep.shareAfter, rep.idealShare/2, "the victim gets its share again")
		})
	}
}
