package redis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/go-lb/lb"
	"github.com/go-lb/lb/internal/backoff"
)

// RegisterOptions tunes Register. The zero value means the defaults.
type RegisterOptions struct {
	// Prefix starts every key and channel name; "" means DefaultPrefix. It
	// must be the one the resolvers use.
	Prefix string
	// ID names the instance within the service; "" means the endpoint's
	// address. Two live instances must not share an ID.
	ID string
	// TTL is how long the instance outlives a process that dies without
	// calling Close; 0 means 10 s, and it must be at least MinTTL. The
	// registration refreshes it every TTL/3.
	TTL time.Duration
	// Logger receives failed refreshes (Warn) and instances written again
	// after they were lost (Info); nil logs nothing.
	Logger *slog.Logger
}

const (
	// DefaultTTL is the default TTL of Register.
	DefaultTTL = 10 * time.Second
	// MinTTL is the shortest TTL Register accepts.
	MinTTL = 100 * time.Millisecond
)

// Registration is a service instance kept in Redis by Register.
type Registration struct {
	cli    *goredis.Client
	keys   []string // instance key, index
	args   []any    // ID, value, TTL in ms, channel
	every  time.Duration
	logger *slog.Logger

	cancel context.CancelFunc
	done   chan struct{}

	closeOnce sync.Once
	closeErr  error
}

// putScript writes an instance: KEYS[1] is its key, KEYS[2] the index;
// ARGV[1] its ID, ARGV[2] its value, ARGV[3] the TTL in milliseconds,
// ARGV[4] the change channel. When the key already holds the value only
// its TTL is renewed (no set notification, no announcement); otherwise
// the value is written and the ID announced. Either way the ID's score in
// the index becomes its expiry time (server time, in Unix milliseconds),
// and IDs whose time has passed are pruned from the index. It returns 1
// when it wrote the value.
var putScript = goredis.NewScript(`
local ttl = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local written = 0
if redis.call('GET', KEYS[1]) == ARGV[2] then
	redis.call('PEXPIRE', KEYS[1], ttl)
else
	redis.call('SET', KEYS[1], ARGV[2], 'PX', ttl)
	written = 1
end
redis.call('ZADD', KEYS[2], now + ttl, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. now)
if written == 1 then
	redis.call('PUBLISH', ARGV[4], ARGV[1])
end
return written
`)

// deleteScript removes an instance (same KEYS and ARGV as putScript)
// unless its key holds another value: another process registered the same
// ID since. It returns 1 when it removed it.
var deleteScript = goredis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if cur and cur ~= ARGV[2] then
	return 0
end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('PUBLISH', ARGV[4], ARGV[1])
return 1
`)

// Register writes ep (as lb.EncodeEndpoint encodes it) as an instance of
// service, with a TTL, lists it in the service's index, announces it, and
// refreshes it every TTL/3 in a goroutine until Close. Close removes it
// and announces that; a process that dies without Close stops refreshing,
// and Redis expires the key after its TTL (resolvers see the expiry
// through keyspace notifications, or at their next re-read).
//
// When a refresh finds the key gone (the server restarted without its
// data, or was unreachable for longer than the TTL), it writes the
// instance again and announces it. A failed refresh is logged and retried
// with backoff, more often than every TTL/3, until it succeeds or Close
// is called.
//
// ctx bounds the first write only: Register returns its error (and
// nothing is left behind). Errors for bad arguments wrap
// lb.ErrInvalidConfig or lb.ErrInvalidEndpoint and name the field.
func Register(ctx context.Context, client *goredis.Client, service string, ep lb.Endpoint, opts RegisterOptions) (*Registration, error) {
	if client == nil {
		return nil, fmt.Errorf("%w: redis.Register: the client is nil", lb.ErrInvalidConfig)
	}
	if err := checkNames("redis.Register: the service name", service, "redis.RegisterOptions.Prefix", opts.Prefix); err != nil {
		return nil, err
	}
	if opts.TTL != 0 && opts.TTL < MinTTL {
		return nil, fmt.Errorf("%w: redis.RegisterOptions.TTL is %v; it must be at least %v (0 means %v)", lb.ErrInvalidConfig, opts.TTL, MinTTL, DefaultTTL)
	}
	val, err := lb.EncodeEndpoint(ep)
	if err != nil {
		return nil, err
	}
	id := opts.ID
	if id == "" {
		id = ep.Addr
	}
	if err := validName(id); err != nil {
		return nil, fmt.Errorf("%w: redis.RegisterOptions.ID %v", lb.ErrInvalidConfig, err)
	}
	ttl := opts.TTL
	if ttl == 0 {
		ttl = DefaultTTL
	}
	l := newLayout(opts.Prefix, service)
	r := &Registration{
		cli:    client,
		keys:   []string{l.instanceKey(id), l.index()},
		args:   []any{id, string(val), ttl.Milliseconds(), l.channel()},
		every:  ttl / 3,
		logger: opts.Logger,
		done:   make(chan struct{}),
	}
	if r.logger == nil {
		r.logger = slog.New(slog.DiscardHandler)
	}
	if err := putScript.Run(ctx, client, r.keys, r.args...).Err(); err != nil {
		_ = r.remove(ctx, time.Second) // in case the write was applied but its reply lost
		return nil, fmt.Errorf("redis: registering %q: %w", r.keys[0], err)
	}
	rctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go r.refresh(rctx)
	return r, nil
}

// refresh renews the instance until ctx ends or the client is closed.
func (r *Registration) refresh(ctx context.Context) {
	defer close(r.done)
	cli := r.cli.WithTimeout(min(r.every, DefaultRequestTimeout)) // a refresh later than TTL/3 is of no use
	wait := jitterUp(r.every)
	for failures := 0; ; {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		rctx, cancel := context.WithTimeout(ctx, r.every)
		written, err := putScript.Run(rctx, cli, r.keys, r.args...).Int()
		cancel()
		switch {
		case ctx.Err() != nil:
			return
		case err == nil:
			if written == 1 {
				r.logger.Info("redis: the registered instance was gone; wrote it again", "key", r.keys[0])
			}
			failures = 0
			wait = jitterUp(r.every)
		case isClosed(err):
			r.logger.Warn("redis: the client was closed; the registered instance expires after its TTL", "key", r.keys[0])
			return
		default:
			failures++
			wait = backoff.Jitter(backoff.Exp(failures, min(minBackoff, r.every), r.every))
			r.logger.Warn("redis: refreshing the registered instance failed", "key", r.keys[0],
				"attempt", failures, "err", err, "retry_in", wait)
		}
	}
}

// remove runs deleteScript, bounded by timeout even when ctx has ended.
func (r *Registration) remove(ctx context.Context, timeout time.Duration) error {
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	return deleteScript.Run(dctx, r.cli, r.keys, r.args...).Err()
}

// Done returns a channel closed when the registration's goroutine has
// ended: after Close, or when the client was closed (the instance then
// expires after its TTL).
func (r *Registration) Done() <-chan struct{} { return r.done }

// Close stops refreshing the instance, removes it from Redis and
// announces that (unless another process has registered the same ID
// since). It waits for the registration's goroutine to end, and is safe
// to call more than once. When the removal fails (Redis unreachable, the
// client closed), the instance still goes when its TTL runs out; the
// error says so.
func (r *Registration) Close() error {
	r.closeOnce.Do(func() {
		r.cancel()
		<-r.done
		if err := r.remove(context.Background(), DefaultRequestTimeout); err != nil {
			r.closeErr = fmt.Errorf("redis: removing %q (it expires after its TTL): %w", r.keys[0], err)
		}
	})
	return r.closeErr
}

func isClosed(err error) bool { return errors.Is(err, goredis.ErrClosed) }
