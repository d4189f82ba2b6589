package zookeeper_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-lb/lb"
	"github.com/go-lb/lb/discovery/zookeeper"
	"github.com/go-lb/lb/internal/resolvertest"
)

// The first set, then children added, removed and changed, each reported
// once; the same data written again is no change.
func TestResolverFollowsChildren(t *testing.T) {
	t.Parallel()
	admin := connectShared(t)
	p := resolvertest.Uniq("/follow/api")
	put(t, admin, p+"/a", `{"addr":"10.0.0.1:80","weight":3,"hash_key":"a","labels":{"zone":"eu-1"}}`)
	put(t, admin, p+"/b", " 10.0.0.2:80\n")
	put(t, admin, p+"/10.0.0.3:80", "") // no data: the name is the address

	rec := resolvertest.Watch(t, zookeeper.Resolver{Conn: connectShared(t), Path: p})
	rec.WaitAddrs(t, "10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80")
	assert.Equal(t, []lb.Endpoint{
		{Addr: "10.0.0.1:80", Weight: 3, HashKey: "a", Labels: map[string]string{"zone": "eu-1"}},
		{Addr: "10.0.0.2:80"},
		{Addr: "10.0.0.3:80"},
	}, rec.Last())
	require.Equal(t, 1, rec.Count())

	put(t, admin, p+"/d", "10.0.0.4:80")
	rec.WaitAddrs(t, "10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80", "10.0.0.4:80")
	del(t, admin, p+"/a")
	rec.WaitAddrs(t, "10.0.0.2:80", "10.0.0.3:80", "10.0.0.4:80")
	put(t, admin, p+"/b", `{"addr":"10.0.0.2:80","weight":2}`)
	rec.WaitCount(t, 4, "the new weight")
	assert.Equal(t, 2, rec.Last()[0].Weight)

	// Same data again, then a real change: only the change is reported.
	put(t, admin, p+"/b", `{"addr":"10.0.0.2:80","weight":2}`)
	put(t, admin, p+"/b", `{"weight":2,"addr":"10.0.0.2:80"}`)
	put(t, admin, p+"/10.0.0.3:80", "10.0.0.5:80") // data now wins over the name
	rec.WaitAddrs(t, "10.0.0.2:80", "10.0.0.4:80", "10.0.0.5:80")
	assert.Equal(t, 5, rec.Count(), "an identical set was reported")

	// The reported slices are the caller's: changing one changes nothing.
	rec.Last()[0].Labels = map[string]string{"x": "y"}
	put(t, admin, p+"/e", "10.0.0.6:80")
	rec.WaitAddrs(t, "10.0.0.2:80", "10.0.0.4:80", "10.0.0.5:80", "10.0.0.6:80")
	assert.Nil(t, rec.Last()[0].Labels)
	rec.NoRepeats(t)
	require.ErrorIs(t, rec.Stop(), context.Canceled)
}

// Malformed children are skipped and logged, the rest kept; a malformed
// value on a child that held an endpoint keeps that endpoint.
func TestResolverMalformedChildren(t *testing.T) {
	t.Parallel()
	admin := connectShared(t)
	p := resolvertest.Uniq("/malformed/api")
	put(t, admin, p+"/a", `{"addr":"10.0.0.1:80"}`)
	put(t, admin, p+"/bad1", "not an endpoint")
	put(t, admin, p+"/bad2", `{"addr":"10.0.0.9:80","weight":-1}`)
	put(t, admin, p+"/no-data-no-port", "")
	put(t, admin, p+"/b", "10.0.0.2:80")

	logs := newLogs()
	rec := resolvertest.Watch(t, zookeeper.Resolver{Conn: connectShared(t), Path: p, Logger: slog.New(logs)})
	rec.WaitAddrs(t, "10.0.0.1:80", "10.0.0.2:80")
	assert.Equal(t, 3, logs.Count("malformed"))
	assert.Equal(t, 1, logs.Count("znode="+p+"/bad1 "))
	assert.Equal(t, 1, logs.Count("its name is not an endpoint"))

	put(t, admin, p+"/b", `{"addr":`)
	resolvertest.WaitFor(t, "the malformed write to be logged", func() bool { return logs.Count("znode="+p+"/b ") == 1 })
	put(t, admin, p+"/c", "10.0.0.3:80")
	rec.WaitAddrs(t, "10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80")
	assert.Equal(t, 2, rec.Count(), "a set was reported for the malformed write")

	// A malformed child becoming valid joins; the child with the bad
	// value goes when deleted.
	put(t, admin, p+"/bad1", "10.0.0.8:80")
	rec.WaitAddrs(t, "10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80", "10.0.0.8:80")
	del(t, admin, p+"/b")
	rec.WaitAddrs(t, "10.0.0.1:80", "10.0.0.3:80", "10.0.0.8:80")
	rec.NoRepeats(t)
}

// Two children with one address: the one written last wins, and the
// address stays while either exists. Two addresses with one hash name:
// the first written keeps it, so the balancer still takes the set.
func TestResolverDuplicates(t *testing.T) {
	t.Parallel()
	admin := connectShared(t)
	p := resolvertest.Uniq("/dups/api")
	put(t, admin, p+"/old", `{"addr":"10.0.0.1:80","weight":1}`)
	logs := newLogs()
	rec := resolvertest.Watch(t, zookeeper.Resolver{Conn: connectShared(t), Path: p, Logger: slog.New(logs)})
	rec.WaitAddrs(t, "10.0.0.1:80")
	put(t, admin, p+"/new", `{"addr":"10.0.0.1:80","weight":5}`)
	rec.WaitCount(t, 2, "the newer child's weight")
	assert.Equal(t, []lb.Endpoint{{Addr: "10.0.0.1:80", Weight: 5}}, rec.Last())
	del(t, admin, p+"/new")
	rec.WaitCount(t, 3, "the older child's weight")
	assert.Equal(t, []lb.Endpoint{{Addr: "10.0.0.1:80", Weight: 1}}, rec.Last())

	put(t, admin, p+"/h1", `{"addr":"10.0.0.2:80","hash_key":"cache-1"}`)
	rec.WaitAddrs(t, "10.0.0.1:80", "10.0.0.2:80")
	put(t, admin, p+"/h2", `{"addr":"10.0.0.3:80","hash_key":"cache-1"}`)
	put(t, admin, p+"/h3", `{"addr":"10.0.0.4:80","hash_key":"10.0.0.1:80"}`) // another's address as hash name
	put(t, admin, p+"/h4", `{"addr":"10.0.0.5:80"}`)
	rec.WaitAddrs(t, "10.0.0.1:80", "10.0.0.2:80", "10.0.0.5:80")
	assert.Positive(t, logs.Count("hash_name=cache-1 kept=10.0.0.2:80"))
	assert.Positive(t, logs.Count("hash_name=10.0.0.1:80 kept=10.0.0.1:80"))
	bal, err := lb.NewBalancer(lb.Ring{})
	require.NoError(t, err)
	defer bal.Close()
	require.NoError(t, bal.Update(rec.Last()))
	rec.NoRepeats(t)
}

// A parent that does not exist is no endpoints (ZooKeeper says so), and
// is watched: once created, its children are followed; deleted again, the
// set is empty again.
func TestResolverMissingParent(t *testing.T) {
	t.Parallel()
	admin := connectShared(t)
	p := resolvertest.Uniq("/missing/api")
	logs := newLogs()
	rec := resolvertest.Watch(t, zookeeper.Resolver{Conn: connectShared(t), Path: p, Logger: slog.New(logs)})
	rec.WaitAddrs(t)
	assert.NotNil(t, rec.Last())
	assert.Equal(t, 1, logs.Count("does not exist"))

	put(t, admin, p, "")
	put(t, admin, p+"/a", "10.0.0.1:80")
	rec.WaitAddrs(t, "10.0.0.1:80")
	del(t, admin, p+"/a")
	rec.WaitAddrs(t)
	put(t, admin, p+"/b", "10.0.0.2:80")
	rec.WaitAddrs(t, "10.0.0.2:80")
	del(t, admin, p+"/b")
	del(t, admin, p)
	rec.WaitAddrs(t)
	put(t, admin, p+"/c", "10.0.0.3:80")
	rec.WaitAddrs(t, "10.0.0.3:80")
	rec.NoRepeats(t)
	assert.Equal(t, 2, logs.Count("does not exist"))
}

// 1,000 children: the first set is whole, and a change among them is
// followed.
func TestResolverThousandChildren(t *testing.T) {
	t.Parallel()
	admin := connectShared(t)
	p := resolvertest.Uniq("/thousand/api")
	createMany(t, admin, p, 1000)
	rec := resolvertest.Watch(t, zookeeper.Resolver{Conn: connectShared(t), Path: p})
	resolvertest.WaitFor(t, "1,000 endpoints", func() bool { return len(rec.Last()) == 1000 })
	require.Equal(t, 1, rec.Count())
	for i, e := range rec.Last() {
		require.NoError(t, e.Validate())
		if i > 0 {
			require.Less(t, rec.Last()[i-1].Addr, e.Addr, "sorted by address")
		}
	}
	del(t, admin, p+"/n0007")
	resolvertest.WaitFor(t, "999 endpoints", func() bool { return len(rec.Last()) == 999 })
	put(t, admin, p+"/n0008", `{"addr":"10.9.9.9:80","weight":7}`)
	rec.WaitCount(t, 3, "the change")
	assert.Len(t, rec.Last(), 999)
	rec.NoRepeats(t)
}

// createMany creates p and n children under it, n%d, with JSON values
// (weights 1-3, four zones), 100 to a multi.
func createMany(t testing.TB, conn *zk.Conn, p string, n int) {
	t.Helper()
	put(t, conn, p, "")
	acl := zk.WorldACL(zk.PermAll)
	for i := 0; i < n; i += 100 {
		ops := make([]any, 0, 100)
		for j := i; j < min(i+100, n); j++ {
			val, err := lb.EncodeEndpoint(lb.Endpoint{
				Addr: fmt.Sprintf("10.3.%d.%d:8080", j/256, j%256), Weight: 1 + j%3,
				Labels: map[string]string{"zone": fmt.Sprintf("z%d", j%4)},
			})
			require.NoError(t, err)
			ops = append(ops, &zk.CreateRequest{Path: fmt.Sprintf("%s/n%04d", p, j), Data: val, Acl: acl})
		}
		_, err := conn.Multi(ops...)
		require.NoError(t, err)
	}
}

// The server is killed and started again on the same port and data:
// meanwhile the set stays and picks go on; after, the resolver's own
// connection resumes its session (so does a registration's), and changes
// are followed again.
func TestResolverSurvivesServerRestart(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	admin := connect(t, srv.addr, 10*time.Second, nil)
	p := resolvertest.Uniq("/restart/api")
	put(t, admin, p+"/a", "10.0.0.1:80")
	reg, err := zookeeper.Register(context.Background(), connect(t, srv.addr, 10*time.Second, nil), p,
		lb.Endpoint{Addr: "10.0.0.2:80"}, zookeeper.RegisterOptions{})
	require.NoError(t, err)
	_, before := exists(t, admin, reg.Path())

	bal, err := lb.NewBalancer(lb.RoundRobin{})
	require.NoError(t, err)
	defer bal.Close()
	f := lb.StartFollower(context.Background(), zookeeper.Resolver{
		Servers: []string{srv.addr}, Path: p, MaxBackoff: 200 * time.Millisecond,
	}, bal)
	defer f.Stop()
	<-f.Ready()
	require.Equal(t, "[10.0.0.1:80 10.0.0.2:80]", resolvertest.Backends(bal))

	srv.stop()
	resolvertest.PicksWork(t, bal, 10)
	require.NoError(t, srv.start())
	assert.Equal(t, "[10.0.0.1:80 10.0.0.2:80]", resolvertest.Backends(bal))

	put(t, admin, p+"/c", "10.0.0.3:80")
	resolvertest.WaitFor(t, "the child created after the restart", func() bool { return resolvertest.Backends(bal) == "[10.0.0.1:80 10.0.0.2:80 10.0.0.3:80]" })
	del(t, admin, p+"/a")
	resolvertest.WaitFor(t, "the child deleted after the restart", func() bool { return resolvertest.Backends(bal) == "[10.0.0.2:80 10.0.0.3:80]" })
	ok, after := exists(t, admin, reg.Path())
	require.True(t, ok, "the registration's session outlived the restart")
	assert.Equal(t, before.EphemeralOwner, after.EphemeralOwner)
	require.NoError(t, reg.Close())
	resolvertest.WaitFor(t, "the registration's removal", func() bool { return resolvertest.Backends(bal) == "[10.0.0.3:80]" })
	require.NoError(t, f.Stop())
}

// The resolver's connection is cut for longer than its session timeout,
// while the server carries on and the children change: the set stays
// meanwhile; once the connection is back, the session has expired, and
// the resolver lists again in a new session, reports the current set, and
// follows changes after it. Both with a connection of the caller's and
// with the resolver's own.
func TestResolverSessionExpiry(t *testing.T) {
	t.Parallel()
	for _, own := range []bool{false, true} {
		t.Run(fmt.Sprintf("own=%v", own), func(t *testing.T) {
			t.Parallel()
			admin := connectShared(t)
			p := resolvertest.Uniq("/expiry/api")
			put(t, admin, p+"/a", "10.0.0.1:80")
			put(t, admin, p+"/b", "10.0.0.2:80")
			lnk := newLink()
			logs := newLogs()
			r := zookeeper.Resolver{Path: p, Logger: slog.New(logs), MaxBackoff: 100 * time.Millisecond}
			var conn *zk.Conn
			if own {
				r.Servers, r.SessionTimeout, r.Dialer = []string{exampleZK}, time.Second, lnk.dial
			} else {
				conn = connect(t, exampleZK, time.Second, lnk.dial)
				r.Conn = conn
			}
			rec := resolvertest.Watch(t, r)
			rec.WaitAddrs(t, "10.0.0.1:80", "10.0.0.2:80")
			var sid int64
			if conn != nil {
				sid = conn.SessionID()
			}
			// A marker: an ephemeral znode of a session cut with the
			// resolver's but twice as long; once it is gone, the
			// resolver's session has expired.
			marker := connect(t, exampleZK, 2*time.Second, lnk.dial)
			_, err := marker.Create(p+"-marker", nil, zk.FlagEphemeral, zk.WorldACL(zk.PermAll))
			require.NoError(t, err)

			lnk.cut()
			del(t, admin, p+"/a")
			put(t, admin, p+"/b", `{"addr":"10.0.0.2:80","weight":2}`)
			put(t, admin, p+"/c", "10.0.0.3:80")
			resolvertest.WaitFor(t, "the cut sessions to expire", func() bool { ok, _ := exists(t, admin, p+"-marker"); return !ok })
			assert.Equal(t, "[10.0.0.1:80 10.0.0.2:80]", resolvertest.Format(rec.Addrs()), "the set must stay while the connection is cut")

			lnk.heal()
			rec.WaitAddrs(t, "10.0.0.2:80", "10.0.0.3:80")
			assert.Equal(t, 2, rec.Last()[0].Weight)
			assert.Positive(t, logs.Count("session lost"))
			if conn != nil {
				assert.NotEqual(t, sid, conn.SessionID(), "a new session")
			}
			put(t, admin, p+"/d", "10.0.0.4:80")
			rec.WaitAddrs(t, "10.0.0.2:80", "10.0.0.3:80", "10.0.0.4:80")
			del(t, admin, p+"/c")
			rec.WaitAddrs(t, "10.0.0.2:80", "10.0.0.4:80")
			rec.NoRepeats(t)
			require.ErrorIs(t, rec.Stop(), context.Canceled)
		})
	}
}

// Watch returns ctx.Err() when ctx ends, also while the server cannot be
// reached; the error of update; and an error when the caller's connection
// is closed under it. TestMain's goleak check then finds no goroutine of
// theirs (nor of the connections Watch opened).
func TestResolverEnds(t *testing.T) {
	t.Parallel()
	admin := connectShared(t)
	p := resolvertest.Uniq("/ends/api")
	put(t, admin, p+"/a", "10.0.0.1:80")

	t.Run("update fails", func(t *testing.T) {
		t.Parallel()
		errStop := errors.New("stop")
		for _, r := range []zookeeper.Resolver{{Conn: admin, Path: p}, {Servers: []string{exampleZK}, Path: p}} {
			err := r.Watch(context.Background(), func([]lb.Endpoint) error { return errStop })
			require.ErrorIs(t, err, errStop)
		}
	})
	t.Run("ctx ended before", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		err := zookeeper.Resolver{Servers: []string{exampleZK}, Path: p}.Watch(ctx, func([]lb.Endpoint) error {
			t.Error("update called")
			return nil
		})
		require.ErrorIs(t, err, context.Canceled)
	})
	t.Run("ctx ends while unreachable", func(t *testing.T) {
		t.Parallel()
		port, err := resolvertest.FreePort() // nothing listens there
		require.NoError(t, err)
		logs := newLogs()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			done <- zookeeper.Resolver{
				Servers: []string{fmt.Sprintf("127.0.0.1:%d", port)}, Path: p, Logger: slog.New(logs), MaxBackoff: 50 * time.Millisecond,
			}.Watch(ctx, func([]lb.Endpoint) error {
				t.Error("update called")
				return nil
			})
		}()
		resolvertest.WaitFor(t, "Watch to wait for a session", func() bool { return logs.Count("no session") > 0 })
		start := time.Now()
		cancel()
		require.ErrorIs(t, <-done, context.Canceled)
		t.Logf("Watch returned %v after cancel", time.Since(start).Round(time.Millisecond))
	})
	t.Run("caller's connection closed", func(t *testing.T) {
		t.Parallel()
		conn := connectShared(t)
		done := make(chan error, 1)
		started := make(chan struct{})
		go func() {
			done <- zookeeper.Resolver{Conn: conn, Path: p}.Watch(context.Background(), func([]lb.Endpoint) error {
				close(started)
				return nil
			})
		}()
		<-started
		conn.Close()
		err := <-done
		require.ErrorIs(t, err, zk.ErrClosing)
		require.ErrorContains(t, err, "connection was closed")
	})
	t.Run("caller's connection closed while it has no session", func(t *testing.T) {
		t.Parallel()
		lnk := newLink()
		conn := connect(t, exampleZK, 10*time.Second, lnk.dial)
		lnk.cut() // Watch never gets a watch set: it waits for a session until the close
		logs := newLogs()
		done := make(chan error, 1)
		go func() {
			done <- zookeeper.Resolver{Conn: conn, Path: p, Logger: slog.New(logs), MaxBackoff: 50 * time.Millisecond}.Watch(
				context.Background(), func([]lb.Endpoint) error {
					t.Error("update called")
					return nil
				})
		}()
		resolvertest.WaitFor(t, "Watch to wait for a session", func() bool { return logs.Count("no session") > 0 })
		conn.Close()
		err := <-done
		require.ErrorIs(t, err, zk.ErrClosing)
		require.ErrorContains(t, err, "connection was closed")
	})
	t.Run("through a follower", func(t *testing.T) {
		t.Parallel()
		bal, err := lb.NewBalancer(lb.RoundRobin{})
		require.NoError(t, err)
		defer bal.Close()
		f := lb.StartFollower(context.Background(), zookeeper.Resolver{Servers: []string{exampleZK}, Path: p}, bal)
		<-f.Ready()
		require.NoError(t, f.Stop())
		require.NoError(t, bal.Close())
	})
}

func TestResolverConfigErrors(t *testing.T) {
	t.Parallel()
	conn := connectShared(t)
	srv := []string{exampleZK}
	tests := []struct {
		name string
		give zookeeper.Resolver
		want string
	}{
		{"no connection", zookeeper.Resolver{Path: "/x"}, "Conn is nil and Servers is empty"},
		{"both", zookeeper.Resolver{Conn: conn, Servers: srv, Path: "/x"}, "Conn and Servers are both set"},
		{"timeout with conn", zookeeper.Resolver{Conn: conn, SessionTimeout: time.Second, Path: "/x"}, "SessionTimeout is set with Conn"},
		{"dialer with conn", zookeeper.Resolver{Conn: conn, Dialer: net.DialTimeout, Path: "/x"}, "Dialer is set with Conn"},
		{"negative timeout", zookeeper.Resolver{Servers: srv, SessionTimeout: -1, Path: "/x"}, "SessionTimeout is -1ns"},
		{"negative backoff", zookeeper.Resolver{Conn: conn, MaxBackoff: -1, Path: "/x"}, "MaxBackoff is -1ns"},
		{"empty server", zookeeper.Resolver{Servers: []string{exampleZK, ""}, Path: "/x"}, `Servers[1] is ""`},
		{"two servers in one", zookeeper.Resolver{Servers: []string{"a:1,b:2"}, Path: "/x"}, `Servers[0] is "a:1,b:2"`},
		{"no path", zookeeper.Resolver{Conn: conn}, "Path is empty"},
		{"relative path", zookeeper.Resolver{Conn: conn, Path: "services/api"}, "is not absolute"},
		{"root", zookeeper.Resolver{Conn: conn, Path: "/"}, "is the root"},
		{"trailing slash", zookeeper.Resolver{Conn: conn, Path: "/services/"}, `ends with "/"`},
		{"empty segment", zookeeper.Resolver{Conn: conn, Path: "/a//b"}, "empty segment"},
		{"dot segment", zookeeper.Resolver{Conn: conn, Path: "/a/../b"}, `".." segment`},
		{"control character", zookeeper.Resolver{Conn: conn, Path: "/a\tb"}, "U+0009"},
		{"not utf-8", zookeeper.Resolver{Conn: conn, Path: "/a\xffb"}, "UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resolvertest.ConfigError(t, tt.give, "zookeeper.Resolver.", tt.want)
		})
	}
}
