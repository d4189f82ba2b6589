package xds_test

import (
	"math"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/go-lb/lb"
	"github.com/go-lb/lb/discovery/xds"
	"github.com/go-lb/lb/internal/resolvertest"
)

func TestConvertAddresses(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		give string
		port uint32
		want string
	}{
		{"10.0.0.1", 80, "10.0.0.1:80"},
		{"2001:db8::1", 443, "[2001:db8::1]:443"},
		{"fe80::1%eth0", 8080, "[fe80::1%eth0]:8080"},
		{"::ffff:10.0.0.1", 1, "[::ffff:10.0.0.1]:1"},
		{"api.internal", 65535, "api.internal:65535"},
	} {
		eps, skipped, err := xds.Convert(cla("c", loc("", "", 0, 0, ep(tt.give, tt.port))))
		require.NoError(t, err, tt.give)
		assert.Zero(t, skipped)
		require.Len(t, eps, 1)
		assert.Equal(t, tt.want, eps[0].Addr)
		require.NoError(t, eps[0].Validate())
	}
}

// Endpoints lb cannot dial are left out and counted, the rest is kept.
func TestConvertSkips(t *testing.T) {
	t.Parallel()
	socket := func(f func(*corev3.SocketAddress)) *endpointv3.LbEndpoint {
		e := ep("10.0.0.9", 80)
		f(e.GetEndpoint().GetAddress().GetSocketAddress())
		return e
	}
	internal := ep("", 0)
	internal.GetEndpoint().Address = &corev3.Address{Address: &corev3.Address_EnvoyInternalAddress{
		EnvoyInternalAddress: &corev3.EnvoyInternalAddress{AddressNameSpecifier: &corev3.EnvoyInternalAddress_ServerListenerName{ServerListenerName: "l"}},
	}}
	for _, tt := range []struct {
		name string
		give *endpointv3.ClusterLoadAssignment
	}{
		{"pipe", cla("c", loc("", "", 0, 0, pipe("/run/x.sock")))},
		{"internal address", cla("c", loc("", "", 0, 0, internal))},
		{"named port", cla("c", loc("", "", 0, 0, socket(func(s *corev3.SocketAddress) {
			s.PortSpecifier = &corev3.SocketAddress_NamedPort{NamedPort: "http"}
		})))},
		{"UDP", cla("c", loc("", "", 0, 0, socket(func(s *corev3.SocketAddress) { s.Protocol = corev3.SocketAddress_UDP })))},
		{"custom resolver", cla("c", loc("", "", 0, 0, socket(func(s *corev3.SocketAddress) { s.ResolverName = "r" })))},
		{"endpoint name", cla("c", loc("", "", 0, 0, &endpointv3.LbEndpoint{HostIdentifier: &endpointv3.LbEndpoint_EndpointName{EndpointName: "n"}}))},
		{"LEDS locality", cla("c", &endpointv3.LocalityLbEndpoints{
			LbEndpoints: []*endpointv3.LbEndpoint{ep("10.0.0.9", 80)},
			LbConfig:    &endpointv3.LocalityLbEndpoints_LedsClusterLocalityConfig{LedsClusterLocalityConfig: &endpointv3.LedsClusterLocalityConfig{LedsCollectionName: "x"}},
		})},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.give.Endpoints = append(tt.give.Endpoints, loc("", "", 0, 0, ep("10.0.0.1", 80)))
			eps, skipped, err := xds.Convert(tt.give)
			require.NoError(t, err)
			assert.Equal(t, 1, skipped)
			assert.Equal(t, []string{"10.0.0.1:80"}, resolvertest.Addrs(eps))
		})
	}
	eps, skipped, err := xds.Convert(&endpointv3.ClusterLoadAssignment{ClusterName: "c", NamedEndpoints: map[string]*endpointv3.Endpoint{"n": {}}})
	require.NoError(t, err)
	assert.Equal(t, 1, skipped, "named_endpoints")
	assert.Empty(t, eps)
}

func TestConvertHealth(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		give     corev3.HealthStatus
		included bool
		degraded bool
	}{
		{corev3.HealthStatus_UNKNOWN, true, false},
		{corev3.HealthStatus_HEALTHY, true, false},
		{corev3.HealthStatus_DEGRADED, true, true},
		{corev3.HealthStatus_UNHEALTHY, false, false},
		{corev3.HealthStatus_DRAINING, false, false},
		{corev3.HealthStatus_TIMEOUT, false, false},
		{corev3.HealthStatus(42), false, false},
	} {
		eps, skipped, err := xds.Convert(cla("c", loc("", "", 0, 0, ep("10.0.0.1", 80, health(tt.give)))))
		require.NoError(t, err)
		assert.Zero(t, skipped, "left out by health is not a skip")
		if !tt.included {
			assert.Empty(t, eps, tt.give.String())
			continue
		}
		require.Len(t, eps, 1, tt.give.String())
		h, ok := eps[0].Labels[xds.LabelHealth]
		assert.Equal(t, tt.degraded, ok, tt.give.String())
		if ok {
			assert.Equal(t, xds.HealthDegraded, h)
		}
	}
}

func TestConvertLabelsAndHashKeys(t *testing.T) {
	t.Parallel()
	l := loc("us-east1", "us-east1-b", 1, 7, ep("10.0.0.2", 80, hashKey("")), ep("10.0.0.3", 80, hostname("c.example")))
	l.Locality.SubZone = "rack-4"
	notString := ep("10.0.0.4", 80)
	notString.Metadata = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
		"envoy.lb": {Fields: map[string]*structpb.Value{"hash_key": structpb.NewNumberValue(3)}},
	}}
	otherFilter := ep("10.0.0.5", 80)
	otherFilter.Metadata = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
		"acme": {Fields: map[string]*structpb.Value{"hash_key": structpb.NewStringValue("x")}},
	}}
	eps, _, err := xds.Convert(cla("svc", loc("us-east1", "us-east1-a", 0, 0, ep("10.0.0.1", 80, hashKey("cache-1")), notString, otherFilter), l))
	require.NoError(t, err)
	a := labels("svc", "us-east1", "us-east1-a", "0")
	b := labels("svc", "us-east1", "us-east1-b", "1", lb.LabelSubZone, "rack-4", xds.LabelLocalityWeight, "7")
	bHost := labels("svc", "us-east1", "us-east1-b", "1", lb.LabelSubZone, "rack-4", xds.LabelLocalityWeight, "7", xds.LabelHostname, "c.example")
	assert.Equal(t, []lb.Endpoint{
		{Addr: "10.0.0.1:80", Weight: 1, HashKey: "cache-1", Labels: a},
		{Addr: "10.0.0.2:80", Weight: 1, Labels: b},
		{Addr: "10.0.0.3:80", Weight: 1, Labels: bHost},
		{Addr: "10.0.0.4:80", Weight: 1, Labels: a},
		{Addr: "10.0.0.5:80", Weight: 1, Labels: a},
	}, eps)
	// Each endpoint has labels of its own.
	eps[0].Labels["zone"] = "changed"
	assert.Equal(t, "us-east1-a", eps[3].Labels["zone"])
}

// Weights above lb.MaxWeight scale every weight of the set by the same
// factor, rounded to the nearest integer and never below 1; smaller sets
// are left as they are.
func TestConvertWeights(t *testing.T) {
	t.Parallel()
	const maxU = math.MaxUint32
	for _, tt := range []struct {
		name string
		give []uint32
		want []int
	}{
		{"unchanged", []uint32{1, 2, lb.MaxWeight}, []int{1, 2, lb.MaxWeight}},
		{"largest to MaxWeight", []uint32{lb.MaxWeight + 1}, []int{lb.MaxWeight}},
		{"halves", []uint32{1 << 21, 1 << 22}, []int{1 << 19, 1 << 20}},
		{"extremes", []uint32{1, maxU / 2, maxU}, []int{1, 1 << 19, lb.MaxWeight}},
		{"rounded", []uint32{3, 5 << 20}, []int{1, lb.MaxWeight}},
		{"nearest", []uint32{3 << 20, 7 << 20, 10 << 20}, []int{314573, 734003, lb.MaxWeight}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var les []*endpointv3.LbEndpoint
			for i, w := range tt.give {
				les = append(les, ep("10.0.0."+string(rune('1'+i)), 80, weight(w)))
			}
			eps, _, err := xds.Convert(cla("c", loc("", "", 0, 0, les...)))
			require.NoError(t, err)
			got := make([]int, len(eps))
			for i, e := range eps {
				got[i] = e.Weight
				require.NoError(t, e.Validate())
			}
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestConvertErrors(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		give *endpointv3.ClusterLoadAssignment
		want string
	}{
		{"nil", nil, "cluster_name is empty"},
		{"no name", cla("", loc("", "", 0, 0, ep("10.0.0.1", 80))), "cluster_name is empty"},
		{"no host identifier", cla("c", loc("", "", 0, 0, &endpointv3.LbEndpoint{})), "lb_endpoints[0]: the endpoint has no address"},
		{"address of no kind", cla("c", loc("", "", 0, 0, &endpointv3.LbEndpoint{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{
			Endpoint: &endpointv3.Endpoint{Address: &corev3.Address{}}}})), "the address is of no known kind"},
		{"control character in hash key", cla("c", loc("", "", 0, 0, ep("10.0.0.1", 80, hashKey("a\nb")))), "must not contain control characters"},
		{"where", cla("c", loc("", "", 0, 0, ep("10.0.0.1", 80)), loc("r", "z", 0, 0, ep("10.0.0.2", 80), ep("10.0.0.3", 0))),
			`ClusterLoadAssignment "c": endpoints[1] (region "r", zone "z", sub_zone ""): lb_endpoints[1]: port_value of "10.0.0.3" is 0`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			eps, _, err := xds.Convert(tt.give)
			require.ErrorIs(t, err, lb.ErrInvalidEndpoint)
			assert.Contains(t, err.Error(), tt.want)
			assert.Nil(t, eps)
		})
	}
	_, _, err := xds.Convert(cla("c", loc("", "", 0, 0, ep("10.0.0.1", 80)), loc("", "", 0, 0, ep("10.0.0.1", 80))))
	require.ErrorIs(t, err, lb.ErrDuplicateEndpoint)
}
