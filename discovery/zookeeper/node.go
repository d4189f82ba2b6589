package zookeeper

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-zookeeper/zk"

	"github.com/go-lb/lb"
	"github.com/go-lb/lb/internal/backoff"
)

// ParseChild returns the endpoint that one child znode describes. Its data
// is read by lb.ParseEndpoint: JSON,
//
//	{"addr": "10.0.0.1:8080", "weight": 2, "hash_key": "cache-1", "labels": {"zone": "eu-1"}}
//
// or a bare "host:port". A child whose data is empty (or only spaces) is
// read by its name instead, as a bare "host:port": the layout of
// registries that put the address in the znode's name
// ("/services/api/10.0.0.1:8080"). Errors wrap lb.ErrInvalidEndpoint.
func ParseChild(name string, data []byte) (lb.Endpoint, error) {
	if len(bytes.TrimSpace(data)) > 0 {
		return lb.ParseEndpoint(data)
	}
	if !utf8.ValidString(name) {
		return lb.Endpoint{}, fmt.Errorf("%w: znode %q has no data, and its name is not valid UTF-8", lb.ErrInvalidEndpoint, name)
	}
	ep := lb.Endpoint{Addr: name}
	if err := ep.Validate(); err != nil {
		return lb.Endpoint{}, fmt.Errorf("znode %q has no data, and its name is not an endpoint: %w", name, err)
	}
	return ep, nil
}

// checkPath returns why p is not a znode path that ZooKeeper accepts (nil
// when it is one), as ZooKeeper's own rules say: absolute, no empty, "."
// or ".." segment, no trailing slash, valid UTF-8 without control
// characters or the ranges ZooKeeper reserves. The root "/" is refused:
// its children are ZooKeeper's own.
func checkPath(p string) error {
	switch {
	case p == "":
		return fmt.Errorf("is empty")
	case p[0] != '/':
		return fmt.Errorf("%q is not absolute; it must start with \"/\"", p)
	case p == "/":
		return fmt.Errorf("is the root; its children are ZooKeeper's own")
	case strings.HasSuffix(p, "/"):
		return fmt.Errorf("%q ends with \"/\"", p)
	}
	for _, seg := range strings.Split(p[1:], "/") {
		if err := checkName(seg); err != nil {
			return fmt.Errorf("%q: %w", p, err)
		}
	}
	return nil
}

// checkName returns why s cannot be the name of a znode (one path
// segment), or nil.
func checkName(s string) error {
	switch s {
	case "":
		return fmt.Errorf("has an empty segment")
	case ".", "..":
		return fmt.Errorf("has a %q segment", s)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("is not valid UTF-8")
	}
	for _, r := range s {
		switch {
		case r == '/':
			return fmt.Errorf("segment %q contains \"/\"", s)
		case r <= 0x1f, r >= 0x7f && r <= 0x9f, r >= 0xd800 && r <= 0xf8ff, r >= 0xfff0:
			// ZooKeeper checks UTF-16 units: a character past U+FFFF is a
			// surrogate pair, which falls in a refused range.
			return fmt.Errorf("contains the character %U, which ZooKeeper refuses in names", r)
		}
	}
	return nil
}

// retryWait is how long to wait before retry n (from 1): 100 ms doubling
// up to hi, spread over its upper half so that clients do not retry in
// step.
func retryWait(n int, hi time.Duration) time.Duration {
	return backoff.Jitter(backoff.Exp(n, minBackoff, hi))
}

// sleepCtx waits d, or less when ctx ends first; it reports whether the
// whole wait passed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// Waiting for a session.
const (
	// pollSession is how often awaitSession looks at the connection's
	// state.
	pollSession = 25 * time.Millisecond
	// quietSession is how long awaitSession waits before it logs.
	quietSession = 2 * time.Second
	// closedAfter is how long a Conn stays disconnected before
	// awaitSession takes it as closed.
	closedAfter = 250 * time.Millisecond
)

// awaitSession returns once conn has a session: nil; ctx.Err() when ctx
// ends first; an error wrapping zk.ErrClosing when conn was closed.
//
// Requests are made only with a session: made before, they would wait in
// the client's queue and go out the moment it reconnects, and then
// go-zookeeper v1.0.4 writes its last zxid for their replies while it
// reads it to set its watches again, unsynchronised (go-zookeeper/zk#35;
// the race detector reports it). The client has no method that says it
// was closed, but a closed Conn stays StateDisconnected, while an open one
// leaves that state at once to connect again (StateConnecting while no
// server answers): a Conn that had a session (a new Conn is disconnected
// too, before its first connect) and stays disconnected for closedAfter
// is taken as closed.
func awaitSession(ctx context.Context, conn *zk.Conn, logger *slog.Logger) error {
	start := time.Now()
	var disconnected time.Time
	logged := false
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		switch st := conn.State(); {
		case st == zk.StateHasSession:
			return nil
		case st != zk.StateDisconnected || conn.SessionID() == 0:
			disconnected = time.Time{}
		case disconnected.IsZero():
			disconnected = time.Now()
		case time.Since(disconnected) >= closedAfter:
			return errConnClosed(zk.ErrConnectionClosed)
		}
		if !logged && time.Since(start) >= quietSession {
			logger.Warn("zookeeper: no session with ZooKeeper; waiting, keeping the last set", "state", conn.State().String())
			logged = true
		}
		if !sleepCtx(ctx, pollSession) {
			return ctx.Err()
		}
	}
}

// errConnClosed is returned when the caller's connection was closed.
func errConnClosed(cause error) error {
	if errors.Is(cause, zk.ErrClosing) {
		return fmt.Errorf("zookeeper: the connection was closed: %w", cause)
	}
	return fmt.Errorf("zookeeper: the connection was closed (%v): %w", cause, zk.ErrClosing)
}

// zkLogger hands the go-zookeeper client's messages (connections made and
// lost, sessions established) to an slog.Logger at Debug.
type zkLogger struct{ l *slog.Logger }

func (z zkLogger) Printf(format string, args ...any) {
	if z.l.Enabled(context.Background(), slog.LevelDebug) {
		z.l.Debug("zookeeper client: " + fmt.Sprintf(format, args...))
	}
}

// orDiscard returns l, or a logger that drops everything when l is nil.
func orDiscard(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(discard{})
	}
	return l
}

// discard is a slog.Handler that drops everything (slog.DiscardHandler
// needs Go 1.24; this module supports 1.22).
type discard struct{}

func (discard) Enabled(context.Context, slog.Level) bool  { return false }
func (discard) Handle(context.Context, slog.Record) error { return nil }
func (d discard) WithAttrs([]slog.Attr) slog.Handler      { return d }
func (d discard) WithGroup(string) slog.Handler           { return d }
