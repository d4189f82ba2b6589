package lbgrpc_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/go-lb/lb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSubset: with "subset", the policy connects to the client's subset of
// the resolver's endpoints only: the other servers see no connection and
// no call. With byHash (backends placed by their hash names), a server
// outside the subset leaving opens and closes nothing, and a member
// leaving costs one new connection, to the next server of the ring.
func TestSubset(t *testing.T) {
	t.Parallel()
	servers := make([]*testServer, 8)
	for i := range servers {
		servers[i] = startServer(t, fmt.Sprintf("s%d", i))
	}
	subset := lb.Subset{Size: 3, ClientIndex: 2, ByHash: true}
	chosen := func(servers []*testServer) map[string]bool {
		eps := make([]lb.Endpoint, len(servers))
		for i, s := range servers {
			eps[i] = lb.Endpoint{Addr: s.addr, HashKey: s.name}
		}
		sub, err := lb.SubsetOf(eps, subset)
		require.NoError(t, err)
		m := map[string]bool{}
		for _, e := range sub {
			m[e.HashKey] = true
		}
		return m
	}
	in := chosen(servers)
	require.Len(t, in, 3)
	c := newClient(t, serviceConfig(`{"subset": {"size": 3, "clientIndex": 2, "byHash": true}}`), endpointsOf(servers...))
	var members []*testServer
	for _, s := range servers {
		if in[s.name] {
			members = append(members, s)
		}
	}
	c.warm(members...)
	counts := map[string]int{}
	for i := 0; i < 90; i++ {
		name, err := c.call(context.Background())
		require.NoError(t, err)
		counts[name]++
	}
	assert.Len(t, counts, 3, "calls go to the subset: %v", counts)
	for name := range counts {
		assert.True(t, in[name], "%s is not in the subset", name)
	}
	assert.Len(t, c.balancer().Backends(), 3)
	for _, s := range servers {
		if !in[s.name] {
			assert.Zero(t, s.accepts.Load(), "%s: outside the subset, never connected", s.name)
			assert.Zero(t, s.calls.Load(), "%s", s.name)
		} else {
			assert.Equal(t, int64(1), s.accepts.Load(), "%s: one connection", s.name)
		}
	}

	// A server outside the subset leaves: nothing is opened or closed.
	var outside int
	for i, s := range servers {
		if !in[s.name] {
			outside = i
			break
		}
	}
	fewer := append(append([]*testServer(nil), servers[:outside]...), servers[outside+1:]...)
	require.Equal(t, in, chosen(fewer), "the subset does not move")
	c.update(endpointsOf(fewer...))
	for i := 0; i < 30; i++ {
		_, err := c.call(context.Background())
		require.NoError(t, err)
	}
	for _, s := range members {
		assert.Equal(t, int64(1), s.accepts.Load(), "%s: still its first connection", s.name)
	}

	// A member leaves: its place goes to the next server of the ring,
	// which is connected; the other members keep their connections.
	gone := members[0]
	var rest []*testServer
	for _, s := range fewer {
		if s != gone {
			rest = append(rest, s)
		}
	}
	now := chosen(rest)
	c.update(endpointsOf(rest...))
	require.Eventually(t, func() bool {
		seen := map[string]bool{}
		for i := 0; i < 30; i++ {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			name, err := c.call(ctx)
			cancel()
			if err == nil {
				seen[name] = true
			}
		}
		return len(seen) == 3 && !seen[gone.name]
	}, 10*time.Second, 10*time.Millisecond)
	for _, s := range rest {
		want := int64(0)
		if now[s.name] {
			want = 1
		}
		assert.Equal(t, want, s.accepts.Load(), "%s", s.name)
	}
}
