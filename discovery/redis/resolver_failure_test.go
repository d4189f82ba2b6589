package redis_test

import (
	"context"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-lb/lb"
	lbredis "github.com/go-lb/lb/discovery/redis"
	"github.com/go-lb/lb/internal/resolvertest"
)

// The server is killed: meanwhile the set stays and picks go on. It is
// started again, empty (no persistence), on the same port: the resolver
// reconnects and reads everything again, the registered instance comes
// back at its next refresh, and changes are followed again.
func TestResolverServerRestart(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	svc := uniq("restart")
	admin := srv.client(t)
	reg, err := lbredis.Register(bg(t), srv.client(t), svc, lb.Endpoint{Addr: "10.0.0.1:80"}, lbredis.RegisterOptions{TTL: 600 * time.Millisecond})
	require.NoError(t, err)
	defer reg.Close()
	put(t, admin, svc, "b", "10.0.0.2:80", 0)

	bal, err := lb.NewBalancer(lb.RoundRobin{})
	require.NoError(t, err)
	defer bal.Close()
	logs, logger := resolvertest.NewLogs()
	f := lb.StartFollower(context.Background(), lbredis.Resolver{
		Client: srv.client(t), Service: svc, Logger: logger,
		ResyncInterval: noResync, RequestTimeout: time.Second, MaxBackoff: 200 * time.Millisecond,
	}, bal)
	defer f.Stop()
	<-f.Ready()
	require.Equal(t, "[10.0.0.1:80 10.0.0.2:80]", resolvertest.Backends(bal))

	srv.kill()
	resolvertest.WaitFor(t, "the resolver to notice", func() bool { return logs.Count("keeping the last set") > 0 })
	resolvertest.WaitFor(t, "a failed reconnection", func() bool { return logs.Count("keeping the last set") > 1 })
	resolvertest.PicksWork(t, bal, 10)
	assert.Equal(t, "[10.0.0.1:80 10.0.0.2:80]", resolvertest.Backends(bal), "a lost server emptied the set")

	require.NoError(t, srv.start())
	resolvertest.WaitFor(t, "the registered instance alone", func() bool { return resolvertest.Backends(bal) == "[10.0.0.1:80]" })
	put(t, admin, svc, "c", "10.0.0.3:80", 0)
	resolvertest.WaitFor(t, "a change after the restart", func() bool { return resolvertest.Backends(bal) == "[10.0.0.1:80 10.0.0.3:80]" })
	require.NoError(t, reg.Close())
	resolvertest.WaitFor(t, "the registration's removal", func() bool { return resolvertest.Backends(bal) == "[10.0.0.3:80]" })
	require.NoError(t, f.Stop())
}

// With no keyspace notifications (the server has them off, and
// LeaveConfig keeps it so), a key written by hand is found only by the
// periodic re-read; Register's announcements still arrive at once.
func TestResolverResyncFindsMissedChanges(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	svc := uniq("resync")
	admin := srv.client(t)
	require.NoError(t, admin.ConfigSet(bg(t), "notify-keyspace-events", "").Err())
	logs, logger := resolvertest.NewLogs()
	rec := resolvertest.Watch(t, lbredis.Resolver{
		Client: srv.client(t), Service: svc, Logger: logger, LeaveConfig: true,
		ResyncInterval: 200 * time.Millisecond,
	})
	rec.WaitCount(t, 1, "the first set")
	assert.Equal(t, 1, logs.Count("keyspace notifications are off"))

	put(t, admin, svc, "a", "10.0.0.1:80", 0)
	rec.WaitAddrs(t, "10.0.0.1:80")
	resolvertest.WaitFor(t, "the re-read to say so", func() bool { return logs.Count("periodic re-read found changes") == 1 })

	reg, err := lbredis.Register(bg(t), admin, svc, lb.Endpoint{Addr: "10.0.0.2:80"}, lbredis.RegisterOptions{})
	require.NoError(t, err)
	rec.WaitAddrs(t, "10.0.0.1:80", "10.0.0.2:80")
	require.NoError(t, reg.Close())
	rec.WaitAddrs(t, "10.0.0.1:80")
	assert.Equal(t, 1, logs.Count("periodic re-read found changes"), "announced changes waited for a re-read")
	cfg, err := admin.ConfigGet(bg(t), "notify-keyspace-events").Result()
	require.NoError(t, err)
	assert.Empty(t, cfg["notify-keyspace-events"], "LeaveConfig changed the server's configuration")
	rec.NoRepeats(t)
}

// Without LeaveConfig, the resolver adds the keyspace event classes it
// needs to those the server has, at each connection.
func TestResolverEnablesNotifications(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	admin := srv.client(t)
	require.NoError(t, admin.ConfigSet(bg(t), "notify-keyspace-events", "El").Err())
	logs, logger := resolvertest.NewLogs()
	rec := resolvertest.Watch(t, lbredis.Resolver{Client: srv.client(t), Service: uniq("enable"), Logger: logger})
	rec.WaitCount(t, 1, "the first set")
	cfg, err := admin.ConfigGet(bg(t), "notify-keyspace-events").Result()
	require.NoError(t, err)
	for _, c := range "KEg$lxe" {
		assert.Contains(t, cfg["notify-keyspace-events"], string(c))
	}
	assert.Equal(t, 1, logs.Count("enabled keyspace notifications"))
	assert.Zero(t, logs.Count("notifications are off"))
}

// The subscription's connection is killed, in the same transaction as a
// change: the resolver resubscribes and reads everything again, so the
// change that no notification carried is not lost.
func TestResolverSubscriptionKilled(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	svc := uniq("killed")
	admin := srv.client(t)
	put(t, admin, svc, "a", "10.0.0.1:80", 0)
	logs, logger := resolvertest.NewLogs()
	rec := resolvertest.Watch(t, lbredis.Resolver{Client: srv.client(t), Service: svc, Logger: logger, ResyncInterval: noResync})
	rec.WaitAddrs(t, "10.0.0.1:80")

	_, err := admin.TxPipelined(bg(t), func(p goredis.Pipeliner) error {
		p.ClientKillByFilter(bg(t), "TYPE", "pubsub")
		p.Set(bg(t), instanceKey(svc, "b"), "10.0.0.2:80", 0)
		p.ZAdd(bg(t), indexKey(svc), goredis.Z{Score: inf, Member: "b"})
		return nil
	})
	require.NoError(t, err)
	rec.WaitAddrs(t, "10.0.0.1:80", "10.0.0.2:80")
	assert.Equal(t, 1, logs.Count("keeping the last set"))
	put(t, admin, svc, "c", "10.0.0.3:80", 0)
	rec.WaitAddrs(t, "10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80")
	rec.NoRepeats(t)
}

// The connections go silent (a partition: nothing is closed, nothing
// arrives). The resolver pings the quiet subscription, gives it up when
// no answer comes, reconnects and reads everything again.
func TestResolverSilentConnection(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	svc := uniq("silent")
	admin := srv.client(t)
	put(t, admin, svc, "a", "10.0.0.1:80", 0)
	px := resolvertest.StartProxy(t, srv.addr)
	cli := goredis.NewClient(&goredis.Options{Addr: px.Addr()})
	t.Cleanup(func() { _ = cli.Close() })
	logs, logger := resolvertest.NewLogs()
	rec := resolvertest.Watch(t, lbredis.Resolver{
		Client: cli, Service: svc, Logger: logger,
		ResyncInterval: noResync, RequestTimeout: 300 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
	})
	rec.WaitAddrs(t, "10.0.0.1:80")

	px.Freeze()
	put(t, admin, svc, "b", "10.0.0.2:80", 0)
	rec.WaitAddrs(t, "10.0.0.1:80", "10.0.0.2:80")
	assert.Equal(t, 1, logs.Count("did not answer a ping"))
	put(t, admin, svc, "c", "10.0.0.3:80", 0)
	rec.WaitAddrs(t, "10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80")
	rec.NoRepeats(t)
}

// A user whose ACL gives it no pub/sub channels (Redis 7's default for
// new users) cannot subscribe: the resolver says so once and follows the
// service by its re-reads.
func TestResolverSubscriptionsRefused(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	svc := uniq("acl")
	admin := srv.client(t)
	require.NoError(t, admin.Do(bg(t), "ACL", "SETUSER", "nochannels", "on", ">secret", "~*", "+@all", "resetchannels").Err())
	cli := goredis.NewClient(&goredis.Options{Addr: srv.addr, Username: "nochannels", Password: "secret"})
	t.Cleanup(func() { _ = cli.Close() })
	logs, logger := resolvertest.NewLogs()
	rec := resolvertest.Watch(t, lbredis.Resolver{Client: cli, Service: svc, Logger: logger, ResyncInterval: 100 * time.Millisecond})
	rec.WaitCount(t, 1, "the first set")
	put(t, admin, svc, "a", "10.0.0.1:80", 0)
	rec.WaitAddrs(t, "10.0.0.1:80")
	put(t, admin, svc, "b", "10.0.0.2:80", 0)
	rec.WaitAddrs(t, "10.0.0.1:80", "10.0.0.2:80")
	assert.Equal(t, 2, logs.Count("refused a subscription"))
	assert.Zero(t, logs.Count("keeping the last set"), "a refused subscription is not a lost connection")
}
