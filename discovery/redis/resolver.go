package redis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sort"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/go-lb/lb"
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
	last    []lb.Endpoint
	sent    bool
	warned  bool    // that keyspace notifications are unavailable
	refused [2]bool // warned that the keyspace, channel subscription was refused
}

// updateError carries the error of update out of a session.
type updateError struct{ err error }

func (e updateError) Error() string { return e.err.Error() }

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
		var ue updateError
		if errors.As(err, &ue) {
			return ue.err
		}
		if errors.Is(err, goredis.ErrClosed) {
			return fmt.Errorf("redis: the client was closed: %w", err)
		}
		if healthy {
			failures = 0
		}
		failures++
		wait := jitter(backoff(failures, minBackoff, r.MaxBackoff))
		r.Logger.Warn("redis: lost the service; keeping the last set and reconnecting",
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

// notifications makes sure the server sends the keyspace events Watch
// uses, or logs once that it does not. Only a failure to reach the server
// is an error.
func (st *watchState) notifications(ctx context.Context) error {
	rctx, cancel := context.WithTimeout(ctx, st.RequestTimeout)
	defer cancel()
	cur, err := st.cmds.ConfigGet(rctx, "notify-keyspace-events").Result()
	if err != nil && !isServerError(err) {
		return err
	}
	var missing string
	if err == nil {
		missing = missingEventClasses(cur["notify-keyspace-events"])
		if missing == "" {
			return nil
		}
		if !st.LeaveConfig {
			flags := cur["notify-keyspace-events"] + missing
			err = st.cmds.ConfigSet(rctx, "notify-keyspace-events", flags).Err()
			if err == nil {
				st.Logger.Info("redis: enabled keyspace notifications", "notify-keyspace-events", flags)
				return nil
			}
			if !isServerError(err) {
				return err
			}
		}
	}
	if !st.warned {
		st.warned = true
		st.Logger.Warn("redis: keyspace notifications are off; expired instances and keys written by hand are seen only at each re-read",
			"service", st.Service, "missing_classes", missing, "leave_config", st.LeaveConfig, "err", err, "resync_interval", st.ResyncInterval)
	}
	return nil
}

// neededClasses are the notify-keyspace-events classes Watch uses: K
// (keyspace channels), g (del, rename, ...), $ (set), x (expired) and e
// (evicted). A includes the last four.
const neededClasses = "Kg$xe"

// missingEventClasses returns the classes of neededClasses that flags
// lacks.
func missingEventClasses(flags string) string {
	var missing []byte
	for i := 0; i < len(neededClasses); i++ {
		c := neededClasses[i]
		if containsByte(flags, c) || (c != 'K' && containsByte(flags, 'A')) {
			continue
		}
		missing = append(missing, c)
	}
	return string(missing)
}

func containsByte(s string, c byte) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			return true
		}
	}
	return false
}

// isServerError reports whether err is an error reply of the server
// (such as "ERR unknown command" or a NOPERM), not a failure to reach it.
func isServerError(err error) bool {
	var re goredis.Error
	return errors.As(err, &re) && !errors.Is(err, goredis.ErrClosed)
}

// subscribe subscribes ps to the service's keyspace notifications and
// channel, and waits for each confirmation: from then on no change is
// missed, so reading everything afterwards leaves no gap. A subscription
// the server refuses (an ACL user without access to the channel) is
// logged once and left out: the re-reads stand in for it.
func (st *watchState) subscribe(ctx context.Context, ps *goredis.PubSub) error {
	sctx, cancel := context.WithTimeout(ctx, st.RequestTimeout)
	defer cancel()
	subs := []struct {
		kind      string
		name      string
		sub       func(context.Context, ...string) error
		unsub     func(context.Context, ...string) error
		refusedOf *bool
	}{
		{"psubscribe", st.keyspacePattern(st.db), ps.PSubscribe, ps.PUnsubscribe, &st.refused[0]},
		{"subscribe", st.channel(), ps.Subscribe, ps.Unsubscribe, &st.refused[1]},
	}
	for _, s := range subs {
		if err := s.sub(sctx, s.name); err != nil {
			return err
		}
		err := awaitConfirmation(sctx, ps, s.kind, s.name, st.RequestTimeout)
		if err != nil && isServerError(err) {
			if !*s.refusedOf {
				*s.refusedOf = true
				st.Logger.Warn("redis: the server refused a subscription; relying on re-reads for what it would announce",
					"service", st.Service, "channel", s.name, "err", err, "resync_interval", st.ResyncInterval)
			}
			// Forget it, so that it is not subscribed again; the
			// server's confirmation is read and dropped by receive.
			err = s.unsub(sctx, s.name)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// awaitConfirmation reads ps until the subscription of kind to name is
// confirmed, or an error.
func awaitConfirmation(ctx context.Context, ps *goredis.PubSub, kind, name string, timeout time.Duration) error {
	for {
		m, err := ps.ReceiveTimeout(ctx, timeout)
		if err != nil {
			return err
		}
		if s, ok := m.(*goredis.Subscription); ok && s.Kind == kind && s.Channel == name {
			return nil
		}
		// A notification, or the confirmation of an unsubscription: the
		// read that follows the subscriptions sees every change.
	}
}

// receive hands every message of ps to msgs, and the error that ends the
// subscription last, until quit is closed. It pings the server after
// RequestTimeout without a message, and gives up after another.
func (st *watchState) receive(ps *goredis.PubSub, msgs chan<- any, quit <-chan struct{}) {
	pinged := false
	for {
		m, err := ps.ReceiveTimeout(context.Background(), st.RequestTimeout)
		if err != nil {
			if isTimeout(err) && !pinged {
				pctx, cancel := context.WithTimeout(context.Background(), st.RequestTimeout)
				err = ps.Ping(pctx)
				cancel()
				if err == nil {
					pinged = true
					continue
				}
			}
			if isTimeout(err) {
				err = fmt.Errorf("the subscription did not answer a ping in %v: %w", st.RequestTimeout, err)
			}
			select {
			case msgs <- err:
			case <-quit:
			}
			return
		}
		pinged = false
		if _, ok := m.(*goredis.Message); !ok {
			continue // pongs, subscription confirmations
		}
		select {
		case msgs <- m:
		case <-quit:
			return
		}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// handle applies m and every message already waiting in msgs: it fetches
// the instances they name in one round trip (or reads everything when one
// asks to), then reports the set if it changed.
func (st *watchState) handle(ctx context.Context, m any, msgs <-chan any) error {
	dirty := map[string]struct{}{}
	all := false
	ksPrefix := st.keyspacePrefix(st.db)
	for n := 1; ; n++ {
		switch m := m.(type) {
		case error:
			return fmt.Errorf("subscription lost: %w", m)
		case *goredis.Message:
			var id string
			var kind eventKind
			if m.Pattern != "" {
				id, kind = parseKeyspace(ksPrefix, m.Channel, m.Payload)
			} else {
				id, kind = parseAnnouncement(m.Payload)
			}
			switch kind {
			case eventFetch:
				dirty[id] = struct{}{}
			case eventReadAll:
				all = true
			}
		}
		if n == maxBatch {
			break
		}
		select {
		case m = <-msgs:
			continue
		default:
		}
		break
	}
	if all {
		_, err := st.readAll(ctx)
		return err
	}
	if len(dirty) == 0 {
		return nil
	}
	return st.fetch(ctx, dirty)
}

// readAll reads every instance of the service and reports the set if it
// changed; changed says whether it did.
func (st *watchState) readAll(ctx context.Context) (changed bool, err error) {
	rctx, cancel := context.WithTimeout(ctx, st.RequestTimeout)
	defer cancel()
	listed, err := st.cmds.ZRange(rctx, st.index(), 0, -1).Result()
	if err != nil {
		return false, err
	}
	ids := make([]string, 0, len(listed))
	for _, id := range listed {
		if err := validName(id); err != nil {
			st.Logger.Warn("redis: skipping an invalid instance ID in the index", "index", st.index(), "err", err)
			continue
		}
		ids = append(ids, id)
	}
	pipe := st.cmds.Pipeline()
	vals := st.getValues(rctx, pipe, ids)
	if len(ids) > 0 {
		if _, err := pipe.Exec(rctx); err != nil {
			return false, err
		}
	}
	fresh := make(map[string]lb.Endpoint, len(ids))
	for i, id := range ids {
		if v, ok := vals(i); ok {
			st.apply(fresh, id, v)
		}
	}
	st.entries = fresh
	return st.emit()
}

// getValues queues MGETs of the instance keys of ids on pipe; once pipe
// has run, the function returned gives the value of ids[i], if its key
// holds a string.
func (st *watchState) getValues(ctx context.Context, pipe goredis.Pipeliner, ids []string) func(i int) (string, bool) {
	cmds := make([]*goredis.SliceCmd, 0, (len(ids)+mgetChunk-1)/mgetChunk)
	for i := 0; i < len(ids); i += mgetChunk {
		chunk := ids[i:min(i+mgetChunk, len(ids))]
		keys := make([]string, len(chunk))
		for j, id := range chunk {
			keys[j] = st.instanceKey(id)
		}
		cmds = append(cmds, pipe.MGet(ctx, keys...))
	}
	return func(i int) (string, bool) {
		vals := cmds[i/mgetChunk].Val()
		if i%mgetChunk >= len(vals) {
			return "", false
		}
		s, ok := vals[i%mgetChunk].(string)
		return s, ok
	}
}

// fetch reads the instances of ids again and reports the set if it
// changed. An instance is there when its ID is in the index and its key
// holds a string, as readAll sees it.
func (st *watchState) fetch(ctx context.Context, dirty map[string]struct{}) error {
	rctx, cancel := context.WithTimeout(ctx, st.RequestTimeout)
	defer cancel()
	ids := make([]string, 0, len(dirty))
	for id := range dirty {
		ids = append(ids, id)
	}
	pipe := st.cmds.Pipeline()
	vals := st.getValues(rctx, pipe, ids)
	scores := make([]*goredis.FloatCmd, len(ids))
	for i, id := range ids {
		scores[i] = pipe.ZScore(rctx, st.index(), id)
	}
	if _, err := pipe.Exec(rctx); err != nil && !errors.Is(err, goredis.Nil) {
		return err
	}
	for i, id := range ids {
		v, ok := vals(i)
		if err := scores[i].Err(); err != nil && !errors.Is(err, goredis.Nil) {
			return err
		}
		if !ok || scores[i].Err() != nil {
			st.forget(id) // no key, or not listed in the index: gone
			continue
		}
		st.apply(st.entries, id, v)
	}
	_, err := st.emit()
	return err
}

// apply parses the value of instance id into entries; a malformed value
// keeps the endpoint id had before, if any.
func (st *watchState) apply(entries map[string]lb.Endpoint, id, val string) {
	ep, err := lb.ParseEndpoint([]byte(val))
	if err != nil {
		st.logBad(id, val, err)
		if old, ok := st.entries[id]; ok {
			entries[id] = old
		}
		return
	}
	delete(st.bad, id)
	entries[id] = ep
}

func (st *watchState) forget(id string) {
	delete(st.entries, id)
	delete(st.bad, id)
}

// logBad logs a malformed value, once for each value an instance gets.
func (st *watchState) logBad(id, val string, err error) {
	if old, ok := st.bad[id]; ok && old == val {
		return
	}
	st.bad[id] = val
	st.Logger.Warn("redis: skipping a malformed endpoint value", "key", st.instanceKey(id), "err", err)
}

// emit reports the current set if it differs from the last one reported.
func (st *watchState) emit() (bool, error) {
	eps := st.set()
	if st.sent && lb.EqualEndpoints(st.last, eps) {
		return false, nil
	}
	if err := st.update(cloneEndpoints(eps)); err != nil {
		return false, updateError{err}
	}
	st.last, st.sent = eps, true
	return true, nil
}

// set returns the endpoints of the current instances, one per address
// (the smallest ID's), sorted by address.
func (st *watchState) set() []lb.Endpoint {
	ids := make([]string, 0, len(st.entries))
	for id := range st.entries {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	seen := make(map[string]bool, len(ids))
	eps := make([]lb.Endpoint, 0, len(ids))
	for _, id := range ids {
		ep := st.entries[id]
		if !seen[ep.Addr] {
			seen[ep.Addr] = true
			eps = append(eps, ep)
		}
	}
	sort.Slice(eps, func(i, j int) bool { return eps[i].Addr < eps[j].Addr })
	return eps
}
