package lb

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Health of backends comes from two sources:
//
//   - Passive outlier detection (WithOutlierDetection on the Balancer):
//     the results of real calls, reported by Pick.Done (the Transport does
//     it), eject a backend after consecutive failures. It costs nothing
//     and reacts within a few calls, but only to backends that get
//     traffic.
//   - Active health checks (StartHealthChecks): a periodic request to each
//     backend, which marks it down or up with Balancer.SetHealthy. It finds
//     a dead backend before a call is spent on it, and a recovered one
//     before an ejection runs out.
//
// Both show in Stats (Ejected, Ejections, Unhealthy) and are logged
// through the Balancer's logger (WithLogger).

// HealthCheck configures active health checks. Zero fields take the
// defaults.
type HealthCheck struct {
	// Path is the path requested on each backend; default "/healthz".
	Path string
	// Scheme is "http" (the default) or "https".
	Scheme string
	// Host is the Host header and TLS server name of the checks; default
	// the backend's address.
	Host string
	// Interval is the time between two checks of a backend that is
	// healthy; default 10s. Every backend is checked on its own schedule:
	// a check that hangs delays no other backend's.
	Interval time.Duration
	// UnhealthyInterval is the time between two checks of a backend that
	// is marked down, or ejected by outlier detection, so that a backend
	// that recovers is back within a second or so; default 500ms (or
	// Interval, if shorter).
	UnhealthyInterval time.Duration
	// Timeout bounds each check; default 2s.
	Timeout time.Duration
	// MaxUnhealthyPercent caps the share of the set that is out at once,
	// marked down or ejected together, from 1 to 100: a check that would
	// take more out leaves the backend in, and logs it (a failing health
	// endpoint, or the checker's own network, must not empty a fleet that
	// still serves). Default: the Balancer's OutlierDetection
	// MaxEjectionPercent, or 50.
	MaxUnhealthyPercent int
	// Probe, when not nil, replaces the HTTP check: it checks the backend
	// at addr and returns nil if it passes (the context carries Timeout).
	// For checks of another protocol, and for simulations.
	Probe func(ctx context.Context, addr string) error
	// UnhealthyThreshold is how many failed checks in a row mark a
	// backend down; default 3.
	UnhealthyThreshold int
	// HealthyThreshold is how many passed checks in a row mark a backend
	// that is down up again; default 2. A backend ejected by outlier
	// detection is readmitted by its first passed check (Envoy's rule).
	HealthyThreshold int
	// Healthy decides whether a response passes; default: a 2xx status.
	// The body is read (up to 4 KiB) and closed after Healthy returns.
	Healthy func(*http.Response) bool
	// Transport sends the checks; default an http.Transport like the
	// Transport's default base. Pass Transport.Base() to share its TLS
	// settings and per-backend transports (the checks, whose URLs name the
	// backends' addresses, keep connections of their own there).
	Transport http.RoundTripper
}

// maxConcurrentChecks caps the checks in flight at once.
const maxConcurrentChecks = 32

func (hc HealthCheck) withDefaults() (HealthCheck, error) {
	bad := func(format string, args ...any) (HealthCheck, error) {
		return hc, fmt.Errorf("%w: HealthCheck."+format, append([]any{ErrInvalidConfig}, args...)...)
	}
	switch {
	case hc.Path != "" && !strings.HasPrefix(hc.Path, "/"):
		return bad("Path is %q; it must start with '/'", hc.Path)
	case hc.Path != "" && !validRequestTarget(hc.Path):
		return bad("Path is %q; it must be a URL path (and query) with no spaces, control characters or fragment", hc.Path)
	case hc.Host != "" && (!validHostHeader(hc.Host) || hc.Host != strings.TrimSpace(hc.Host)):
		return bad("Host is %q; it must be a host or host:port", hc.Host)
	case hc.Scheme != "" && hc.Scheme != "http" && hc.Scheme != "https":
		return bad("Scheme is %q; it must be http or https", hc.Scheme)
	case hc.Interval < 0:
		return bad("Interval is %v; it must be > 0 (0 means 10s)", hc.Interval)
	case hc.UnhealthyInterval < 0:
		return bad("UnhealthyInterval is %v; it must be > 0 (0 means 500ms)", hc.UnhealthyInterval)
	case hc.MaxUnhealthyPercent < 0 || hc.MaxUnhealthyPercent > 100:
		return bad("MaxUnhealthyPercent is %d; it must be 1 to 100 (0 means the Balancer's cap)", hc.MaxUnhealthyPercent)
	case hc.Timeout < 0:
		return bad("Timeout is %v; it must be > 0 (0 means 2s)", hc.Timeout)
	case hc.UnhealthyThreshold < 0:
		return bad("UnhealthyThreshold is %d; it must be >= 1 (0 means 3)", hc.UnhealthyThreshold)
	case hc.HealthyThreshold < 0:
		return bad("HealthyThreshold is %d; it must be >= 1 (0 means 2)", hc.HealthyThreshold)
	}
	if hc.Path == "" {
		hc.Path = "/healthz"
	}
	if hc.Scheme == "" {
		hc.Scheme = "http"
	}
	if hc.Interval == 0 {
		hc.Interval = 10 * time.Second
	}
	if hc.UnhealthyInterval == 0 {
		hc.UnhealthyInterval = min(500*time.Millisecond, hc.Interval)
	}
	if hc.Timeout == 0 {
		hc.Timeout = 2 * time.Second
	}
	if hc.UnhealthyThreshold == 0 {
		hc.UnhealthyThreshold = 3
	}
	if hc.HealthyThreshold == 0 {
		hc.HealthyThreshold = 2
	}
	if hc.Healthy == nil {
		hc.Healthy = func(r *http.Response) bool { return r.StatusCode >= 200 && r.StatusCode <= 299 }
	}
	return hc, nil
}

// HealthChecker runs active health checks over a Balancer's backends,
// from StartHealthChecks until Close or the end of its context.
type HealthChecker struct {
	bal   *Balancer
	hc    HealthCheck
	own   *baseTransport // the default transport, closed at the end
	clock Clock
	ctx   context.Context
	stop  context.CancelFunc
	sem   chan struct{}

	mu      sync.Mutex
	closed  bool
	targets map[string]*healthTarget // by canonical address
	sync    Timer                    // the next look at the Balancer's set
	gen     uint64                   // the set's version last looked at
	running sync.WaitGroup           // checks in progress
	done    chan struct{}            // closed when Close has finished
}

// healthTarget is one backend's checks: its schedule and its run of
// results.
type healthTarget struct {
	addr           string
	passed, failed int
	timer          Timer
	next           time.Time // when timer fires
	gone           bool      // left the set
}

// StartHealthChecks checks every backend of bal now and then on its own
// schedule (hc.Interval, or hc.UnhealthyInterval while it is down or
// ejected), following the set as Update changes it: a backend that fails
// hc.UnhealthyThreshold checks in a row is marked down
// (bal.SetHealthy(addr, false)) and left out of the picker, unless that
// would take more than hc.MaxUnhealthyPercent of the set out; one that is
// down and passes hc.HealthyThreshold checks in a row is marked up; one
// that outlier detection ejected is readmitted by a passing check. Checks
// run on the Balancer's Clock (WithClock). They stop when ctx ends, when
// bal is closed, or at Close; Close waits for them. The errors wrap
// ErrInvalidConfig.
func StartHealthChecks(ctx context.Context, bal *Balancer, hc HealthCheck) (*HealthChecker, error) {
	if bal == nil {
		return nil, fmt.Errorf("%w: StartHealthChecks needs a Balancer, got nil", ErrInvalidConfig)
	}
	if ctx == nil {
		return nil, fmt.Errorf("%w: StartHealthChecks needs a context, got nil", ErrInvalidConfig)
	}
	hc, err := hc.withDefaults()
	if err != nil {
		return nil, err
	}
	h := &HealthChecker{
		bal: bal, hc: hc, clock: bal.opts.clock,
		sem:     make(chan struct{}, maxConcurrentChecks),
		targets: map[string]*healthTarget{},
		done:    make(chan struct{}),
	}
	if hc.Transport == nil && hc.Probe == nil {
		h.own = newBaseTransport(nil, 2, bal)
		h.hc.Transport = h.own
	}
	h.ctx, h.stop = context.WithCancel(ctx)
	h.mu.Lock()
	h.follow()
	h.mu.Unlock()
	// The end of ctx or of the balancer stops the checks too.
	go func() {
		select {
		case <-h.ctx.Done():
		case <-bal.closedCh:
		}
		h.Close()
	}()
	return h, nil
}

// Close stops the checks and waits until they have ended. Backends keep
// the health they had. It is safe to call more than once.
func (h *HealthChecker) Close() error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		<-h.done
		return nil
	}
	h.closed = true
	h.stop()
	if h.sync != nil {
		h.sync.Stop()
	}
	for _, t := range h.targets {
		h.unschedule(t)
	}
	h.mu.Unlock()
	h.running.Wait()
	if h.own != nil {
		h.own.CloseIdleConnections()
	}
	close(h.done)
	return nil
}

// follow starts checking the backends that joined the set and stops
// checking those that left, and looks again after a while. Called with
// h.mu held.
func (h *HealthChecker) follow() {
	if h.closed {
		return
	}
	s := h.bal.snap.Load()
	if s.gen != h.gen || len(h.targets) == 0 {
		h.gen = s.gen
		seen := make(map[string]bool, len(s.members))
		for _, be := range s.members {
			seen[be.key] = true
			if h.targets[be.key] == nil {
				t := &healthTarget{addr: be.addr}
				h.targets[be.key] = t
				h.schedule(t, 0)
			}
		}
		for k, t := range h.targets {
			if !seen[k] {
				t.gone = true
				h.unschedule(t)
				delete(h.targets, k)
			}
		}
	}
	// A backend that went out between its checks (ejected by outlier
	// detection, marked down by hand) is checked at the quicker interval
	// from now on, so that it is back soon after it recovers.
	soon := h.clock.Now().Add(h.hc.UnhealthyInterval)
	for _, be := range s.members {
		if t := h.targets[be.key]; t != nil && t.timer != nil && t.next.After(soon) && (be.Ejected() || !be.Healthy()) {
			h.unschedule(t)
			h.schedule(t, h.hc.UnhealthyInterval)
		}
	}
	h.sync = h.clock.AfterFunc(h.hc.UnhealthyInterval, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.follow()
	})
}

// schedule runs t's next check after d. Called with h.mu held.
func (h *HealthChecker) schedule(t *healthTarget, d time.Duration) {
	h.running.Add(1)
	t.next = h.clock.Now().Add(d)
	t.timer = h.clock.AfterFunc(d, func() {
		defer h.running.Done()
		h.checkTarget(t)
	})
}

// unschedule cancels t's next check, if it has not started. Called with
// h.mu held.
func (h *HealthChecker) unschedule(t *healthTarget) {
	if t.timer != nil && t.timer.Stop() {
		h.running.Done()
	}
	t.timer = nil
}

// checkTarget checks one backend, applies the result, and schedules its
// next check.
func (h *HealthChecker) checkTarget(t *healthTarget) {
	h.mu.Lock()
	stop := h.closed || t.gone
	h.mu.Unlock()
	if stop {
		return
	}
	select {
	case h.sem <- struct{}{}:
	case <-h.ctx.Done():
		return
	}
	passed := h.check(h.ctx, t.addr)
	<-h.sem
	if h.ctx.Err() != nil {
		return
	}
	be := h.bal.backend(t.addr)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed || t.gone || be == nil {
		return
	}
	if passed {
		t.passed, t.failed = t.passed+1, 0
	} else {
		t.passed, t.failed = 0, t.failed+1
	}
	switch {
	case passed && be.Ejected():
		h.bal.readmit(be, "health check passed")
	case passed && !be.Healthy() && t.passed >= h.hc.HealthyThreshold:
		_ = h.bal.SetHealthy(t.addr, true)
	case !passed && be.Healthy() && t.failed >= h.hc.UnhealthyThreshold:
		if !h.bal.markDown(be, h.hc.MaxUnhealthyPercent) {
			h.bal.opts.logger.Warn("lb: health check failing, but too many backends are out already; leaving it in",
				"addr", t.addr, "failed", t.failed)
		}
	}
	next := h.hc.Interval
	if !be.Healthy() || be.Ejected() {
		next = h.hc.UnhealthyInterval
	}
	h.schedule(t, next)
}

// check sends one health check to addr.
func (h *HealthChecker) check(ctx context.Context, addr string) bool {
	ctx, cancel := context.WithTimeout(ctx, h.hc.Timeout)
	defer cancel()
	if h.hc.Probe != nil {
		return h.hc.Probe(ctx, addr) == nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.hc.Scheme+"://"+addr+h.hc.Path, nil)
	if err != nil {
		return false
	}
	if h.hc.Host != "" {
		req.Host = h.hc.Host
	}
	resp, err := h.hc.Transport.RoundTrip(req)
	if err != nil {
		return false
	}
	ok := h.hc.Healthy(resp)
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	resp.Body.Close()
	return ok
}
