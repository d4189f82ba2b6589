package zookeeper

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/go-lb/lb"
)

// RegisterOptions tunes Register. The zero value means the defaults.
type RegisterOptions struct {
	// Name is the child's name; "" means the endpoint's address
	// ("10.0.0.1:8080"), or, with Sequential, the address and a dash.
	Name string
	// Sequential makes ZooKeeper append a 10-digit counter to the name, so
	// that several instances may register the same name. The name is then
	// also prefixed with "_c_<32 hex digits>-", an identifier of the
	// registration by which a create whose reply was lost (the connection
	// broke) is found again instead of made twice.
	Sequential bool
	// ACL is the znode's ACL, and that of the parents Register creates;
	// nil means zk.WorldACL(zk.PermAll).
	ACL []zk.ACL
	// Logger receives lost znodes and failed re-registrations (Warn); nil
	// logs nothing.
	Logger *slog.Logger
}

// Registration is a service's endpoint kept in ZooKeeper by Register.
type Registration struct {
	conn   *zk.Conn
	parent string
	prefix string // the child's name, with the protection prefix when sequential
	seq    bool
	data   []byte
	acl    []zk.ACL
	logger *slog.Logger

	cancel context.CancelFunc
	done   chan struct{}

	mu   sync.Mutex
	path string // the znode's path, once created

	closeOnce sync.Once
	closeErr  error
}

// protectPrefix starts the name of a sequential registration's znode.
const protectPrefix = "_c_"

// Register creates an ephemeral child of the znode at path (the parent
// the Resolver follows, such as "/services/api"), with ep's JSON
// (lb.EncodeEndpoint) as its data, and keeps it there in a goroutine
// until Close. Missing parents are created (persistent, empty).
//
// The znode lives as long as conn's session: a process that dies without
// Close stops pinging, ZooKeeper expires its session after the session
// timeout, and the znode goes, so resolvers drop the endpoint then. While
// the process lives, Register's goroutine watches the znode: when it goes
// (the session expired while the process was cut off, and the client
// opened a new one; or someone deleted it), it is created again, with
// backoff, until Close. A znode of the same name owned by another session
// (the previous run of the same service, whose session has not expired
// yet) is waited for until it goes.
//
// Register does not close conn, and makes requests only while conn has a
// session (see Resolver). ctx bounds the first registration only (the
// wait for a session, and between requests, which the client itself
// bounds): Register returns its error, and an error wrapping
// lb.ErrInvalidConfig or lb.ErrInvalidEndpoint for bad arguments.
func Register(ctx context.Context, conn *zk.Conn, path string, ep lb.Endpoint, opts RegisterOptions) (*Registration, error) {
	if conn == nil {
		return nil, fmt.Errorf("%w: zookeeper.Register: the connection is nil", lb.ErrInvalidConfig)
	}
	if err := checkPath(path); err != nil {
		return nil, fmt.Errorf("%w: zookeeper.Register: path %v", lb.ErrInvalidConfig, err)
	}
	data, err := lb.EncodeEndpoint(ep)
	if err != nil {
		return nil, err
	}
	name := opts.Name
	if name == "" {
		name = ep.Addr
		if opts.Sequential {
			name += "-"
		}
	}
	if err := checkName(name); err != nil {
		return nil, fmt.Errorf("%w: zookeeper.RegisterOptions.Name %q %v", lb.ErrInvalidConfig, name, err)
	}
	r := &Registration{
		conn:   conn,
		parent: path,
		prefix: name,
		seq:    opts.Sequential,
		data:   data,
		acl:    opts.ACL,
		logger: orDiscard(opts.Logger),
		done:   make(chan struct{}),
	}
	if r.acl == nil {
		r.acl = zk.WorldACL(zk.PermAll)
	}
	if r.seq {
		var id [16]byte
		if _, err := rand.Read(id[:]); err != nil {
			return nil, err
		}
		r.prefix = protectPrefix + hex.EncodeToString(id[:]) + "-" + name
	}
	if err := r.create(ctx); err != nil {
		return nil, err
	}
	kctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go r.keep(kctx)
	return r, nil
}

// Path returns the znode's path (with its sequence number when
// Sequential), which changes when a sequential znode is created again.
func (r *Registration) Path() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.path
}

func (r *Registration) setPath(p string) {
	r.mu.Lock()
	r.path = p
	r.mu.Unlock()
}

// errPersistent is the error for a znode of the registration's name that
// is not ephemeral: it would never go by itself.
var errPersistent = errors.New("exists and is not ephemeral")

// create makes the znode, and returns once it exists in conn's current
// session, or ctx ends, or a request fails. A znode of the same name that
// another session owns is waited for until it goes.
func (r *Registration) create(ctx context.Context) error {
	for {
		if err := awaitSession(ctx, r.conn, r.logger); err != nil {
			return err
		}
		if r.seq {
			if p, ok, err := r.findOwn(); err != nil {
				return err
			} else if ok {
				r.setPath(p)
				return nil
			}
		}
		target := r.parent + "/" + r.prefix
		flags := int32(zk.FlagEphemeral)
		if r.seq {
			flags |= zk.FlagSequence
		}
		p, err := r.conn.Create(target, r.data, flags, r.acl)
		switch {
		case err == nil:
			r.setPath(p)
			return nil
		case errors.Is(err, zk.ErrNoNode):
			if err := r.createParents(); err != nil {
				return err
			}
		case errors.Is(err, zk.ErrNodeExists):
			done, err := r.existing(ctx, target)
			if done || err != nil {
				return err
			}
		default:
			return fmt.Errorf("zookeeper: creating %s: %w", target, err)
		}
	}
}

// findOwn looks for the sequential znode of this registration (by its
// prefix) among the parent's children: a create whose reply was lost may
// have made it.
func (r *Registration) findOwn() (string, bool, error) {
	children, _, err := r.conn.Children(r.parent)
	if errors.Is(err, zk.ErrNoNode) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("zookeeper: listing %s: %w", r.parent, err)
	}
	for _, c := range children {
		if strings.HasPrefix(c, r.prefix) {
			return r.parent + "/" + c, true, nil
		}
	}
	return "", false, nil
}

// existing handles a create that found target there. It reports done when
// the znode is this session's (a create whose reply was lost made it),
// and otherwise waits for it to go (the caller creates it again).
func (r *Registration) existing(ctx context.Context, target string) (bool, error) {
	ok, stat, ch, err := r.conn.ExistsW(target)
	switch {
	case err != nil:
		return false, fmt.Errorf("zookeeper: looking at %s: %w", target, err)
	case !ok:
		return false, nil // gone meanwhile
	case stat.EphemeralOwner == r.conn.SessionID():
		if _, err := r.conn.Set(target, r.data, -1); err != nil {
			return false, fmt.Errorf("zookeeper: setting %s: %w", target, err)
		}
		r.setPath(target)
		return true, nil
	case stat.EphemeralOwner == 0:
		return false, fmt.Errorf("zookeeper: %s %w; it would never go by itself", target, errPersistent)
	}
	r.logger.Warn("zookeeper: the znode is held by another session; waiting for it to go", "znode", target,
		"owner", fmt.Sprintf("%#x", stat.EphemeralOwner))
	select {
	case <-ctx.Done():
		return false, ctx.Err()
	case ev := <-ch:
		if ev.Err != nil {
			return false, fmt.Errorf("zookeeper: waiting for %s to go: %w", target, ev.Err)
		}
		return false, nil
	}
}

// createParents creates the parent znodes that are missing.
func (r *Registration) createParents() error {
	for i := 1; i <= len(r.parent); i++ {
		if i < len(r.parent) && r.parent[i] != '/' {
			continue
		}
		p := r.parent[:i]
		if _, err := r.conn.Create(p, nil, zk.FlagPersistent, r.acl); err != nil && !errors.Is(err, zk.ErrNodeExists) {
			return fmt.Errorf("zookeeper: creating the parent %s: %w", p, err)
		}
	}
	return nil
}

// keep watches the znode until ctx ends or conn is closed, and creates it
// again when it goes.
func (r *Registration) keep(ctx context.Context) {
	defer close(r.done)
	failures := 0
	// fail logs err and waits to retry; false means stop: ctx ended.
	fail := func(what string, err error) bool {
		failures++
		wait := retryWait(failures, DefaultMaxBackoff)
		r.logger.Warn("zookeeper: "+what+"; retrying", "znode", r.Path(), "err", err, "retry_in", wait)
		return sleepCtx(ctx, wait)
	}
	for {
		if err := awaitSession(ctx, r.conn, r.logger); err != nil {
			return // ctx ended, or conn was closed
		}
		p := r.Path()
		ok, stat, ch, err := r.conn.ExistsW(p)
		if errors.Is(err, zk.ErrClosing) {
			return
		}
		if err != nil {
			if !fail("watching the registration failed", err) {
				return
			}
			continue
		}
		switch {
		case ok && stat.EphemeralOwner == r.conn.SessionID():
			failures = 0
		case ok && !r.seq:
			// Another session holds the name: wait for it to go.
			r.logger.Warn("zookeeper: the znode is held by another session; waiting for it to go", "znode", p,
				"owner", fmt.Sprintf("%#x", stat.EphemeralOwner))
		default:
			r.logger.Warn("zookeeper: the registration's znode is gone; creating it again", "znode", p)
			if err := r.create(ctx); err != nil {
				if errors.Is(err, zk.ErrClosing) || !fail("registering again failed", err) {
					return
				}
			}
			continue // watch the new znode
		}
		select {
		case <-ctx.Done():
			return
		case ev := <-ch:
			if ev.Type == zk.EventNotWatching && errors.Is(ev.Err, zk.ErrClosing) {
				return // conn was closed: the znode went with its session
			}
			// Deleted, changed, or the session expired: look again.
		}
	}
}

// Done returns a channel closed when the registration's goroutine has
// ended: after Close, or when conn was closed (the znode then went with
// its session).
func (r *Registration) Done() <-chan struct{} { return r.done }

// closeWait is how long Close waits for a session to delete the znode in.
const closeWait = 2 * time.Second

// Close stops keeping the znode and deletes it (if it is still this
// session's). It waits for the registration's goroutine to end, and is
// safe to call more than once. When the delete fails (no session within 2
// s, conn closed), the znode still goes with its session; the error says
// so.
func (r *Registration) Close() error {
	r.closeOnce.Do(func() {
		r.cancel()
		<-r.done
		p := r.Path()
		ctx, cancel := context.WithTimeout(context.Background(), closeWait)
		defer cancel()
		err := awaitSession(ctx, r.conn, r.logger)
		if err == nil {
			var ok bool
			var stat *zk.Stat
			ok, stat, err = r.conn.Exists(p)
			if err == nil && ok && stat.EphemeralOwner == r.conn.SessionID() {
				err = r.conn.Delete(p, -1)
			}
		}
		if err != nil && !errors.Is(err, zk.ErrNoNode) {
			r.closeErr = fmt.Errorf("zookeeper: deleting %s (an ephemeral znode goes when its session ends): %w", p, err)
		}
	})
	return r.closeErr
}
