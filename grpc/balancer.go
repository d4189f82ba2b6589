package lbgrpc

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"

	"github.com/go-lb/lb"
	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/balancer/base"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/resolver"
)

// grpcBalancer is the policy's balancer.Balancer: one per ClientConn. It
// keeps one lb.Balancer over the resolver's endpoints and one SubConn per
// address, tells lb which endpoints can take calls (SetHealthy), and
// reports the aggregate state and a picker to gRPC.
//
// gRPC calls its methods, and the SubConns' state listeners, from one
// goroutine at a time, so its fields need no lock; pickers read only what
// they were built with and the lb.Balancer, which is safe for concurrent
// use.
type grpcBalancer struct {
	cc     balancer.ClientConn
	target string
	opts   Options
	logger *slog.Logger

	cfg *config
	bal *lb.Balancer // nil until the first resolver update

	endpoints []*endpoint          // in the resolver's order
	byAddr    map[string]*endpoint // by lb address (the endpoint's first address)
	subConns  map[string]*subConn  // by dial address

	resolverErr error // the last resolver error, cleared by a good update
	connErr     error // the last connection error of any SubConn
	closed      bool
}

func newBalancer(cc balancer.ClientConn, target string, o Options) *grpcBalancer {
	logger := o.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &grpcBalancer{
		cc:       cc,
		target:   target,
		opts:     o,
		logger:   logger.With("policy", o.Name, "target", target),
		byAddr:   map[string]*endpoint{},
		subConns: map[string]*subConn{},
	}
}

// UpdateClientConnState takes a new endpoint set and config from gRPC.
func (b *grpcBalancer) UpdateClientConnState(s balancer.ClientConnState) error {
	if b.closed {
		return nil
	}
	cfg, _ := s.BalancerConfig.(*config)
	if cfg == nil {
		cfg, _ = parseConfig(nil) // the deprecated loadBalancingPolicy field: defaults
	}
	eps := b.lbEndpoints(s.ResolverState.Endpoints)
	if len(eps) == 0 {
		b.removeAll()
		b.resolverErr = errors.New("no usable endpoints (none, or none that lb accepts)")
		b.updateState()
		return balancer.ErrBadResolverState
	}

	bal := b.bal
	fresh := bal == nil || !cfg.balancerKey.same(b.cfg.balancerKey)
	if fresh {
		opts := append(cfg.balancerOptions(), lb.WithLogger(b.logger))
		var err error
		if bal, err = lb.NewBalancer(cfg.builder(), opts...); err != nil { // parseConfig checked the settings
			return b.badUpdate(err)
		}
	}
	if err := bal.Update(endpointsOf(eps)); err != nil {
		if fresh {
			bal.Close()
		}
		return b.badUpdate(err)
	}
	if fresh {
		if b.bal != nil {
			b.bal.Close() // in-flight picks still finish on their backends
		}
		b.bal = bal
		for _, e := range b.endpoints {
			e.healthy = true // a new Balancer's backends start healthy
		}
		if b.opts.OnBalancer != nil {
			b.opts.OnBalancer(b.target, bal)
		}
	}
	b.cfg = cfg
	b.resolverErr = nil
	b.reconcile(eps)
	b.updateState()
	return nil
}

// badUpdate handles an endpoint set lb refused: the previous set stays, and
// gRPC is asked to resolve again.
func (b *grpcBalancer) badUpdate(err error) error {
	b.logger.Error("lbgrpc: the resolver's endpoints were refused; keeping the previous set", "err", err)
	b.resolverErr = err
	if b.bal == nil {
		b.updateState()
	}
	return balancer.ErrBadResolverState
}

// reconcile makes the SubConns and the lb health marks follow the new
// endpoint set, which the lb.Balancer already has. With subsetting, the
// lb.Balancer keeps only this client's subset of eps: only those endpoints
// get SubConns, and the others are not followed at all.
func (b *grpcBalancer) reconcile(eps []*endpoint) {
	if members := b.bal.Backends(); len(members) < len(eps) {
		kept := make(map[string]bool, len(members))
		for _, be := range members {
			kept[be.Addr()] = true
		}
		eps = slices.DeleteFunc(eps, func(e *endpoint) bool { return !kept[e.ep.Addr] })
	}
	old := b.subConns
	b.subConns = make(map[string]*subConn, len(old))
	byAddr := make(map[string]*endpoint, len(eps))
	for _, e := range eps {
		if prev := b.byAddr[e.ep.Addr]; prev != nil {
			e.healthy = prev.healthy
		} else {
			e.healthy = true // lb adds a backend healthy
		}
		for i, s := range e.subs {
			if o := old[s.addr.Addr]; o != nil && o.addr.Equal(s.addr) {
				delete(old, s.addr.Addr)
				o.ep = e
				e.subs[i] = o
				b.subConns[s.addr.Addr] = o
				continue
			}
			b.newSubConn(s)
		}
		byAddr[e.ep.Addr] = e
	}
	for _, s := range old {
		s.sc.Shutdown()
	}
	for _, be := range b.bal.Backends() {
		if e := byAddr[be.Addr()]; e != nil {
			e.backend = be
		}
	}
	b.endpoints, b.byAddr = eps, byAddr
	for _, e := range eps {
		b.syncHealth(e)
	}
}

func (b *grpcBalancer) newSubConn(s *subConn) {
	sc, err := b.cc.NewSubConn([]resolver.Address{s.addr}, balancer.NewSubConnOptions{
		// gRPC's client-side health checking (the service config's
		// healthCheckConfig, with google.golang.org/grpc/health imported)
		// then drives the SubConn's state.
		HealthCheckEnabled: true,
		StateListener:      func(st balancer.SubConnState) { b.subConnState(s, st) },
	})
	if err != nil {
		b.logger.Error("lbgrpc: creating a SubConn failed", "addr", s.addr.Addr, "err", err)
		s.state = connectivity.TransientFailure
		return
	}
	s.sc, s.state = sc, connectivity.Idle
	b.subConns[s.addr.Addr] = s
	sc.Connect()
}

// subConnState follows one SubConn's state changes.
func (b *grpcBalancer) subConnState(s *subConn, st balancer.SubConnState) {
	if b.closed || b.subConns[s.addr.Addr] != s || st.ConnectivityState == connectivity.Shutdown {
		return
	}
	switch st.ConnectivityState {
	case connectivity.Idle:
		// lb keeps every backend connected: reconnect at once (gRPC's
		// backoff spaces the attempts).
		s.sc.Connect()
		if s.state != connectivity.TransientFailure {
			s.state = connectivity.Idle
		}
	case connectivity.Connecting:
		if s.state != connectivity.TransientFailure {
			s.state = connectivity.Connecting
		}
	case connectivity.Ready:
		s.state = connectivity.Ready
	case connectivity.TransientFailure:
		s.state = connectivity.TransientFailure
		b.connErr = st.ConnectionError
	}
	b.syncHealth(s.ep)
	b.updateState()
}

// syncHealth tells lb whether the endpoint can take calls: READY, or for
// the hash strategies not in TRANSIENT_FAILURE (a key waits for its own
// backend to connect rather than moving, as in gRPC's ring_hash).
func (b *grpcBalancer) syncHealth(e *endpoint) {
	st := e.state()
	up := st == connectivity.Ready || (b.cfg.hashed() && st != connectivity.TransientFailure)
	if up == e.healthy || e.backend == nil {
		return
	}
	if err := b.bal.SetHealthy(e.ep.Addr, up); err != nil {
		b.logger.Error("lbgrpc: marking a backend failed", "addr", e.ep.Addr, "err", err)
		return
	}
	e.healthy = up
}

// updateState reports the aggregate state and its picker to gRPC: READY
// when an endpoint is READY (the picker runs lb), else CONNECTING when one
// is connecting (calls wait), else TRANSIENT_FAILURE (calls fail, or wait
// when they are wait-for-ready).
func (b *grpcBalancer) updateState() {
	st := connectivity.TransientFailure
	for _, e := range b.endpoints {
		if s := e.state(); s == connectivity.Ready {
			st = s
			break
		} else if s == connectivity.Connecting {
			st = s
		}
	}
	var p balancer.Picker
	switch st {
	case connectivity.Ready:
		p = b.newPicker()
	case connectivity.Connecting:
		p = base.NewErrPicker(balancer.ErrNoSubConnAvailable)
	default:
		p = base.NewErrPicker(b.failure())
	}
	b.cc.UpdateState(balancer.State{ConnectivityState: st, Picker: p})
}

// failure is the error of a picker in TRANSIENT_FAILURE.
func (b *grpcBalancer) failure() error {
	switch {
	case b.resolverErr != nil && b.connErr != nil:
		return fmt.Errorf("%s: no backend is ready: last connection error: %v; resolver: %v", Name, b.connErr, b.resolverErr)
	case b.resolverErr != nil:
		return fmt.Errorf("%s: no backend is ready: resolver: %v", Name, b.resolverErr)
	case b.connErr != nil:
		return fmt.Errorf("%s: no backend is ready: last connection error: %v", Name, b.connErr)
	default:
		return fmt.Errorf("%s: no backend is ready", Name)
	}
}

func (b *grpcBalancer) newPicker() *picker {
	p := &picker{
		bal:     b.bal,
		header:  b.cfg.RequestHashHeader,
		fails:   b.cfg.failures,
		hashed:  b.cfg.hashed(),
		targets: make(map[*lb.Backend]target, len(b.endpoints)),
	}
	for _, e := range b.endpoints {
		if e.backend != nil {
			p.targets[e.backend] = target{sc: e.ready(), state: e.state()}
		}
	}
	return p
}

// ResolverError keeps the last good endpoint set: the error only shows in
// the failure of calls while no backend is ready.
func (b *grpcBalancer) ResolverError(err error) {
	if b.closed {
		return
	}
	b.resolverErr = err
	if b.bal == nil || len(b.endpoints) == 0 {
		b.updateState()
		return
	}
	for _, e := range b.endpoints {
		if e.state() != connectivity.TransientFailure {
			return
		}
	}
	b.updateState() // the error joins the failure's message
}

// UpdateSubConnState is not used: every SubConn has a StateListener.
func (b *grpcBalancer) UpdateSubConnState(sc balancer.SubConn, st balancer.SubConnState) {
	b.logger.Error("lbgrpc: unexpected UpdateSubConnState", "state", st.ConnectivityState)
}

// ExitIdle connects the SubConns that are idle.
func (b *grpcBalancer) ExitIdle() {
	for _, s := range b.subConns {
		if s.state == connectivity.Idle {
			s.sc.Connect()
		}
	}
}

// removeAll shuts every SubConn down and empties the lb.Balancer.
func (b *grpcBalancer) removeAll() {
	for _, s := range b.subConns {
		s.sc.Shutdown()
	}
	clear(b.subConns)
	clear(b.byAddr)
	b.endpoints = nil
	if b.bal != nil {
		if err := b.bal.Update(nil); err != nil {
			b.logger.Error("lbgrpc: emptying the balancer failed", "err", err)
		}
	}
}

// Close shuts the SubConns down and closes the lb.Balancer.
func (b *grpcBalancer) Close() {
	if b.closed {
		return
	}
	b.closed = true
	for _, s := range b.subConns {
		s.sc.Shutdown()
	}
	if b.bal != nil {
		b.bal.Close()
	}
}
