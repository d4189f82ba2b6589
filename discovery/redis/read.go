package redis

import (
	"context"
	"errors"
	"fmt"
	"sort"

	goredis "github.com/redis/go-redis/v9"

	"github.com/go-lb/lb"
)

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
	return st.last.Report(st.set(), st.update)
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
