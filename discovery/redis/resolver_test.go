package redis_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-lb/lb"
	lbredis "github.com/go-lb/lb/discovery/redis"
	"github.com/go-lb/lb/internal/resolvertest"
)

// noResync is a ResyncInterval no test outlives: with it, only
// notifications (and reconnections) can bring a change.
const noResync = time.Hour

// Three instances register, each with a client of its own (as separate
// processes would); the resolver, through lb.StartFollower, puts all
// three in a Balancer. One stops cleanly and is removed at once; one
// crashes (its client goes away without deregistering) and is removed
// when its TTL runs out.
func TestResolverFollowsRegistrations(t *testing.T) {
	t.Parallel()
	const ttl = 600 * time.Millisecond
	svc := uniq("follows")
	var clis [3]*goredis.Client
	var regs [3]*lbredis.Registration
	registered := time.Now()
	for i := range regs {
		clis[i] = shared.client(t)
		var err error
		regs[i], err = lbredis.Register(bg(t), clis[i], svc, lb.Endpoint{Addr: fmt.Sprintf("10.0.0.%d:80", i+1)}, lbredis.RegisterOptions{TTL: ttl})
		require.NoError(t, err)
	}

	bal, err := lb.NewBalancer(lb.RoundRobin{})
	require.NoError(t, err)
	defer bal.Close()
	f := lb.StartFollower(context.Background(), lbredis.Resolver{Client: shared.client(t), Service: svc, ResyncInterval: noResync}, bal)
	defer f.Stop()
	<-f.Ready()
	assert.Equal(t, "[10.0.0.1:80 10.0.0.2:80 10.0.0.3:80]", resolvertest.Backends(bal))

	// A clean stop: the instance goes at once.
	require.NoError(t, regs[0].Close())
	<-regs[0].Done()
	resolvertest.WaitFor(t, "the stopped instance to go", func() bool { return resolvertest.Backends(bal) == "[10.0.0.2:80 10.0.0.3:80]" })

	// A crash: nothing refreshes the key any more; Redis expires it.
	killed := time.Now()
	require.NoError(t, clis[1].Close())
	<-regs[1].Done()
	resolvertest.WaitFor(t, "the crashed instance to expire", func() bool { return resolvertest.Backends(bal) == "[10.0.0.3:80]" })
	t.Logf("crashed instance removed %v after its client died (TTL %v)", time.Since(killed).Round(time.Millisecond), ttl)
	require.Error(t, regs[1].Close(), "removing through a closed client")

	// The survivor has outlived its TTL: its refreshes keep it.
	assert.Greater(t, time.Since(registered), ttl)
	require.NoError(t, regs[2].Close())
	resolvertest.WaitFor(t, "the last instance to go", func() bool { return resolvertest.Backends(bal) == "[]" })
	require.NoError(t, f.Stop())
}

// Instances written by hand (no announcement: only keyspace notifications
// tell) are added, changed and removed; values are JSON or host:port;
// malformed values are skipped and logged once, and keep the endpoint an
// instance had.
func TestResolverValues(t *testing.T) {
	t.Parallel()
	svc := uniq("values")
	cli := shared.client(t)
	put(t, cli, svc, "a", `{"addr":"10.0.0.1:80","weight":3,"hash_key":"a","labels":{"zone":"eu-1"}}`, 0)
	put(t, cli, svc, "b", "  10.0.0.2:80\n", 0)
	put(t, cli, svc, "bad1", "not an endpoint", 0)
	put(t, cli, svc, "bad2", `{"addr":"10.0.0.9:80","weight":-1}`, 0)
	require.NoError(t, cli.Set(bg(t), instanceKey(svc, "unlisted"), "10.0.0.8:80", 0).Err()) // not in the index
	require.NoError(t, cli.ZAdd(bg(t), indexKey(svc), goredis.Z{Score: inf, Member: "nokey"}).Err())
	require.NoError(t, cli.ZAdd(bg(t), indexKey(svc), goredis.Z{Score: inf, Member: "bad id"}).Err())
	put(t, cli, svc+"x", "c", "10.9.9.9:80", 0) // another service's instance

	logs, logger := resolvertest.NewLogs()
	rec := resolvertest.Watch(t, lbredis.Resolver{Client: cli, Service: svc, Logger: logger, ResyncInterval: noResync})
	rec.WaitAddrs(t, "10.0.0.1:80", "10.0.0.2:80")
	assert.Equal(t, []lb.Endpoint{
		{Addr: "10.0.0.1:80", Weight: 3, HashKey: "a", Labels: map[string]string{"zone": "eu-1"}},
		{Addr: "10.0.0.2:80"},
	}, rec.Last())
	assert.Equal(t, 2, logs.Count("malformed"))
	assert.Equal(t, 1, logs.Count("key="+instanceKey(svc, "bad1")+" "))
	assert.Equal(t, 1, logs.Count("invalid instance ID"))

	// A malformed value on an instance that had an endpoint keeps it.
	put(t, cli, svc, "b", `{"addr":`, 0)
	resolvertest.WaitFor(t, "the malformed value to be logged", func() bool { return logs.Count("key="+instanceKey(svc, "b")+" ") == 1 })
	// A change reported after it shows that nothing was reported for it.
	put(t, cli, svc, "c", "10.0.0.3:80", 0)
	rec.WaitAddrs(t, "10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80")
	assert.Equal(t, 2, rec.Count())

	// A weight change is a change; writing the same value again is not.
	put(t, cli, svc, "c", `{"addr":"10.0.0.3:80","weight":2}`, 0)
	rec.WaitCount(t, 3, "the new weight")
	assert.Equal(t, 2, rec.Last()[2].Weight)
	put(t, cli, svc, "c", `{"addr":"10.0.0.3:80","weight":2}`, 0)
	put(t, cli, svc, "d", "10.0.0.4:80", 0)
	rec.WaitAddrs(t, "10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80", "10.0.0.4:80")
	assert.Equal(t, 4, rec.Count(), "an identical set was reported")

	// A key of another type is no instance.
	require.NoError(t, cli.Del(bg(t), instanceKey(svc, "d")).Err())
	require.NoError(t, cli.RPush(bg(t), instanceKey(svc, "d"), "10.0.0.4:80").Err())
	rec.WaitAddrs(t, "10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80")

	// Deletes remove, including the instance whose last value was
	// malformed; so does taking the ID out of the index, once announced.
	del(t, cli, svc, "b")
	rec.WaitAddrs(t, "10.0.0.1:80", "10.0.0.3:80")
	require.NoError(t, cli.ZRem(bg(t), indexKey(svc), "c").Err())
	require.NoError(t, cli.Publish(bg(t), channelName(svc), "c").Err())
	rec.WaitAddrs(t, "10.0.0.1:80")
	rec.NoRepeats(t)
	assert.Equal(t, 3, logs.Count("malformed"), "a malformed value is logged once")
	require.ErrorIs(t, rec.Stop(), context.Canceled)
}

// An instance written with a TTL goes when Redis expires it: the
// "expired" keyspace notification tells the resolver (no re-read runs).
func TestResolverTTLExpiry(t *testing.T) {
	t.Parallel()
	svc := uniq("expiry")
	cli := shared.client(t)
	put(t, cli, svc, "stays", "10.0.0.1:80", 0)
	rec := resolvertest.Watch(t, lbredis.Resolver{Client: cli, Service: svc, ResyncInterval: noResync})
	rec.WaitAddrs(t, "10.0.0.1:80")
	written := time.Now()
	put(t, cli, svc, "goes", "10.0.0.2:80", 300*time.Millisecond)
	rec.WaitAddrs(t, "10.0.0.1:80", "10.0.0.2:80")
	rec.WaitAddrs(t, "10.0.0.1:80")
	t.Logf("an instance with a 300ms TTL was removed %v after it was written", time.Since(written).Round(time.Millisecond))
	assert.Equal(t, 3, rec.Count())
}

// Two instances with the same address: the smaller ID's endpoint wins,
// and the address stays while either exists.
func TestResolverSameAddressTwice(t *testing.T) {
	t.Parallel()
	svc := uniq("twice")
	cli := shared.client(t)
	put(t, cli, svc, "b", `{"addr":"10.0.0.1:80","weight":1}`, 0)
	rec := resolvertest.Watch(t, lbredis.Resolver{Client: cli, Service: svc, ResyncInterval: noResync})
	rec.WaitAddrs(t, "10.0.0.1:80")
	put(t, cli, svc, "a", `{"addr":"10.0.0.1:80","weight":5}`, 0)
	rec.WaitCount(t, 2, "the smaller ID's weight")
	assert.Equal(t, []lb.Endpoint{{Addr: "10.0.0.1:80", Weight: 5}}, rec.Last())
	del(t, cli, svc, "a")
	rec.WaitCount(t, 3, "the other ID's weight")
	assert.Equal(t, []lb.Endpoint{{Addr: "10.0.0.1:80", Weight: 1}}, rec.Last())
	del(t, cli, svc, "b")
	rec.WaitCount(t, 4, "the empty set")
	assert.Empty(t, rec.Last())
}

// A service with no instances is reported as an empty set: Redis says
// there are none.
func TestResolverEmptyService(t *testing.T) {
	t.Parallel()
	rec := resolvertest.Watch(t, lbredis.Resolver{Client: shared.client(t), Service: uniq("nothing")})
	rec.WaitCount(t, 1, "a set")
	assert.NotNil(t, rec.Last())
	assert.Empty(t, rec.Last())
}

// Service names are matched exactly, also when they hold the characters
// that Redis's PSUBSCRIBE patterns treat specially.
func TestResolverServiceNameIsNotAPattern(t *testing.T) {
	t.Parallel()
	cli := shared.client(t)
	base := uniq("glob")
	svc := base + `*?[ab]\`
	rec := resolvertest.Watch(t, lbredis.Resolver{Client: cli, Service: svc, ResyncInterval: noResync})
	rec.WaitCount(t, 1, "the first set")
	put(t, cli, base+`xxa\`, "x", "10.0.0.9:80", 0) // what the pattern would match unescaped
	put(t, cli, svc, "a", "10.0.0.1:80", 0)
	rec.WaitAddrs(t, "10.0.0.1:80")
	assert.Equal(t, 2, rec.Count())
}

// 1,000 instances: the first set holds them all; removing half of them
// at once is followed, in few sets.
func TestResolverThousandInstances(t *testing.T) {
	t.Parallel()
	const n = 1000
	svc := uniq("large")
	cli := shared.client(t)
	putMany(t, cli, svc, 0, n)
	rec := resolvertest.Watch(t, lbredis.Resolver{Client: cli, Service: svc, ResyncInterval: noResync})
	resolvertest.WaitFor(t, "1,000 instances", func() bool { return len(rec.Last()) == n })
	assert.Equal(t, 1, rec.Count())
	eps := rec.Last()
	for i := 1; i < len(eps); i++ {
		require.Less(t, eps[i-1].Addr, eps[i].Addr, "the set is sorted")
	}

	keys := make([]string, 0, n/2)
	for i := 0; i < n; i += 2 {
		keys = append(keys, instanceKey(svc, instanceID(i)))
	}
	require.NoError(t, cli.Del(bg(t), keys...).Err())
	resolvertest.WaitFor(t, "500 instances", func() bool { return len(rec.Last()) == n/2 })
	t.Logf("deleting 500 keys in one DEL was reported in %d sets", rec.Count()-1)
	rec.NoRepeats(t)
}

func instanceID(i int) string { return fmt.Sprintf("10.3.%d.%d:8080", i/256, i%256) }

// putMany lists instances [from, to) of svc in one transaction.
func putMany(t *testing.T, cli *goredis.Client, svc string, from, to int) {
	t.Helper()
	_, err := cli.TxPipelined(bg(t), func(p goredis.Pipeliner) error {
		for i := from; i < to; i++ {
			val, err := lb.EncodeEndpoint(lb.Endpoint{Addr: instanceID(i), Weight: 1 + i%3, Labels: map[string]string{"zone": fmt.Sprintf("z%d", i%4)}})
			require.NoError(t, err)
			p.Set(bg(t), instanceKey(svc, instanceID(i)), val, 0)
			p.ZAdd(bg(t), indexKey(svc), goredis.Z{Score: inf, Member: instanceID(i)})
		}
		return nil
	})
	require.NoError(t, err)
}

func TestResolverConfigErrors(t *testing.T) {
	t.Parallel()
	cli := shared.client(t)
	tests := []struct {
		name string
		give lbredis.Resolver
		want string
	}{
		{"no client", lbredis.Resolver{Service: "api"}, "redis.Resolver.Client is nil"},
		{"no service", lbredis.Resolver{Client: cli}, "redis.Resolver.Service is empty"},
		{"service with a space", lbredis.Resolver{Client: cli, Service: "my api"}, "redis.Resolver.Service \"my api\" contains whitespace"},
		{"long service", lbredis.Resolver{Client: cli, Service: strings.Repeat("a", 513)}, "redis.Resolver.Service is 513 bytes long"},
		{"bad prefix", lbredis.Resolver{Client: cli, Service: "api", Prefix: "lb\n"}, "redis.Resolver.Prefix"},
		{"resync", lbredis.Resolver{Client: cli, Service: "api", ResyncInterval: -1}, "redis.Resolver.ResyncInterval is -1ns"},
		{"timeout", lbredis.Resolver{Client: cli, Service: "api", RequestTimeout: -1}, "redis.Resolver.RequestTimeout"},
		{"backoff", lbredis.Resolver{Client: cli, Service: "api", MaxBackoff: -1}, "redis.Resolver.MaxBackoff"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resolvertest.ConfigError(t, tt.give, tt.want)
		})
	}
}

// Watch ends with update's error, when its client is closed, and when its
// context ends: while following, and while the server is away.
func TestResolverEnds(t *testing.T) {
	t.Parallel()
	svc := uniq("ends")
	cli := shared.client(t)
	put(t, cli, svc, "a", "10.0.0.1:80", 0)
	errStop := fmt.Errorf("stop")
	err := lbredis.Resolver{Client: cli, Service: svc}.Watch(context.Background(), func([]lb.Endpoint) error { return errStop })
	require.ErrorIs(t, err, errStop)

	own := shared.client(t)
	rec := resolvertest.Watch(t, lbredis.Resolver{Client: own, Service: svc})
	rec.WaitAddrs(t, "10.0.0.1:80")
	require.NoError(t, own.Close())
	err = rec.Ended(t)
	require.ErrorIs(t, err, goredis.ErrClosed)
	require.ErrorContains(t, err, "closed")

	srv := startServer(t)
	rec = resolvertest.Watch(t, lbredis.Resolver{Client: srv.client(t), Service: svc})
	rec.WaitCount(t, 1, "the first set")
	srv.kill()
	start := time.Now()
	require.ErrorIs(t, rec.Stop(), context.Canceled)
	t.Logf("Watch returned %v after its context ended, with the server away", time.Since(start).Round(time.Microsecond))

	// A context that ends before the first set.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err = lbredis.Resolver{Client: cli, Service: svc}.Watch(ctx, func([]lb.Endpoint) error { return nil })
	require.ErrorIs(t, err, context.Canceled)
}
