package etcd_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/go-lb/lb"
	"github.com/go-lb/lb/discovery/etcd"
	"github.com/go-lb/lb/internal/resolvertest"
)

func getKey(t *testing.T, cli *clientv3.Client, key string) (string, int64, bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, key)
	require.NoError(t, err)
	if len(resp.Kvs) == 0 {
		return "", 0, false
	}
	return string(resp.Kvs[0].Value), resp.Kvs[0].Lease, true
}

func TestRegisterPutsUnderALeaseAndCloseDeletes(t *testing.T) {
	t.Parallel()
	cli := newClient(t, exampleEtcd)
	ep := lb.Endpoint{Addr: "10.0.0.7:80", Weight: 2, Labels: map[string]string{"zone": "eu-1"}}
	key := resolvertest.Uniq("/register/api/10.0.0.7:80")
	reg, err := etcd.Register(context.Background(), cli, key, ep, etcd.RegisterOptions{TTL: 1500 * time.Millisecond})
	require.NoError(t, err)
	val, lease, ok := getKey(t, cli, key)
	require.True(t, ok)
	assert.JSONEq(t, `{"addr":"10.0.0.7:80","weight":2,"labels":{"zone":"eu-1"}}`, val)
	require.NotZero(t, lease)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ttl, err := cli.TimeToLive(ctx, clientv3.LeaseID(lease))
	require.NoError(t, err)
	assert.Equal(t, int64(2), ttl.GrantedTTL, "the TTL is rounded up to whole seconds")

	require.NoError(t, reg.Close())
	require.NoError(t, reg.Close(), "Close twice")
	_, _, ok = getKey(t, cli, key)
	assert.False(t, ok, "Close should delete the key at once")
	ttl, err = cli.TimeToLive(ctx, clientv3.LeaseID(lease))
	require.NoError(t, err)
	assert.Equal(t, int64(-1), ttl.TTL, "the lease should be revoked")
}

// When etcd loses the lease while the service lives (here: it is revoked
// behind the registration's back), the registration puts the key again
// under a new lease.
func TestRegisterRecoversALostLease(t *testing.T) {
	t.Parallel()
	cli := newClient(t, exampleEtcd)
	key := resolvertest.Uniq("/register/lost/10.0.0.8:80")
	reg, err := etcd.Register(context.Background(), cli, key, lb.Endpoint{Addr: "10.0.0.8:80"}, etcd.RegisterOptions{TTL: 2 * time.Second})
	require.NoError(t, err)
	defer reg.Close()
	_, lease, ok := getKey(t, cli, key)
	require.True(t, ok)

	admin := newClient(t, exampleEtcd)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = admin.Revoke(ctx, clientv3.LeaseID(lease))
	require.NoError(t, err)

	resolvertest.WaitFor(t, "the key under a new lease", func() bool {
		_, l, ok := getKey(t, admin, key)
		return ok && l != lease
	})
	require.NoError(t, reg.Close())
	_, _, ok = getKey(t, admin, key)
	assert.False(t, ok)
}

func TestRegisterErrors(t *testing.T) {
	t.Parallel()
	cli := newClient(t, exampleEtcd)
	ok := lb.Endpoint{Addr: "a:1"}
	k := resolvertest.Uniq("/k")
	tests := []struct {
		name string
		cli  *clientv3.Client
		key  string
		ep   lb.Endpoint
		opts etcd.RegisterOptions
		want error
	}{
		{"nil client", nil, k, ok, etcd.RegisterOptions{}, lb.ErrInvalidConfig},
		{"empty key", cli, "", ok, etcd.RegisterOptions{}, lb.ErrInvalidConfig},
		{"negative TTL", cli, k, ok, etcd.RegisterOptions{TTL: -time.Second}, lb.ErrInvalidConfig},
		{"invalid endpoint", cli, k, lb.Endpoint{Addr: "nope"}, etcd.RegisterOptions{}, lb.ErrInvalidEndpoint},
		{"context ended", cli, k, ok, etcd.RegisterOptions{}, context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithCancel(context.Background())
			if tt.want == context.Canceled {
				cancel()
			}
			defer cancel()
			reg, err := etcd.Register(ctx, tt.cli, tt.key, tt.ep, tt.opts)
			require.ErrorIs(t, err, tt.want)
			assert.Nil(t, reg)
		})
	}
	_, _, found := getKey(t, cli, k)
	assert.False(t, found, "a failed Register left its key")
}
