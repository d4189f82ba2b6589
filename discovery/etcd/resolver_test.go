package etcd_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/go-lb/lb"
	"github.com/go-lb/lb/discovery/etcd"
	"github.com/go-lb/lb/internal/resolvertest"
)

func register(t *testing.T, cli *clientv3.Client, prefix, addr string, ttl time.Duration) *etcd.Registration {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	reg, err := etcd.Register(ctx, cli, prefix+addr, lb.Endpoint{Addr: addr}, etcd.RegisterOptions{TTL: ttl})
	require.NoError(t, err)
	return reg
}

// Three services register, each with a client of its own (as separate
// processes would); the resolver, through Follow, puts all three in a
// Balancer. One stops cleanly and is removed at once; one is killed (its
// client goes away without deregistering) and is removed when its lease
// runs out.
func TestResolverFollowsRegistrations(t *testing.T) {
	t.Parallel()
	const ttl = 2 * time.Second
	prefix := resolvertest.Uniq("/follows/api/")
	var clis [3]*clientv3.Client
	var regs [3]*etcd.Registration
	for i := range regs {
		clis[i] = newClient(t, exampleEtcd)
		regs[i] = register(t, clis[i], prefix, []string{"10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"}[i], ttl)
	}

	bal, err := lb.NewBalancer(lb.RoundRobin{})
	require.NoError(t, err)
	defer bal.Close()
	f := lb.StartFollower(context.Background(), etcd.Resolver{Client: newClient(t, exampleEtcd), Prefix: prefix}, bal)
	defer f.Stop()
	<-f.Ready()
	assert.Equal(t, "[10.0.0.1:80 10.0.0.2:80 10.0.0.3:80]", resolvertest.Backends(bal))

	// A clean stop: the key goes at once.
	require.NoError(t, regs[0].Close())
	<-regs[0].Done()
	resolvertest.WaitFor(t, "the stopped service to go", func() bool { return resolvertest.Backends(bal) == "[10.0.0.2:80 10.0.0.3:80]" })

	// A crash: the lease is no longer kept alive; etcd expires it.
	killed := time.Now()
	require.NoError(t, clis[1].Close())
	<-regs[1].Done()
	resolvertest.WaitFor(t, "the killed service to expire", func() bool { return resolvertest.Backends(bal) == "[10.0.0.3:80]" })
	t.Logf("killed service removed %v after its client died (TTL %v)", time.Since(killed).Round(time.Millisecond), ttl)
	require.Error(t, regs[1].Close(), "revoking through a closed client")

	// The survivor has outlived its TTL (the killed service took a TTL to
	// expire): its lease is renewed.
	require.NoError(t, regs[2].Close())
	resolvertest.WaitFor(t, "the last service to go", func() bool { return resolvertest.Backends(bal) == "[]" })
	require.NoError(t, f.Stop())
}

// Values: JSON with weight and labels, bare host:port, and malformed ones,
// which are skipped (logged) without touching the set.
func TestResolverValues(t *testing.T) {
	t.Parallel()
	prefix := resolvertest.Uniq("/values/api/")
	cli := newClient(t, exampleEtcd)
	put(t, cli, prefix+"a", `{"addr":"10.0.0.1:80","weight":3,"labels":{"zone":"eu-1"}}`)
	put(t, cli, prefix+"b", "  10.0.0.2:80\n")
	put(t, cli, prefix+"bad1", "not an endpoint")
	put(t, cli, prefix+"bad2", `{"addr":"10.0.0.9:80","weight":-1}`)
	put(t, cli, strings.TrimSuffix(prefix, "/")+"other", "10.9.9.9:80") // another prefix's key

	logs, logger := resolvertest.NewLogs()
	rec := resolvertest.Watch(t, etcd.Resolver{Client: cli, Prefix: prefix, Logger: logger})
	rec.WaitAddrs(t, "10.0.0.1:80", "10.0.0.2:80")
	assert.Equal(t, []lb.Endpoint{
		{Addr: "10.0.0.1:80", Weight: 3, Labels: map[string]string{"zone": "eu-1"}},
		{Addr: "10.0.0.2:80"},
	}, rec.Last())
	assert.Equal(t, 2, logs.Count("malformed"))
	assert.Equal(t, 1, logs.Count("key="+prefix+"bad1"))

	// A malformed value on a key that held an endpoint keeps that endpoint.
	put(t, cli, prefix+"b", `{"addr":`)
	resolvertest.WaitFor(t, "the malformed put to be logged", func() bool { return logs.Count("key="+prefix+"b ") == 1 })
	// A change reported after it shows that nothing was reported for it.
	put(t, cli, prefix+"c", "10.0.0.3:80")
	rec.WaitAddrs(t, "10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80")
	assert.Equal(t, 2, rec.Count())

	// A weight change is a change; a put of the same value is not.
	put(t, cli, prefix+"c", `{"addr":"10.0.0.3:80","weight":2}`)
	rec.WaitCount(t, 3, "the new weight")
	assert.Equal(t, 2, rec.Last()[2].Weight)
	put(t, cli, prefix+"c", `{"addr":"10.0.0.3:80","weight":2}`)
	put(t, cli, prefix+"d", "10.0.0.4:80")
	rec.WaitAddrs(t, "10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80", "10.0.0.4:80")
	assert.Equal(t, 4, rec.Count(), "an identical set was reported")

	// Deletes remove, including the key whose last value was malformed.
	del(t, cli, prefix+"b")
	rec.WaitAddrs(t, "10.0.0.1:80", "10.0.0.3:80", "10.0.0.4:80")
	require.ErrorIs(t, rec.Stop(), context.Canceled)
}

// Two keys with the same address (a service restarted under a new key
// before its old lease ran out): the one written last wins, and the
// address stays while either key exists.
func TestResolverSameAddressTwice(t *testing.T) {
	t.Parallel()
	prefix := resolvertest.Uniq("/twice/api/")
	cli := newClient(t, exampleEtcd)
	put(t, cli, prefix+"old", `{"addr":"10.0.0.1:80","weight":1}`)
	rec := resolvertest.Watch(t, etcd.Resolver{Client: cli, Prefix: prefix})
	rec.WaitAddrs(t, "10.0.0.1:80")
	put(t, cli, prefix+"new", `{"addr":"10.0.0.1:80","weight":5}`)
	rec.WaitCount(t, 2, "the newer key's weight")
	assert.Equal(t, []lb.Endpoint{{Addr: "10.0.0.1:80", Weight: 5}}, rec.Last())
	del(t, cli, prefix+"new")
	rec.WaitCount(t, 3, "the older key's weight")
	assert.Equal(t, []lb.Endpoint{{Addr: "10.0.0.1:80", Weight: 1}}, rec.Last())
	del(t, cli, prefix+"old")
	rec.WaitCount(t, 4, "the empty set")
	assert.Empty(t, rec.Last())
}

// An empty prefix is reported as an empty set: etcd says there is nothing.
func TestResolverEmptyPrefix(t *testing.T) {
	t.Parallel()
	rec := resolvertest.Watch(t, etcd.Resolver{Client: newClient(t, exampleEtcd), Prefix: resolvertest.Uniq("/nothing/here/")})
	rec.WaitCount(t, 1, "a set")
	assert.NotNil(t, rec.Last())
	assert.Empty(t, rec.Last())
}

// The etcd server is stopped and started again on the same data and ports:
// meanwhile the set stays; afterwards the resolver follows changes again.
func TestResolverSurvivesEtcdRestart(t *testing.T) {
	t.Parallel()
	srv := startEtcd(t)
	prefix := resolvertest.Uniq("/restart/api/")
	cli := srv.client(t)
	put(t, cli, prefix+"a", "10.0.0.1:80")
	put(t, cli, prefix+"b", "10.0.0.2:80")

	bal, err := lb.NewBalancer(lb.RoundRobin{})
	require.NoError(t, err)
	defer bal.Close()
	_, logger := resolvertest.NewLogs()
	f := lb.StartFollower(context.Background(), etcd.Resolver{
		Client: srv.client(t), Prefix: prefix, Logger: logger,
		RequestTimeout: time.Second, MaxBackoff: 200 * time.Millisecond,
	}, bal)
	defer f.Stop()
	<-f.Ready()
	require.Equal(t, "[10.0.0.1:80 10.0.0.2:80]", resolvertest.Backends(bal))

	srv.stop()
	// While etcd is down, picks go on over the last set.
	resolvertest.PicksWork(t, bal, 10)
	require.NoError(t, srv.start())
	assert.Equal(t, "[10.0.0.1:80 10.0.0.2:80]", resolvertest.Backends(bal))

	put(t, cli, prefix+"c", "10.0.0.3:80")
	resolvertest.WaitFor(t, "the change after the restart", func() bool { return resolvertest.Backends(bal) == "[10.0.0.1:80 10.0.0.2:80 10.0.0.3:80]" })
	del(t, cli, prefix+"a")
	resolvertest.WaitFor(t, "the delete after the restart", func() bool { return resolvertest.Backends(bal) == "[10.0.0.2:80 10.0.0.3:80]" })
	require.NoError(t, f.Stop())
}

// startProxiedWatch starts an etcd with a1 = 10.0.0.1:80 under a fresh
// prefix, and a resolver that watches it through a proxy the test can cut;
// it returns once the resolver reported a1, with an admin client that
// bypasses the proxy.
func startProxiedWatch(t *testing.T, prefixBase string) (*clientv3.Client, string, *resolvertest.Proxy, *resolvertest.Recorder, *resolvertest.Logs) {
	t.Helper()
	srv := startEtcd(t)
	prefix := resolvertest.Uniq(prefixBase)
	admin := srv.client(t)
	put(t, admin, prefix+"a", "10.0.0.1:80")
	px := resolvertest.StartProxy(t, srv.clientURL.Host)
	logs, logger := resolvertest.NewLogs()
	rec := resolvertest.Watch(t, etcd.Resolver{
		Client: newClient(t, px.Addr()), Prefix: prefix, Logger: logger,
		RequestTimeout: time.Second, MaxBackoff: 200 * time.Millisecond,
	})
	rec.WaitAddrs(t, "10.0.0.1:80")
	return admin, prefix, px, rec, logs
}

// One client loses its connection while etcd carries on: changes are made
// and the history is compacted past the resolver's revision. When the
// connection comes back, the resolver's watch finds its revision compacted,
// lists again, and reports the current set.
func TestResolverCompactionWhileDisconnected(t *testing.T) {
	t.Parallel()
	admin, prefix, px, rec, logs := startProxiedWatch(t, "/compact/api/")

	px.Cut()
	put(t, admin, prefix+"b", "10.0.0.2:80")
	del(t, admin, prefix+"a")
	rev := put(t, admin, prefix+"c", "10.0.0.3:80")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	_, err := admin.Compact(ctx, rev)
	cancel()
	require.NoError(t, err)
	assert.Equal(t, 1, rec.Count(), "the resolver saw changes through a cut connection")
	assert.Equal(t, []string{"10.0.0.1:80"}, rec.Addrs())

	px.Heal(t)
	rec.WaitAddrs(t, "10.0.0.2:80", "10.0.0.3:80")
	assert.Positive(t, logs.Count("compacted"), "the resolver should have listed again after a compaction")

	put(t, admin, prefix+"d", "10.0.0.4:80")
	rec.WaitAddrs(t, "10.0.0.2:80", "10.0.0.3:80", "10.0.0.4:80")
	rec.NoRepeats(t)
}

// A watch that only missed a few events while disconnected resumes where
// it was, with no list in between and nothing lost.
func TestResolverResumesAfterLostConnection(t *testing.T) {
	t.Parallel()
	admin, prefix, px, rec, logs := startProxiedWatch(t, "/resume/api/")
	px.Cut()
	put(t, admin, prefix+"b", "10.0.0.2:80")
	del(t, admin, prefix+"a")
	px.Heal(t)
	rec.WaitAddrs(t, "10.0.0.2:80")
	put(t, admin, prefix+"c", "10.0.0.3:80")
	rec.WaitAddrs(t, "10.0.0.2:80", "10.0.0.3:80")
	assert.Zero(t, logs.Count("listing again"), "the watch should have resumed without a list")
	rec.NoRepeats(t)
}

func TestResolverConfigErrors(t *testing.T) {
	t.Parallel()
	cli := newClient(t, exampleEtcd)
	tests := []struct {
		name string
		give etcd.Resolver
		want string
	}{
		{"no client", etcd.Resolver{Prefix: "/x/"}, "Client"},
		{"no prefix", etcd.Resolver{Client: cli}, "Prefix"},
		{"timeout", etcd.Resolver{Client: cli, Prefix: "/x/", RequestTimeout: -1}, "RequestTimeout"},
		{"backoff", etcd.Resolver{Client: cli, Prefix: "/x/", MaxBackoff: -1}, "MaxBackoff"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resolvertest.ConfigError(t, tt.give, tt.want)
		})
	}
}

// The resolver ends when its client is closed, and when update fails.
func TestResolverEnds(t *testing.T) {
	t.Parallel()
	cli := newClient(t, exampleEtcd)
	prefix := resolvertest.Uniq("/ends/api/")
	put(t, cli, prefix+"a", "10.0.0.1:80")
	errStop := context.DeadlineExceeded
	err := etcd.Resolver{Client: cli, Prefix: prefix}.Watch(context.Background(), func([]lb.Endpoint) error { return errStop })
	require.ErrorIs(t, err, errStop)

	own := newClient(t, exampleEtcd)
	done := make(chan error, 1)
	started := make(chan struct{})
	go func() {
		done <- etcd.Resolver{Client: own, Prefix: prefix}.Watch(context.Background(), func([]lb.Endpoint) error {
			close(started)
			return nil
		})
	}()
	<-started
	require.NoError(t, own.Close())
	require.ErrorContains(t, <-done, "closed")
}
