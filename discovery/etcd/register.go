package etcd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/go-lb/lb"
	"github.com/go-lb/lb/internal/backoff"
)

// RegisterOptions tunes Register. The zero value means the defaults.
type RegisterOptions struct {
	// TTL is the lease's time to live: how long the key outlives a service
	// that dies without calling Close. 0 means 10 s; it is rounded up to
	// whole seconds, and etcd may raise a very short TTL to its minimum
	// (about 1.5 election timeouts).
	TTL time.Duration
	// Logger receives lost leases and failed re-registrations (Warn); nil
	// logs nothing.
	Logger *slog.Logger
}

// DefaultTTL is the default lease TTL of Register.
const DefaultTTL = 10 * time.Second

// Registration is a service's endpoint kept in etcd by Register.
type Registration struct {
	cli    *clientv3.Client
	key    string
	val    string
	ttl    int64 // seconds
	logger *slog.Logger

	cancel context.CancelFunc
	done   chan struct{}

	mu    sync.Mutex
	lease clientv3.LeaseID

	closeOnce sync.Once
	closeErr  error
}

// Register puts ep (as EncodeEndpoint writes it) at key, attached to a
// lease with the given TTL, and keeps the lease alive in a goroutine until
// Close. Close revokes the lease, which deletes the key at once; a process
// that dies without Close stops renewing the lease, and etcd deletes the
// key when the TTL runs out, so resolvers drop the endpoint then.
//
// If the lease is lost while the process lives (etcd was unreachable for
// longer than the TTL), Register's goroutine grants a new lease and puts
// the key again, with backoff, until it succeeds or Close is called.
//
// ctx bounds the first registration only: Register returns its error (the
// key is not left behind). The usual key is the resolver's prefix followed
// by the address: "/services/api/10.0.0.1:8080".
func Register(ctx context.Context, cli *clientv3.Client, key string, ep lb.Endpoint, opts RegisterOptions) (*Registration, error) {
	if cli == nil {
		return nil, fmt.Errorf("%w: etcd.Register: the client is nil", lb.ErrInvalidConfig)
	}
	if key == "" {
		return nil, fmt.Errorf("%w: etcd.Register: the key is empty", lb.ErrInvalidConfig)
	}
	if opts.TTL < 0 {
		return nil, fmt.Errorf("%w: etcd.RegisterOptions.TTL is %v; it must be >= 0 (0 means %v)", lb.ErrInvalidConfig, opts.TTL, DefaultTTL)
	}
	val, err := EncodeEndpoint(ep)
	if err != nil {
		return nil, err
	}
	ttl := opts.TTL
	if ttl == 0 {
		ttl = DefaultTTL
	}
	r := &Registration{
		cli:    cli,
		key:    key,
		val:    string(val),
		ttl:    int64(math.Ceil(ttl.Seconds())),
		logger: opts.Logger,
		done:   make(chan struct{}),
	}
	if r.logger == nil {
		r.logger = slog.New(slog.DiscardHandler)
	}
	lease, err := r.grantAndPut(ctx)
	if err != nil {
		return nil, err
	}
	r.lease = lease
	kctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go r.keepAlive(kctx, lease)
	return r, nil
}

// grantAndPut grants a lease and puts the key under it. On failure it
// revokes the lease it granted, if any.
func (r *Registration) grantAndPut(ctx context.Context) (clientv3.LeaseID, error) {
	g, err := r.cli.Grant(ctx, r.ttl)
	if err != nil {
		return 0, fmt.Errorf("etcd: granting a lease for %q: %w", r.key, err)
	}
	if _, err := r.cli.Put(ctx, r.key, r.val, clientv3.WithLease(g.ID)); err != nil {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		_, _ = r.cli.Revoke(rctx, g.ID)
		return 0, fmt.Errorf("etcd: putting %q: %w", r.key, err)
	}
	return g.ID, nil
}

// keepAlive renews the lease until ctx ends or the client is closed, and
// registers again when the lease is lost.
func (r *Registration) keepAlive(ctx context.Context, lease clientv3.LeaseID) {
	defer close(r.done)
	for {
		ch, err := r.cli.KeepAlive(ctx, lease)
		if err == nil {
			for range ch { // drain: the client warns when responses pile up
			}
		}
		if ctx.Err() != nil || r.cli.Ctx().Err() != nil {
			return
		}
		r.logger.Warn("etcd: registration lease lost; registering again", "key", r.key, "lease", int64(lease), "err", err)
		for attempt := 1; ; attempt++ {
			t := time.NewTimer(backoff.Jitter(backoff.Exp(attempt, minBackoff, DefaultMaxBackoff)))
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			if r.cli.Ctx().Err() != nil {
				return
			}
			gctx, cancel := context.WithTimeout(ctx, DefaultRequestTimeout)
			lease, err = r.grantAndPut(gctx)
			cancel()
			if err == nil {
				r.mu.Lock()
				r.lease = lease
				r.mu.Unlock()
				break
			}
			r.logger.Warn("etcd: registering again failed", "key", r.key, "attempt", attempt, "err", err)
		}
	}
}

// Done returns a channel closed when the registration's goroutine has
// ended: after Close, or when the client was closed (the key then expires
// with its lease).
func (r *Registration) Done() <-chan struct{} { return r.done }

// Close stops renewing the lease and revokes it, which deletes the key. It
// waits for the registration's goroutine to end, and is safe to call more
// than once. When the revoke fails (etcd unreachable, the client closed),
// the key still goes when the lease's TTL runs out; the error says so.
func (r *Registration) Close() error {
	r.closeOnce.Do(func() {
		r.cancel()
		<-r.done
		r.mu.Lock()
		lease := r.lease
		r.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), DefaultRequestTimeout)
		defer cancel()
		// A lease that is not found is gone with its key: etcd expired it,
		// or a re-registration cut short by Close revoked it itself.
		if _, err := r.cli.Revoke(ctx, lease); err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
			r.closeErr = fmt.Errorf("etcd: revoking the lease of %q (the key expires after its TTL): %w", r.key, err)
		}
	})
	return r.closeErr
}
