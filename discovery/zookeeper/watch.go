package zookeeper

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/go-lb/lb"
	"github.com/go-lb/lb/internal/report"
)

// node is what Watch knows of one child.
type node struct {
	ep      lb.Endpoint
	valid   bool  // ep is the child's latest valid endpoint
	mzxid   int64 // the zxid that wrote ep
	watched bool  // a data watch of the current session is set on it
}

// watchEvent is a watch that fired, tagged with the session generation it
// was set in and the child it is on ("" for the parent).
type watchEvent struct {
	gen  uint64
	name string
	ev   zk.Event
}

// watchState is what one Watch call knows.
type watchState struct {
	Resolver
	conn   *zk.Conn
	update func([]lb.Endpoint) error

	gen     uint64              // session generation: bumped when the session expired
	nodes   map[string]*node    // the parent's children, by name
	toRead  map[string]struct{} // children to read (again)
	list    bool                // the children must be listed (again)
	missing bool                // the parent does not exist (logged)

	events chan watchEvent
	done   chan struct{} // closed when Watch returns: forwarders stop
	fwd    sync.WaitGroup

	last report.Last
}

func (st *watchState) run(ctx context.Context) error {
	failures := 0
	var retryTimer *time.Timer
	defer func() {
		if retryTimer != nil {
			retryTimer.Stop()
		}
	}()
	var retry <-chan time.Time // retryTimer.C while a retry waits
	for {
		if retry == nil && st.pending() {
			if err := awaitSession(ctx, st.conn, st.Logger); err != nil {
				return err // ctx ended, or Conn was closed
			}
			err := st.sync(ctx)
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if err == nil && !st.pending() {
				err = st.emit()
			}
			var ue report.UpdateError
			switch {
			case errors.As(err, &ue):
				return ue.Err
			case errors.Is(err, zk.ErrClosing):
				return errConnClosed(err)
			case err != nil:
				failures++
				wait := retryWait(failures, st.MaxBackoff)
				st.Logger.Warn("zookeeper: request failed; retrying, keeping the last set", "path", st.Path, "err", err, "retry_in", wait)
				if retryTimer == nil {
					retryTimer = time.NewTimer(wait)
				} else {
					retryTimer.Reset(wait) // it fired and was received
				}
				retry = retryTimer.C
			default:
				failures = 0
				if st.pending() {
					continue // the parent appeared while it was looked for
				}
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-retry:
			retry = nil
		case ev := <-st.events:
			if err := st.handle(ev); err != nil {
				return err
			}
			if err := st.drain(); err != nil {
				return err
			}
		}
	}
}

func (st *watchState) pending() bool { return st.list || len(st.toRead) > 0 }

// drain handles the events already waiting, so that a burst (a session
// expiry fires every watch) costs one sync.
func (st *watchState) drain() error {
	for {
		select {
		case ev := <-st.events:
			if err := st.handle(ev); err != nil {
				return err
			}
		default:
			return nil
		}
	}
}

// handle records what a fired watch says needs reading again.
func (st *watchState) handle(ev watchEvent) error {
	if ev.gen != st.gen {
		return nil // a watch of an expired session
	}
	if ev.ev.Type == zk.EventNotWatching {
		if errors.Is(ev.ev.Err, zk.ErrClosing) {
			return errConnClosed(ev.ev.Err)
		}
		// The session expired: every watch is gone. The client opens a
		// new session by itself; list and read everything in it.
		st.Logger.Warn("zookeeper: session lost; listing again, keeping the last set", "path", st.Path, "err", ev.ev.Err)
		st.gen++
		for _, n := range st.nodes {
			n.watched = false
		}
		st.list = true
		return nil
	}
	if ev.name == "" {
		st.list = true
		return nil
	}
	if n, ok := st.nodes[ev.name]; ok {
		n.watched = false
		st.toRead[ev.name] = struct{}{}
	}
	return nil
}

// forward passes the one event of a watch to run, tagged, unless Watch
// returns first.
func (st *watchState) forward(ch <-chan zk.Event, name string) {
	gen := st.gen
	st.fwd.Add(1)
	go func() {
		defer st.fwd.Done()
		select {
		case ev, ok := <-ch:
			if !ok {
				return
			}
			select {
			case st.events <- watchEvent{gen: gen, name: name, ev: ev}:
			case <-st.done:
			}
		case <-st.done:
		}
	}()
}

func (st *watchState) stopForwarders() {
	close(st.done)
	st.fwd.Wait()
}

// sync lists the children if needed, then reads those that need it.
func (st *watchState) sync(ctx context.Context) error {
	if st.list {
		if err := st.listChildren(); err != nil {
			return err
		}
		if st.list {
			return nil // the parent was created meanwhile: list again
		}
	}
	return st.readChildren(ctx)
}

// listChildren lists the parent's children with a watch, or, when the
// parent does not exist, watches for its creation and empties the set.
func (st *watchState) listChildren() error {
	names, _, ch, err := st.conn.ChildrenW(st.Path)
	if errors.Is(err, zk.ErrNoNode) {
		exists, _, ech, err := st.conn.ExistsW(st.Path)
		if err != nil {
			return fmt.Errorf("checking that %s exists: %w", st.Path, err)
		}
		st.forward(ech, "")
		if exists {
			return nil // created meanwhile; st.list stays set
		}
		if !st.missing {
			st.Logger.Warn("zookeeper: the parent znode does not exist; reporting no endpoints until it is created", "path", st.Path)
		}
		st.missing, st.list = true, false
		clear(st.nodes)
		clear(st.toRead)
		return nil
	}
	if err != nil {
		return fmt.Errorf("listing the children of %s: %w", st.Path, err)
	}
	st.forward(ch, "")
	st.missing, st.list = false, false
	fresh := make(map[string]*node, len(names))
	for _, name := range names {
		n, ok := st.nodes[name]
		if !ok {
			n = &node{}
		}
		fresh[name] = n
		if !n.watched {
			st.toRead[name] = struct{}{}
		}
	}
	for name := range st.toRead {
		if _, ok := fresh[name]; !ok {
			delete(st.toRead, name)
		}
	}
	st.nodes = fresh
	return nil
}

// read is the outcome of reading one child.
type read struct {
	name string
	data []byte
	stat *zk.Stat
	ch   <-chan zk.Event
	err  error
}

// readChildren reads the children in toRead, up to readers at a time,
// each with a data watch. It returns the first failure; the children that
// failed stay in toRead.
func (st *watchState) readChildren(ctx context.Context) error {
	if len(st.toRead) == 0 {
		return nil
	}
	reads := make([]read, 0, len(st.toRead))
	for name := range st.toRead {
		reads = append(reads, read{name: name})
	}
	var next sync.Mutex
	i := 0
	var wg sync.WaitGroup
	for w := 0; w < min(readers, len(reads)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				next.Lock()
				j := i
				i++
				next.Unlock()
				if j >= len(reads) {
					return
				}
				rd := &reads[j]
				rd.data, rd.stat, rd.ch, rd.err = st.conn.GetW(st.Path + "/" + rd.name)
			}
		}()
	}
	wg.Wait()
	var first error
	for _, rd := range reads {
		switch {
		case rd.err == nil && rd.ch == nil:
			// not read: ctx ended
		case rd.err == nil:
			delete(st.toRead, rd.name)
			st.forward(rd.ch, rd.name)
			st.apply(rd)
		case errors.Is(rd.err, zk.ErrNoNode):
			// Deleted since the list; the parent's watch says so too.
			delete(st.toRead, rd.name)
			delete(st.nodes, rd.name)
		case first == nil:
			first = fmt.Errorf("reading %s/%s: %w", st.Path, rd.name, rd.err)
		}
	}
	return first
}

// apply records the data of a child just read.
func (st *watchState) apply(rd read) {
	n, ok := st.nodes[rd.name]
	if !ok {
		return // not a child any more by the latest list
	}
	n.watched = true
	ep, err := ParseChild(rd.name, rd.data)
	if err != nil {
		st.Logger.Warn("zookeeper: skipping a malformed endpoint", "znode", st.Path+"/"+rd.name, "err", err)
		return
	}
	n.ep, n.valid, n.mzxid = ep, true, rd.stat.Mzxid
}

// emit reports the current set if it differs from the last one reported.
func (st *watchState) emit() error {
	_, err := st.last.Report(st.set(), st.update)
	return err
}

// set returns the endpoints of the current children: one per address (the
// latest written), one per hash name (the first written), sorted by
// address.
func (st *watchState) set() []lb.Endpoint {
	type pick struct {
		name string
		n    *node
	}
	// later reports whether a was written after b (names break ties: the
	// children written by one multi share a zxid).
	later := func(a, b pick) bool {
		if a.n.mzxid != b.n.mzxid {
			return a.n.mzxid > b.n.mzxid
		}
		return a.name > b.name
	}
	byAddr := make(map[string]pick, len(st.nodes))
	for name, n := range st.nodes {
		if !n.valid {
			continue
		}
		p := pick{name, n}
		if old, ok := byAddr[n.ep.Addr]; !ok || later(p, old) {
			byAddr[n.ep.Addr] = p
		}
	}
	picks := make([]pick, 0, len(byAddr))
	for _, p := range byAddr {
		picks = append(picks, p)
	}
	// Oldest first, so the first writer of a hash name keeps it.
	sort.Slice(picks, func(i, j int) bool { return later(picks[j], picks[i]) })
	hashNames := make(map[string]string, len(picks))
	eps := make([]lb.Endpoint, 0, len(picks))
	for _, p := range picks {
		hn := p.n.ep.HashKey
		if hn == "" {
			hn = p.n.ep.Addr
		}
		if other, dup := hashNames[hn]; dup {
			st.Logger.Warn("zookeeper: skipping an endpoint whose hash name another endpoint has", "znode", st.Path+"/"+p.name,
				"addr", p.n.ep.Addr, "hash_name", hn, "kept", other)
			continue
		}
		hashNames[hn] = p.n.ep.Addr
		eps = append(eps, p.n.ep)
	}
	sort.Slice(eps, func(i, j int) bool { return eps[i].Addr < eps[j].Addr })
	return eps
}
