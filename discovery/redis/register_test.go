package redis_test

import (
	"context"
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

// subscribe returns a subscription to svc's change channel, confirmed,
// closed at the test's end.
func subscribe(t *testing.T, cli *goredis.Client, svc string) *goredis.PubSub {
	t.Helper()
	ps := cli.Subscribe(bg(t), channelName(svc))
	t.Cleanup(func() { _ = ps.Close() })
	_, err := ps.ReceiveTimeout(bg(t), 10*time.Second) // the confirmation
	require.NoError(t, err)
	return ps
}

func announced(t *testing.T, ps *goredis.PubSub) string {
	t.Helper()
	m, err := ps.ReceiveMessage(bg(t))
	require.NoError(t, err)
	return m.Payload
}

func serverMillis(t *testing.T, cli *goredis.Client) float64 {
	t.Helper()
	now, err := cli.Time(bg(t)).Result()
	require.NoError(t, err)
	return float64(now.UnixMilli())
}

// Register writes the key with its TTL and the index entry scored by the
// expiry time, announces the ID, refreshes the TTL without writing (or
// announcing) again, and Close removes both and announces that.
func TestRegisterWritesRefreshesAndRemoves(t *testing.T) {
	t.Parallel()
	const ttl = 300 * time.Millisecond
	cli := shared.client(t)
	svc := uniq("register")
	ps := subscribe(t, cli, svc)
	ep := lb.Endpoint{Addr: "10.0.0.7:80", Weight: 2, HashKey: "seven", Labels: map[string]string{"zone": "eu-1"}}
	before := serverMillis(t, cli)
	reg, err := lbredis.Register(bg(t), cli, svc, ep, lbredis.RegisterOptions{ID: "seven", TTL: ttl})
	require.NoError(t, err)
	assert.Equal(t, "seven", announced(t, ps))

	val, err := cli.Get(bg(t), instanceKey(svc, "seven")).Result()
	require.NoError(t, err)
	assert.JSONEq(t, `{"addr":"10.0.0.7:80","weight":2,"hash_key":"seven","labels":{"zone":"eu-1"}}`, val)
	pttl, err := cli.PTTL(bg(t), instanceKey(svc, "seven")).Result()
	require.NoError(t, err)
	assert.Greater(t, pttl, time.Duration(0))
	assert.LessOrEqual(t, pttl, ttl)
	score, err := cli.ZScore(bg(t), indexKey(svc), "seven").Result()
	require.NoError(t, err)
	assert.InDelta(t, before+float64(ttl.Milliseconds()), score, 1000, "the score is the expiry time in server milliseconds")

	// The key outlives its TTL several times over: refreshed, not
	// rewritten (no announcement).
	resolvertest.WaitFor(t, "three TTLs", func() bool { return serverMillis(t, cli) > score+2*float64(ttl.Milliseconds()) })
	got, err := cli.Get(bg(t), instanceKey(svc, "seven")).Result()
	require.NoError(t, err)
	assert.Equal(t, val, got)
	newScore, err := cli.ZScore(bg(t), indexKey(svc), "seven").Result()
	require.NoError(t, err)
	assert.Greater(t, newScore, score)

	require.NoError(t, reg.Close())
	require.NoError(t, reg.Close(), "Close twice")
	<-reg.Done()
	assert.Equal(t, "seven", announced(t, ps), "only the removal is announced after the first write")
	n, err := cli.Exists(bg(t), instanceKey(svc, "seven")).Result()
	require.NoError(t, err)
	assert.Zero(t, n)
	_, err = cli.ZScore(bg(t), indexKey(svc), "seven").Result()
	require.ErrorIs(t, err, goredis.Nil)
}

// When the key disappears behind the registration's back (deleted here;
// a server restarted without its data, in TestResolverServerRestart), the
// next refresh writes it again and announces it. Expired IDs are pruned
// from the index.
func TestRegisterWritesAgainWhenLost(t *testing.T) {
	t.Parallel()
	cli := shared.client(t)
	svc := uniq("lost")
	require.NoError(t, cli.ZAdd(bg(t), indexKey(svc), goredis.Z{Score: 1, Member: "long-dead"}).Err())
	logs, logger := resolvertest.NewLogs()
	reg, err := lbredis.Register(bg(t), cli, svc, lb.Endpoint{Addr: "10.0.0.8:80"}, lbredis.RegisterOptions{TTL: 300 * time.Millisecond, Logger: logger})
	require.NoError(t, err)
	defer reg.Close()
	ids, err := cli.ZRange(bg(t), indexKey(svc), 0, -1).Result()
	require.NoError(t, err)
	assert.Equal(t, []string{"10.0.0.8:80"}, ids, "the expired ID was not pruned")

	ps := subscribe(t, cli, svc)
	require.NoError(t, cli.Del(bg(t), instanceKey(svc, "10.0.0.8:80"), indexKey(svc)).Err())
	assert.Equal(t, "10.0.0.8:80", announced(t, ps))
	n, err := cli.Exists(bg(t), instanceKey(svc, "10.0.0.8:80"), indexKey(svc)).Result()
	require.NoError(t, err)
	assert.Equal(t, int64(2), n)
	resolvertest.WaitFor(t, "the rewrite to be logged", func() bool { return logs.Count("was gone; wrote it again") == 1 })
}

// Close leaves alone an instance that another process has registered
// under the same ID since.
func TestRegisterCloseKeepsAnotherOwnersValue(t *testing.T) {
	t.Parallel()
	cli := shared.client(t)
	svc := uniq("owner")
	reg, err := lbredis.Register(bg(t), cli, svc, lb.Endpoint{Addr: "10.0.0.9:80"}, lbredis.RegisterOptions{ID: "x"})
	require.NoError(t, err)
	put(t, cli, svc, "x", "10.0.0.10:80", 0)
	require.NoError(t, reg.Close())
	val, err := cli.Get(bg(t), instanceKey(svc, "x")).Result()
	require.NoError(t, err)
	assert.Equal(t, "10.0.0.10:80", val)
}

func TestRegisterErrors(t *testing.T) {
	t.Parallel()
	cli := shared.client(t)
	svc := uniq("errors")
	ok := lb.Endpoint{Addr: "a:1"}
	tests := []struct {
		name    string
		cli     *goredis.Client
		service string
		ep      lb.Endpoint
		opts    lbredis.RegisterOptions
		want    error
		msg     string
	}{
		{"nil client", nil, svc, ok, lbredis.RegisterOptions{}, lb.ErrInvalidConfig, "the client is nil"},
		{"no service", cli, "", ok, lbredis.RegisterOptions{}, lb.ErrInvalidConfig, "the service name is empty"},
		{"bad prefix", cli, svc, ok, lbredis.RegisterOptions{Prefix: "a b"}, lb.ErrInvalidConfig, "redis.RegisterOptions.Prefix"},
		{"bad ID", cli, svc, ok, lbredis.RegisterOptions{ID: strings.Repeat("x", 600)}, lb.ErrInvalidConfig, "redis.RegisterOptions.ID is 600 bytes"},
		{"short TTL", cli, svc, ok, lbredis.RegisterOptions{TTL: time.Millisecond}, lb.ErrInvalidConfig, "redis.RegisterOptions.TTL is 1ms"},
		{"negative TTL", cli, svc, ok, lbredis.RegisterOptions{TTL: -time.Second}, lb.ErrInvalidConfig, "redis.RegisterOptions.TTL"},
		{"invalid endpoint", cli, svc, lb.Endpoint{Addr: "nope"}, lbredis.RegisterOptions{}, lb.ErrInvalidEndpoint, "nope"},
		{"context ended", cli, svc, ok, lbredis.RegisterOptions{}, context.Canceled, "registering"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithCancel(context.Background())
			if tt.want == context.Canceled {
				cancel()
			}
			defer cancel()
			reg, err := lbredis.Register(ctx, tt.cli, tt.service, tt.ep, tt.opts)
			require.ErrorIs(t, err, tt.want)
			assert.ErrorContains(t, err, tt.msg)
			assert.Nil(t, reg)
		})
	}
	n, err := cli.Exists(bg(t), instanceKey(svc, "a:1"), indexKey(svc)).Result()
	require.NoError(t, err)
	assert.Zero(t, n, "a failed Register left something behind")
}
