package compat

import (
	"fmt"
	"slices"
	"testing"

	"github.com/go-lb/lb"
	"github.com/golang/groupcache/consistenthash"
	"github.com/stathat/consistent"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// lb's CompatGroupcache against groupcache's consistenthash.Map, with peers
// added in ascending order (groupcache gives a colliding point to the peer
// added last; lb to the greater name): every key, including keys forced
// onto points and the ring's ends.
func TestGroupcacheAgreement(t *testing.T) {
	t.Parallel()
	random := keys(50000, 1)
	for _, tt := range []struct{ n, replicas int }{
		{3, 50}, {10, 50}, {100, 50}, {1000, 50}, {10, 3}, {100, 1024}, {1000, 160},
	} {
		names := peerURLs(tt.n)
		m := consistenthash.New(tt.replicas, nil)
		m.Add(slices.Sorted(slices.Values(names))...)
		p, err := lb.Ring{Compat: lb.CompatGroupcache, Replicas: tt.replicas}.New(endpoints(names))
		require.NoError(t, err)
		ks := append(slices.Clone(random), boundaryKeys(names, tt.replicas, 2000)...)
		agree := agreement(t, p, m.Get, ks)
		t.Logf("groupcache N=%d replicas=%d: %d keys, %.3f%% agree", tt.n, tt.replicas, len(ks), 100*float64(agree)/float64(len(ks)))
		assert.Equal(t, len(ks), agree, "N=%d replicas=%d", tt.n, tt.replicas)
	}
}

// lb's CompatStathat against stathat/consistent (Set adds in the order
// given: ascending). stathat takes the first point strictly after a key's
// hash; the boundary keys tell it from groupcache.
func TestStathatAgreement(t *testing.T) {
	t.Parallel()
	random := keys(50000, 2)
	for _, tt := range []struct{ n, replicas int }{
		{3, 20}, {10, 20}, {100, 20}, {500, 20}, {10, 3}, {100, 200},
	} {
		names := peerURLs(tt.n)
		c := consistent.New()
		c.NumberOfReplicas = tt.replicas
		c.Set(slices.Sorted(slices.Values(names)))
		p, err := lb.Ring{Compat: lb.CompatStathat, Replicas: tt.replicas}.New(endpoints(names))
		require.NoError(t, err)
		ks := append(slices.Clone(random), boundaryKeys(names, tt.replicas, 2000)...)
		get := func(k string) string {
			v, err := c.Get(k)
			require.NoError(t, err)
			return v
		}
		agree := agreement(t, p, get, ks)
		t.Logf("stathat N=%d replicas=%d: %d keys, %.3f%% agree", tt.n, tt.replicas, len(ks), 100*float64(agree)/float64(len(ks)))
		assert.Equal(t, len(ks), agree, "N=%d replicas=%d", tt.n, tt.replicas)
	}
}

// groupcache and stathat agree except on the keys whose hash is a point,
// and lb's CompatGroupcache is not CompatStathat: the boundary keys differ.
func TestGroupcacheAndStathatDifferOnPoints(t *testing.T) {
	t.Parallel()
	names := peerURLs(20)
	m := consistenthash.New(20, nil)
	m.Add(names...)
	c := consistent.New()
	c.Set(names)
	onPoints := boundaryKeys(names, 20, 100)
	differ := 0
	for _, k := range onPoints {
		v, err := c.Get(k)
		require.NoError(t, err)
		if v != m.Get(k) {
			differ++
		}
	}
	assert.Positive(t, differ, "keys on points go to different nodes")
	gc, err := lb.Ring{Compat: lb.CompatGroupcache, Replicas: 20}.New(endpoints(names))
	require.NoError(t, err)
	st, err := lb.Ring{Compat: lb.CompatStathat}.New(endpoints(names))
	require.NoError(t, err)
	lbDiffer := 0
	for _, k := range onPoints {
		a, _ := gc.Pick(k)
		b, _ := st.Pick(k)
		if a.HashName() != b.HashName() {
			lbDiffer++
		}
	}
	assert.Equal(t, differ, lbDiffer, fmt.Sprintf("of %d boundary keys", len(onPoints)))
}
