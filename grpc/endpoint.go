package lbgrpc

import (
	"github.com/go-lb/lb"
	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/experimental/balancer/weight"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/ringhash"
)

// endpoint is one resolver.Endpoint: one lb backend, with a SubConn per
// address. Its lb address is its first address (as for gRPC's ring_hash,
// gRFC A61), its weight and hash key come from its attributes.
type endpoint struct {
	ep      lb.Endpoint
	subs    []*subConn
	backend *lb.Backend
	healthy bool // as last told to the lb.Balancer
}

// subConn is one address's SubConn and its state. state is "sticky" in
// TRANSIENT_FAILURE (as pick_first's, gRFC A62): after a failed attempt it
// stays TRANSIENT_FAILURE through the IDLE and CONNECTING of the retries,
// until the SubConn is READY again.
type subConn struct {
	addr  resolver.Address
	sc    balancer.SubConn
	state connectivity.State
	ep    *endpoint
}

// lbEndpoints turns the resolver's endpoints into the new endpoint set:
// endpoints without a usable address, or whose address or hash key repeats
// an earlier one, are skipped with a log line.
func (b *grpcBalancer) lbEndpoints(in []resolver.Endpoint) []*endpoint {
	out := make([]*endpoint, 0, len(in))
	seen := map[string]bool{}  // lb addresses and hash names
	dials := map[string]bool{} // dial addresses
	for _, rep := range in {
		if len(rep.Addresses) == 0 {
			continue
		}
		e := &endpoint{ep: lb.Endpoint{
			Addr:    rep.Addresses[0].Addr,
			Weight:  endpointWeight(rep),
			HashKey: ringhash.HashKey(rep),
		}}
		if err := e.ep.Validate(); err != nil {
			b.logger.Warn("lbgrpc: skipping an endpoint lb cannot use", "err", err)
			continue
		}
		name := e.ep.HashKey
		if name == "" {
			name = e.ep.Addr
		}
		if seen[e.ep.Addr] || seen[name] {
			b.logger.Warn("lbgrpc: skipping an endpoint whose address or hash key repeats an earlier one", "addr", e.ep.Addr, "hash_key", e.ep.HashKey)
			continue
		}
		seen[e.ep.Addr], seen[name] = true, true
		for _, a := range rep.Addresses {
			if dials[a.Addr] {
				continue
			}
			dials[a.Addr] = true
			e.subs = append(e.subs, &subConn{addr: a, ep: e})
		}
		out = append(out, e)
	}
	return out
}

// endpointWeight is the endpoint's weight attribute (set by xDS, or by a
// resolver through google.golang.org/grpc/experimental/balancer/weight),
// capped at lb.MaxWeight; unset means 1.
func endpointWeight(e resolver.Endpoint) int {
	w := weight.FromEndpoint(e).Weight
	if w == 0 {
		return 1
	}
	return int(min(w, lb.MaxWeight))
}

func endpointsOf(eps []*endpoint) []lb.Endpoint {
	out := make([]lb.Endpoint, len(eps))
	for i, e := range eps {
		out[i] = e.ep
	}
	return out
}

// state is the endpoint's state: READY if one of its SubConns is, else
// CONNECTING if one is connecting (or idle, about to), else
// TRANSIENT_FAILURE.
func (e *endpoint) state() connectivity.State {
	st := connectivity.TransientFailure
	for _, s := range e.subs {
		switch s.state {
		case connectivity.Ready:
			return connectivity.Ready
		case connectivity.Connecting, connectivity.Idle:
			st = connectivity.Connecting
		}
	}
	return st
}

// ready returns the endpoint's first READY SubConn, or nil.
func (e *endpoint) ready() balancer.SubConn {
	for _, s := range e.subs {
		if s.state == connectivity.Ready {
			return s.sc
		}
	}
	return nil
}
