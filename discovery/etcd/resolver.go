// Package etcd follows a service's endpoints in etcd: a Resolver for lb
// (github.com/go-lb/lb) that lists a key prefix and watches it, and
// Register, which services use to put themselves under that prefix for as
// long as they live.
//
// Layout: one key per endpoint under a prefix, such as
// "/services/api/10.0.0.1:8080", whose value is JSON
// ({"addr":"10.0.0.1:8080","weight":2,"labels":{"zone":"eu-1"}}) or a bare
// "host:port" (see ParseEndpoint). Register writes such keys under a
// lease, so a service that dies without deregistering disappears when its
// lease's TTL runs out.
package etcd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/go-lb/lb"
	"github.com/go-lb/lb/internal/backoff"
	"github.com/go-lb/lb/internal/report"
)

// Resolver is an lb.Resolver over the keys under a prefix in etcd. Watch
// lists the prefix, reports the set, then watches the prefix from the
// listed revision + 1: a put adds or changes an endpoint, a delete (or an
// expired lease) removes it, and the new set is reported after each batch
// of events. So no change between the list and the watch is missed.
//
// Failures never empty the set: when the list fails, Watch retries with
// backoff (100 ms doubling up to MaxBackoff, with jitter); while etcd is
// unreachable the client's watch reconnects by itself and resumes where it
// was; when the watched revision has been compacted away, or the watch is
// cancelled or fails, Watch lists again and watches from there. Only etcd
// saying that there are no keys (a list or deletes) empties the set.
//
// A value that is not a valid endpoint (see ParseEndpoint) is skipped and
// logged at Warn; if the key held a valid endpoint before, that endpoint
// stays until the key is deleted or gets a valid value. When two keys give
// the same address, the one written last wins. The set is reported sorted
// by address, and never twice the same in a row.
type Resolver struct {
	// Client is the etcd client to use; required. Watch does not close it,
	// and returns an error when it is closed.
	Client *clientv3.Client
	// Prefix is the key prefix to follow, such as "/services/api/";
	// required.
	Prefix string
	// Logger receives skipped values and retried failures (Warn); nil logs
	// nothing.
	Logger *slog.Logger
	// RequestTimeout bounds each list request; 0 means 5 s.
	RequestTimeout time.Duration
	// MaxBackoff is the longest wait between retries; 0 means 5 s.
	MaxBackoff time.Duration
}

// Defaults of Resolver.
const (
	// DefaultRequestTimeout is the default bound of one list request.
	DefaultRequestTimeout = 5 * time.Second
	// DefaultMaxBackoff is the default longest wait between retries.
	DefaultMaxBackoff = 5 * time.Second
	// minBackoff is the first wait after a failure.
	minBackoff = 100 * time.Millisecond
)

func (r Resolver) withDefaults() (Resolver, error) {
	switch {
	case r.Client == nil:
		return r, fmt.Errorf("%w: etcd.Resolver.Client is nil", lb.ErrInvalidConfig)
	case r.Prefix == "":
		return r, fmt.Errorf("%w: etcd.Resolver.Prefix is empty; it would follow every key in etcd", lb.ErrInvalidConfig)
	case r.RequestTimeout < 0:
		return r, fmt.Errorf("%w: etcd.Resolver.RequestTimeout is %v; it must be >= 0", lb.ErrInvalidConfig, r.RequestTimeout)
	case r.MaxBackoff < 0:
		return r, fmt.Errorf("%w: etcd.Resolver.MaxBackoff is %v; it must be >= 0", lb.ErrInvalidConfig, r.MaxBackoff)
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

// entry is the endpoint of one key, and the revision it was written at.
type entry struct {
	ep  lb.Endpoint
	rev int64
}

// watchState is what one Watch call knows.
type watchState struct {
	Resolver
	entries map[string]entry // by key
	last    report.Last
	update  func([]lb.Endpoint) error
}

// errRelist ends a watch that must be replaced by a fresh list.
var errRelist = errors.New("relist")

// Watch implements lb.Resolver. It returns an error wrapping
// lb.ErrInvalidConfig at once when r is invalid, ctx.Err() when ctx ends,
// the error of update when that is not nil, and an error when the client
// is closed.
func (r Resolver) Watch(ctx context.Context, update func([]lb.Endpoint) error) error {
	r, err := r.withDefaults()
	if err != nil {
		return err
	}
	st := &watchState{Resolver: r, entries: map[string]entry{}, update: update}
	failures := 0
	for {
		rev, err := st.list(ctx)
		if err == nil {
			err = st.watch(ctx, rev+1)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var ue report.UpdateError
		if errors.As(err, &ue) {
			return ue.Err
		}
		if cerr := r.Client.Ctx().Err(); cerr != nil {
			return fmt.Errorf("etcd: the client was closed: %w", cerr)
		}
		wait := time.Duration(0)
		if errors.Is(err, errRelist) {
			failures = 0 // compaction: list again now
		} else {
			failures++
			wait = backoff.Jitter(backoff.Exp(failures, minBackoff, r.MaxBackoff))
		}
		r.Logger.Warn("etcd: listing again; keeping the last set", "prefix", r.Prefix, "err", err, "retry_in", wait)
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			case <-t.C:
			}
		}
	}
}

// list reads the prefix afresh and reports the set; it returns the
// revision the list was read at.
func (st *watchState) list(ctx context.Context) (int64, error) {
	lctx, cancel := context.WithTimeout(ctx, st.RequestTimeout)
	defer cancel()
	resp, err := st.Client.Get(lctx, st.Prefix, clientv3.WithPrefix())
	if err != nil {
		return 0, err
	}
	fresh := make(map[string]entry, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		key := string(kv.Key)
		ep, err := ParseEndpoint(kv.Value)
		if err != nil {
			st.Logger.Warn("etcd: skipping a malformed endpoint value", "key", key, "err", err)
			if old, ok := st.entries[key]; ok {
				fresh[key] = old
			}
			continue
		}
		fresh[key] = entry{ep: ep, rev: kv.ModRevision}
	}
	st.entries = fresh
	return resp.Header.Revision, st.emit()
}

// watch follows the prefix from rev until the watch ends; it returns
// errRelist when a fresh list is needed at once, another error for a
// failure, or a report.UpdateError.
func (st *watchState) watch(ctx context.Context, rev int64) error {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	wch := st.Client.Watch(wctx, st.Prefix, clientv3.WithPrefix(), clientv3.WithRev(rev))
	for wr := range wch {
		if wr.CompactRevision != 0 {
			return fmt.Errorf("%w: revision %d was compacted (oldest is %d)", errRelist, rev, wr.CompactRevision)
		}
		if err := wr.Err(); err != nil {
			return fmt.Errorf("watch failed: %w", err)
		}
		for _, ev := range wr.Events {
			key := string(ev.Kv.Key)
			switch ev.Type {
			case clientv3.EventTypeDelete:
				delete(st.entries, key)
			case clientv3.EventTypePut:
				ep, err := ParseEndpoint(ev.Kv.Value)
				if err != nil {
					st.Logger.Warn("etcd: skipping a malformed endpoint value", "key", key, "err", err)
					continue
				}
				st.entries[key] = entry{ep: ep, rev: ev.Kv.ModRevision}
			}
			rev = ev.Kv.ModRevision + 1
		}
		if err := st.emit(); err != nil {
			return err
		}
	}
	return errors.New("watch closed")
}

// emit reports the current set if it differs from the last one reported.
func (st *watchState) emit() error {
	_, err := st.last.Report(st.set(), st.update)
	return err
}

// set returns the endpoints of the current keys, one per address (the
// latest written), sorted by address.
func (st *watchState) set() []lb.Endpoint {
	byAddr := make(map[string]entry, len(st.entries))
	for _, e := range st.entries {
		if old, ok := byAddr[e.ep.Addr]; !ok || e.rev > old.rev {
			byAddr[e.ep.Addr] = e
		}
	}
	eps := make([]lb.Endpoint, 0, len(byAddr))
	for _, e := range byAddr {
		eps = append(eps, e.ep)
	}
	sort.Slice(eps, func(i, j int) bool { return eps[i].Addr < eps[j].Addr })
	return eps
}
