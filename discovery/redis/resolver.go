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
	"github.com/go-lb/lb/internal/report"
)

// Resolver is an lb.Resolver over one service's instances in Redis (see
// the package documentation for the layout). Watch subscribes to the
// service's keyspace notifications and change channel, then reads every
// instance (ZRANGE of the index, MGET of the instance keys) and reports
// the set. Afterwards each notification fetches the instance it names
// again (GET of its key, ZSCORE of its ID in the index; notifications
// that arrive together are fetched in one round trip and reported as one
// set), and the whole service is read again every ResyncInterval, because
// Redis's pub/sub delivers at most once.
//
// Keyspace notifications: at each connection Watch reads the server's
// notify-keyspace-events and, unless LeaveConfig is set, adds the event
// classes it needs (K, g, $, x and e) with CONFIG SET, keeping every
// class already on. Where it cannot (CONFIG is disabled or not permitted,
// or LeaveConfig), it logs so once and goes on without them: writes made
// through Register are still seen at once through the change channel,
// but an instance that expires (a crashed process), or a key written by
// hand, is seen only at the next re-read.
//
// Failures never empty the set: when a request fails or the connection
// is lost (the subscription is pinged after RequestTimeout of silence,
// and given up after another), Watch drops the subscription, waits (100
// ms doubling up to MaxBackoff, with jitter), subscribes again and reads
// everything again. Only Redis answering that the service has no
// instances empties the set. A server that restarts without its data
// (no persistence) does answer so, until the services' registrations
// write themselves again at their next refresh.
//
// A value that is not a valid endpoint (see lb.ParseEndpoint) is skipped
// and logged at Warn, once per value; if the instance held a valid
// endpoint before, that endpoint stays until the key is deleted or gets a
// valid value. When two instances give the same address, the one with the
// smaller ID wins. The set is reported sorted by address, and never twice
// the same in a row.
//
// The Client must be a single server's (redis.NewClient, or
// redis.NewFailoverClient through Sentinel); Redis Cluster is not
// supported.
type Resolver struct {
	// Client is the Redis client to use; required. Watch does not close
	// it, and returns an error when it is closed.
	Client *goredis.Client
	// Service is the name of the service to follow, such as "api";
	// required: up to MaxNameLen bytes of UTF-8, with no whitespace or
	// control characters.
	Service string
	// Prefix starts every key and channel name; "" means DefaultPrefix
	// ("lb:"). It must be the one the services register with.
	Prefix string
	// Logger receives skipped values and retried failures (Warn), and
	// changes found only by a re-read (Info, or Debug when keyspace
	// notifications are known to be unavailable); nil logs nothing.
	Logger *slog.Logger
	// ResyncInterval is how often the whole service is read again, in
	// case a notification was lost; 0 means 30 s. Each wait is jittered
	// by up to 10%.
	ResyncInterval time.Duration
	// RequestTimeout bounds each request (it is the read and write
	// timeout of the requests Watch makes through Client), and how long
	// the subscription may stay silent before it is pinged; 0 means 5 s.
	RequestTimeout time.Duration
	// MaxBackoff is the longest wait between reconnections; 0 means 5 s.
	MaxBackoff time.Duration
	// LeaveConfig, when true, keeps Watch from changing the server's
	// notify-keyspace-events: keyspace notifications are used only if the
	// server already sends them.
	LeaveConfig bool
}

// Defaults of Resolver.
const (
	// DefaultResyncInterval is the default period of full re-reads.
	DefaultResyncInterval = 30 * time.Second
	// DefaultRequestTimeout is the default bound of one request.
	DefaultRequestTimeout = 5 * time.Second
	// DefaultMaxBackoff is the default longest wait between reconnections.
	DefaultMaxBackoff = 5 * time.Second
	// minBackoff is the first wait after a failure.
	minBackoff = 100 * time.Millisecond
	// mgetChunk is the most keys read by one MGET.
	mgetChunk = 1000
	// maxBatch is the most notifications coalesced into one fetch.
	maxBatch = 4096
)

func (r Resolver) withDefaults() (Resolver, error) {
	switch {
	case r.Client == nil:
		return r, fmt.Errorf("%w: redis.Resolver.Client is nil", lb.ErrInvalidConfig)
	case r.ResyncInterval < 0:
		return r, fmt.Errorf("%w: redis.Resolver.ResyncInterval is %v; it must be >= 0 (0 means %v)", lb.ErrInvalidConfig, r.ResyncInterval, DefaultResyncInterval)
	case r.RequestTimeout < 0:
		return r, fmt.Errorf("%w: redis.Resolver.RequestTimeout is %v; it must be >= 0 (0 means %v)", lb.ErrInvalidConfig, r.RequestTimeout, DefaultRequestTimeout)
	case r.MaxBackoff < 0:
		return r, fmt.Errorf("%w: redis.Resolver.MaxBackoff is %v; it must be >= 0 (0 means %v)", lb.ErrInvalidConfig, r.MaxBackoff, DefaultMaxBackoff)
	}
	if err := checkNames("redis.Resolver.Service", r.Service, "redis.Resolver.Prefix", r.Prefix); err != nil {
		return r, err
	}
	if r.ResyncInterval == 0 {
		r.ResyncInterval = DefaultResyncInterval
	}
	if r.RequestTimeout == 0 {
		r.RequestTimeout = DefaultRequestTimeout
	}
	if r.MaxBackoff == 0 {
		r.MaxBackoff = DefaultMaxBackoff
	}
	if r.Logger == nil {
		r.Logger = slog.New(slog.DiscardHandler)
	}
	return r, nil
}

// watchState is what one Watch call knows.
type watchState struct {
	Resolver
	layout
	cmds    *goredis.Client // Client, with RequestTimeout as its read and write timeouts
	db      int
	update  func([]lb.Endpoint) error
	entries map[string]lb.Endpoint // by instance ID
	bad     map[string]string      // malformed value last logged, by ID
	last    report.Last
	warned  bool    // that keyspace notifications are unavailable
	refused [2]bool // warned that the keyspace, channel subscription was refused
}

// Watch implements lb.Resolver. It returns an error wrapping
// lb.ErrInvalidConfig at once when r is invalid, ctx.Err() when ctx ends,
// the error of update when that is not nil, and an error wrapping
// redis.ErrClosed when the client is closed.
func (r Resolver) Watch(ctx context.Context, update func([]lb.Endpoint) error) error {
	r, err := r.withDefaults()
	if err != nil {
		return err
	}
	st := &watchState{
		Resolver: r,
		layout:   newLayout(r.Prefix, r.Service),
		cmds:     r.Client.WithTimeout(r.RequestTimeout),
		db:       r.Client.Options().DB,
		update:   update,
		entries:  map[string]lb.Endpoint{},
		bad:      map[string]string{},
	}
	failures := 0
	for {
		healthy, err := st.session(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var ue report.UpdateError
		if errors.As(err, &ue) {
			return ue.Err
		}
		if errors.Is(err, goredis.ErrClosed) {
			return fmt.Errorf("redis: the client was closed: %w", err)
		}
		if healthy {
			failures = 0
		}
		failures++
		wait := backoff.Jitter(backoff.Exp(failures, minBackoff, r.MaxBackoff))
		r.Logger.Warn("redis: following the service failed; keeping the last set and reconnecting",
			"service", r.Service, "err", err, "retry_in", wait)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// session subscribes, reads everything and follows notifications until
// something fails or ctx ends. healthy says that it got as far as
// reporting the service's state.
func (st *watchState) session(ctx context.Context) (healthy bool, err error) {
	if err := st.notifications(ctx); err != nil {
		return false, fmt.Errorf("configuring keyspace notifications: %w", err)
	}
	ps := st.Client.Subscribe(ctx) // no channels yet: no I/O
	// ctx may end while a read blocks: closing the subscription ends it.
	closed := make(chan struct{})
	stopClose := context.AfterFunc(ctx, func() { _ = ps.Close(); close(closed) })
	defer func() {
		if !stopClose() {
			<-closed
		}
		_ = ps.Close()
	}()
	if err := st.subscribe(ctx, ps); err != nil {
		return false, fmt.Errorf("subscribing: %w", err)
	}
	if _, err := st.readAll(ctx); err != nil {
		return false, fmt.Errorf("reading the service: %w", err)
	}

	msgs := make(chan any, maxBatch)
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		st.receive(ps, msgs, quit)
	}()
	defer func() {
		close(quit)
		_ = ps.Close()
		wg.Wait()
	}()

	resync := time.NewTimer(jitterUp(st.ResyncInterval))
	defer resync.Stop()
	for {
		select {
		case <-ctx.Done():
			return true, ctx.Err()
		case <-resync.C:
			changed, err := st.readAll(ctx)
			if err != nil {
				return true, fmt.Errorf("reading the service again: %w", err)
			}
			if changed {
				// Expected without notifications (warned of already);
				// worth knowing otherwise.
				level := slog.LevelInfo
				if st.warned || st.refused[0] {
					level = slog.LevelDebug
				}
				st.Logger.Log(ctx, level, "redis: a periodic re-read found changes that no notification announced",
					"service", st.Service)
			}
			resync.Reset(jitterUp(st.ResyncInterval))
		case m := <-msgs:
			if err := st.handle(ctx, m, msgs); err != nil {
				return true, err
			}
		}
	}
}
