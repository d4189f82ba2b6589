// Package zookeeper follows a service's endpoints in ZooKeeper: a Resolver
// for lb (github.com/go-lb/lb) that follows the children of a znode, and
// Register, with which services put themselves there, as ephemeral
// znodes, for as long as their session lives.
//
// Layout: one child per endpoint under a parent znode such as
// "/services/api". A child's data is the endpoint, as JSON
// ({"addr":"10.0.0.1:8080","weight":2,"labels":{"zone":"eu-1"}}) or a bare
// "host:port"; a child with no data is read by its name, so
// "/services/api/10.0.0.1:8080" with empty data is the endpoint
// 10.0.0.1:8080 (see ParseChild). Register writes the JSON form into an
// ephemeral child, so a service that dies without deregistering
// disappears when ZooKeeper expires its session.
//
// The client is github.com/go-zookeeper/zk v1.0.4. The tests run against
// ZooKeeper 3.8.0 (Debian 12's zookeeper package, which the module's
// testdeps script installs), in a server they start themselves. Measured
// there on loopback, on a shared 2-core machine (go test -run TestMeasure
// -v .): a child created or deleted reaches the balancer's new picker in a
// median of 1.5-2.7 ms over 100 changes (0.5-0.9 ms after ZooKeeper
// acknowledged the write); 1,000 children reach the first set in 80-300
// ms, and the running resolver holds about 4 KiB per child (1.7 KiB of
// heap, and one goroutine per watch).
package zookeeper

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/go-lb/lb"
)

// Resolver is an lb.Resolver over the children of a znode. Watch lists
// the children with a watch on the list, reads each child with a watch on
// its data, and reports the set; then each watch that fires makes it read
// again what changed (the list, or one child), so changes arrive without
// polling. (The client has no persistent recursive watches, which
// ZooKeeper 3.6+ offers; one-shot watches do the same here, and the client
// sets them again by itself after a reconnection, with the last zxid it
// saw, so the server fires those whose znodes changed meanwhile.)
//
// Failures never empty the set. While the connection is lost, the set
// stays and the watches are kept; after a reconnection within the session
// they fire for what changed meanwhile. When the session expires (the
// client was away longer than the session timeout), the client opens a new
// session, and Watch lists and reads everything again, sets its watches
// again, and reports the set once it is whole. A failed request is
// retried with backoff (100 ms doubling up to MaxBackoff, with jitter).
// Without a session, Watch makes no request: it waits for one (logging at
// Warn after 2 s), since a request queued across a reconnection meets a
// data race in go-zookeeper v1.0.4 (go-zookeeper/zk#35).
// Only ZooKeeper saying so empties the set: the parent has no children, or
// the parent does not exist (reported as no endpoints, logged at Warn, and
// watched until it is created).
//
// A child whose data is not a valid endpoint (see ParseChild) is skipped
// and logged at Warn; if it held a valid endpoint before, that endpoint
// stays until the child is deleted or gets a valid value. When two
// children give the same address, the one written last wins; when two
// addresses claim the same hash name (HashKey), the one written first
// keeps it and the other is skipped and logged, so that one bad child
// cannot make the balancer refuse the set. The set is reported sorted by
// address, and never twice the same in a row.
//
// Watch connects through Conn, a connection of the caller's, or through a
// connection of its own to Servers: set one of the two.
type Resolver struct {
	// Conn is a connection of the caller's. Watch does not close it; close
	// it after Watch has returned. With Conn, Watch returns after ctx ends
	// once its request in flight, if any, completes, which the client
	// bounds (about 2/3 of the session timeout when the server stops
	// answering). If Conn is closed under a running Watch, Watch returns
	// an error wrapping zk.ErrClosing: at once when the client reports it
	// to the watches Watch holds, within about 250 ms otherwise. The
	// watches Watch set stay in Conn until they fire, as go-zookeeper
	// cannot remove a watch; a Watch of its own (Servers) leaves nothing.
	Conn *zk.Conn
	// Servers are the ZooKeeper servers ("host:port"; 2181 when the port
	// is left out) of a connection of Watch's own, opened when Watch
	// starts and closed, with every goroutine of the client ended, before
	// Watch returns. Cancelling ctx closes it at once, which ends a
	// request in flight.
	Servers []string
	// SessionTimeout is the session timeout Watch's own connection asks
	// for (the server may grant another, within its
	// minSessionTimeout..maxSessionTimeout); 0 means 10 s. Only with
	// Servers.
	SessionTimeout time.Duration
	// Dialer opens the TCP connections of Watch's own connection; nil
	// means net.DialTimeout. Only with Servers.
	Dialer zk.Dialer
	// Path is the parent znode, such as "/services/api"; required.
	Path string
	// Logger receives skipped children, lost sessions and retried
	// failures (Warn), and the client's own messages (Debug); nil logs
	// nothing.
	Logger *slog.Logger
	// MaxBackoff is the longest wait between retries; 0 means 5 s.
	MaxBackoff time.Duration
}

// Defaults of Resolver.
const (
	// DefaultSessionTimeout is the default session timeout of a
	// Resolver's own connection.
	DefaultSessionTimeout = 10 * time.Second
	// DefaultMaxBackoff is the default longest wait between retries.
	DefaultMaxBackoff = 5 * time.Second
	// minBackoff is the first wait after a failure.
	minBackoff = 100 * time.Millisecond
	// readers is how many children Watch reads at once: the client
	// pipelines their requests on its one connection.
	readers = 64
)

func (r Resolver) withDefaults() (Resolver, error) {
	bad := func(format string, args ...any) (Resolver, error) {
		return r, fmt.Errorf("%w: zookeeper.Resolver."+format, append([]any{lb.ErrInvalidConfig}, args...)...)
	}
	switch {
	case r.Conn == nil && len(r.Servers) == 0:
		return bad("Conn is nil and Servers is empty; set one of them")
	case r.Conn != nil && len(r.Servers) > 0:
		return bad("Conn and Servers are both set; set one of them")
	case r.Conn != nil && r.SessionTimeout != 0:
		return bad("SessionTimeout is set with Conn; it applies only to the connection Watch opens to Servers")
	case r.Conn != nil && r.Dialer != nil:
		return bad("Dialer is set with Conn; it applies only to the connection Watch opens to Servers")
	case r.SessionTimeout < 0:
		return bad("SessionTimeout is %v; it must be >= 0 (0 means %v)", r.SessionTimeout, DefaultSessionTimeout)
	case r.MaxBackoff < 0:
		return bad("MaxBackoff is %v; it must be >= 0 (0 means %v)", r.MaxBackoff, DefaultMaxBackoff)
	}
	for i, s := range r.Servers {
		if s == "" || strings.ContainsFunc(s, func(c rune) bool { return c <= ' ' || c == ',' }) {
			return bad("Servers[%d] is %q; it must be one host:port", i, s)
		}
	}
	if err := checkPath(r.Path); err != nil {
		return bad("Path %v", err)
	}
	if r.SessionTimeout == 0 {
		r.SessionTimeout = DefaultSessionTimeout
	}
	if r.MaxBackoff == 0 {
		r.MaxBackoff = DefaultMaxBackoff
	}
	r.Logger = orDiscard(r.Logger)
	return r, nil
}

// Watch implements lb.Resolver. It returns an error wrapping
// lb.ErrInvalidConfig at once when r is invalid, ctx.Err() when ctx ends,
// the error of update when that is not nil, and an error wrapping
// zk.ErrClosing when Conn is closed under it.
func (r Resolver) Watch(ctx context.Context, update func([]lb.Endpoint) error) error {
	r, err := r.withDefaults()
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	conn := r.Conn
	if conn == nil {
		own, events, err := r.connect(ctx)
		if err != nil {
			return err
		}
		defer closeConn(own, events)
		// A request in flight ends when the connection closes.
		defer context.AfterFunc(ctx, own.Close)()
		conn = own
	}
	st := &watchState{
		Resolver: r,
		conn:     conn,
		update:   update,
		nodes:    map[string]*node{},
		toRead:   map[string]struct{}{},
		list:     true,
		events:   make(chan watchEvent),
		done:     make(chan struct{}),
	}
	defer st.stopForwarders()
	return st.run(ctx)
}

// connect opens Watch's own connection. zk.Connect fails only when no
// server name resolves (it connects in the background): that is retried.
func (r Resolver) connect(ctx context.Context) (*zk.Conn, <-chan zk.Event, error) {
	dialer := r.Dialer
	if dialer == nil {
		dialer = net.DialTimeout
	}
	for attempt := 1; ; attempt++ {
		conn, events, err := zk.Connect(r.Servers, r.SessionTimeout, zk.WithLogger(zkLogger{r.Logger}), zk.WithDialer(dialer))
		if err == nil {
			return conn, events, nil
		}
		wait := retryWait(attempt, r.MaxBackoff)
		r.Logger.Warn("zookeeper: connecting failed; retrying", "servers", r.Servers, "err", err, "retry_in", wait)
		if !sleepCtx(ctx, wait) {
			return nil, nil, ctx.Err()
		}
	}
}

// closeConn closes a connection of ours and waits until the client's
// goroutines have ended: its event channel is closed last.
func closeConn(conn *zk.Conn, events <-chan zk.Event) {
	conn.Close()
	for range events { //nolint:revive // drain until the client closes it
	}
}
