package lbgrpc

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/go-lb/lb"
	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

type hashKeyContextKey struct{}

// WithHashKey returns a context whose calls carry key as their hash key:
// the hash strategies (ring, maglev) send every call with the same key to
// the same backend. It takes precedence over the requestHashHeader of the
// config; an empty key means none.
func WithHashKey(ctx context.Context, key string) context.Context {
	return context.WithValue(ctx, hashKeyContextKey{}, key)
}

// picker is the policy's picker while some backend is READY: a pick is a
// pick of the lb.Balancer, mapped to the backend's READY SubConn.
type picker struct {
	bal     *lb.Balancer
	header  string  // requestHashHeader, lower case; "" for none
	fails   codeSet // codes charged to the backend
	hashed  bool    // the strategy hashes keys
	targets map[*lb.Backend]target
}

// target is one backend's SubConn as of the picker's build.
type target struct {
	sc    balancer.SubConn // a READY SubConn of the endpoint; nil if none
	state connectivity.State
}

// key returns the call's hash key: the context's (WithHashKey), else the
// values of the request hash header joined by "," (as gRFC A76 does),
// else "".
func (p *picker) key(ctx context.Context) string {
	if k, _ := ctx.Value(hashKeyContextKey{}).(string); k != "" {
		return k
	}
	if p.header == "" {
		return ""
	}
	md, _ := metadata.FromOutgoingContext(ctx)
	return strings.Join(md.Get(p.header), ",")
}

// Pick implements balancer.Picker.
func (p *picker) Pick(info balancer.PickInfo) (balancer.PickResult, error) {
	key := p.key(info.Ctx)
	pk, err := p.bal.Pick(key)
	if err != nil {
		return balancer.PickResult{}, pickError(err)
	}
	t, ok := p.targets[pk.Backend]
	if t.sc == nil {
		pk.Cancel()
		if ok && p.hashed && key != "" && t.state == connectivity.Connecting {
			// The key's backend is connecting: wait for it rather than
			// send the call where the key does not belong.
			return balancer.PickResult{}, balancer.ErrNoSubConnAvailable
		}
		// Not READY (lb uses every backend when all that are up are
		// ejected), or newer than this picker: go down lb's order to a
		// READY one.
		if pk, t, err = p.next(key, pk.Backend); err != nil {
			return balancer.PickResult{}, err
		}
	}
	ctx, start := info.Ctx, time.Now()
	return balancer.PickResult{SubConn: t.sc, Done: func(di balancer.DoneInfo) {
		p.done(ctx, pk, di, time.Since(start))
	}}, nil
}

// next picks the first READY backend after first in lb's order for key
// (Balancer.PickNext), or asks gRPC to wait for the next picker.
func (p *picker) next(key string, first *lb.Backend) (lb.Pick, target, error) {
	var buf [8]*lb.Backend
	tried := append(buf[:0], first)
	for range len(p.targets) {
		pk, err := p.bal.PickNext(key, tried)
		if err != nil {
			break
		}
		if t := p.targets[pk.Backend]; t.sc != nil {
			return pk, t, nil
		}
		pk.Cancel()
		tried = append(tried, pk.Backend)
	}
	return lb.Pick{}, target{}, balancer.ErrNoSubConnAvailable
}

// pickError maps an lb pick error to gRPC's picker conventions.
func pickError(err error) error {
	if errors.Is(err, lb.ErrClosed) {
		// The config replaced the lb.Balancer; its picker follows.
		return balancer.ErrNoSubConnAvailable
	}
	return err // Unavailable for fail-fast calls; wait-for-ready calls wait
}

// outcome is how a finished call is reported to lb.
type outcome int

const (
	// uncharged: Pick.Cancel, neither a success nor a failure.
	uncharged outcome = iota
	// success: Pick.Done(nil, latency).
	success
	// failure: Pick.Done(err, latency), which may eject the backend.
	failure
)

func (o outcome) String() string {
	return [...]string{"uncharged", "success", "failure"}[o]
}

// done ends a pick with the call's outcome.
func (p *picker) done(ctx context.Context, pk lb.Pick, di balancer.DoneInfo, latency time.Duration) {
	switch classify(ctx, di, p.fails) {
	case success:
		pk.Done(nil, latency)
	case failure:
		pk.Done(di.Err, latency)
	default:
		pk.Cancel()
	}
}

// classify decides whose outcome a finished call is (the package
// documentation has the table):
//
//   - no error and nothing sent: gRPC found the SubConn not ready and
//     picks again; uncharged.
//   - no error: success.
//   - the caller's context is done, or its deadline has passed: the
//     caller ended the call; uncharged, whatever the code.
//   - CANCELLED: the call was cancelled on the client's side (its
//     ClientConn closing) or by the server on purpose; uncharged.
//   - a code in fails (UNAVAILABLE and DEADLINE_EXCEEDED unless the config
//     names others): the backend failed; failure.
//   - any other code (INVALID_ARGUMENT, NOT_FOUND, ...): the backend
//     answered, with the application's error; success.
func classify(ctx context.Context, di balancer.DoneInfo, fails codeSet) outcome {
	if di.Err == nil {
		if !di.BytesSent {
			return uncharged
		}
		return success
	}
	if ctx.Err() != nil {
		return uncharged
	}
	if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
		return uncharged
	}
	code := status.Code(di.Err)
	switch {
	case code == codes.Canceled:
		return uncharged
	case fails.has(code):
		return failure
	default:
		return success
	}
}
