package lb

import (
	"context"
	"errors"
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
	// Interval is the time between two rounds of checks; default 10s. A
	// round waits for all its checks, so rounds never overlap.
	Interval time.Duration
	// Timeout bounds each check; default 2s.
	Timeout time.Duration
	// UnhealthyThreshold is how many failed checks in a row mark a
	// backend down; default 3.
	UnhealthyThreshold int
	// HealthyThreshold is how many passed checks in a row mark a backend
	// that is down up again; default 2.
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

// maxConcurrentChecks caps the checks of one round in flight at once.
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
	bal    *Balancer
	hc     HealthCheck
	own    *baseTransport // the default transport, closed at the end
	cancel context.CancelFunc
	done   chan struct{}
}

// healthState is a backend's run of check results.
type healthState struct{ passed, failed int }

// StartHealthChecks checks every backend of bal now and then every
// hc.Interval, following the set as Update changes it: a backend that
// fails hc.UnhealthyThreshold checks in a row is marked down
// (bal.SetHealthy(addr, false)), and left out of the picker; one that is
// down and passes hc.HealthyThreshold checks in a row is marked up. The
// checks stop when ctx ends, when bal is closed, or at Close; Close waits
// for them. The errors wrap ErrInvalidConfig.
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
	h := &HealthChecker{bal: bal, hc: hc, done: make(chan struct{})}
	if hc.Transport == nil {
		h.own = newBaseTransport(nil, 2, bal)
		h.hc.Transport = h.own
	}
	ctx, h.cancel = context.WithCancel(ctx)
	go h.run(ctx)
	return h, nil
}

// Close stops the checks and waits until they have ended. Backends keep
// the health they had. It is safe to call more than once.
func (h *HealthChecker) Close() error {
	h.cancel()
	<-h.done
	return nil
}

func (h *HealthChecker) run(ctx context.Context) {
	defer close(h.done)
	if h.own != nil {
		defer h.own.CloseIdleConnections()
	}
	tick := time.NewTicker(h.hc.Interval)
	defer tick.Stop()
	state := map[string]*healthState{}
	for h.round(ctx, state) {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// round checks every backend once and applies the results. It reports
// false when the checks must stop.
func (h *HealthChecker) round(ctx context.Context, state map[string]*healthState) bool {
	backends := h.bal.Backends()
	passed := make([]bool, len(backends))
	sem := make(chan struct{}, maxConcurrentChecks)
	var wg sync.WaitGroup
	for i, be := range backends {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int, addr string) {
			defer wg.Done()
			passed[i] = h.check(ctx, addr)
			<-sem
		}(i, be.Addr())
	}
	wg.Wait()
	if ctx.Err() != nil {
		return false
	}
	seen := make(map[string]bool, len(backends))
	for i, be := range backends {
		addr := be.Addr()
		seen[addr] = true
		st := state[addr]
		if st == nil {
			st = &healthState{}
			state[addr] = st
		}
		var change, healthy bool
		if passed[i] {
			st.passed, st.failed = st.passed+1, 0
			change, healthy = !be.Healthy() && st.passed >= h.hc.HealthyThreshold, true
		} else {
			st.passed, st.failed = 0, st.failed+1
			change, healthy = be.Healthy() && st.failed >= h.hc.UnhealthyThreshold, false
		}
		if !change {
			continue
		}
		if err := h.bal.SetHealthy(addr, healthy); errors.Is(err, ErrClosed) {
			return false
		}
	}
	for addr := range state {
		if !seen[addr] {
			delete(state, addr)
		}
	}
	return true
}

// check sends one health check to addr.
func (h *HealthChecker) check(ctx context.Context, addr string) bool {
	ctx, cancel := context.WithTimeout(ctx, h.hc.Timeout)
	defer cancel()
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
