package xds

import (
	"context"
	"log/slog"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/go-lb/lb"
)

// Responses go-control-plane's typed snapshots cannot produce (resources
// of the wrong type, undecodable bytes, unsubscribed resources), given to
// the resolver's response handling directly.

func anyCLA(t *testing.T, name string, ips ...string) *anypb.Any {
	t.Helper()
	c := &endpointv3.ClusterLoadAssignment{ClusterName: name, Endpoints: []*endpointv3.LocalityLbEndpoints{{}}}
	for _, ip := range ips {
		c.Endpoints[0].LbEndpoints = append(c.Endpoints[0].LbEndpoints, &endpointv3.LbEndpoint{
			HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
				Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
					Address: ip, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 80},
				}}},
			}},
		})
	}
	a, err := anypb.New(c)
	require.NoError(t, err)
	return a
}

func wrapped(t *testing.T, name string, res *anypb.Any) *anypb.Any {
	t.Helper()
	a, err := anypb.New(&discoveryv3.Resource{Name: name, Resource: res})
	require.NoError(t, err)
	return a
}

func TestHandle(t *testing.T) {
	t.Parallel()
	node, err := anypb.New(&corev3.Node{Id: "x"})
	require.NoError(t, err)
	for _, tt := range []struct {
		name      string
		give      []*anypb.Any
		typeURL   string   // "" means the ClusterLoadAssignment type
		wantNACK  string   // "" means an ACK
		wantAddrs []string // the set reported; nil: none
	}{
		{name: "good", give: []*anypb.Any{anyCLA(t, "api", "10.0.0.1")}, wantAddrs: []string{"10.0.0.1:80"}},
		{name: "wrapped", give: []*anypb.Any{wrapped(t, "api", anyCLA(t, "api", "10.0.0.1"))}, wantAddrs: []string{"10.0.0.1:80"}},
		{name: "heartbeat of a resource not had", give: []*anypb.Any{wrapped(t, "api", nil)}},
		{name: "only unsubscribed resources", give: []*anypb.Any{anyCLA(t, "other", "10.0.0.1")}},
		{name: "no resources", give: nil, wantAddrs: []string{}},
		{name: "wrong resource type", give: []*anypb.Any{node}, wantNACK: `a resource of type "type.googleapis.com/envoy.config.core.v3.Node"`},
		{name: "wrapped wrong type", give: []*anypb.Any{wrapped(t, "api", node)}, wantNACK: `a resource of type "type.googleapis.com/envoy.config.core.v3.Node"`},
		{name: "undecodable", give: []*anypb.Any{{TypeUrl: claType, Value: []byte{0xff, 0xff}}}, wantNACK: "a ClusterLoadAssignment that does not decode"},
		{name: "undecodable wrapper", give: []*anypb.Any{{TypeUrl: resourceType, Value: []byte{0xff, 0xff}}}, wantNACK: "a Resource that does not decode"},
		{name: "empty wrapper", give: []*anypb.Any{wrapped(t, "", nil)}, wantNACK: "a Resource with neither a name nor a resource"},
		{name: "no cluster name", give: []*anypb.Any{anyCLA(t, "", "10.0.0.1")}, wantNACK: "resources[0]: lb: invalid endpoint: a ClusterLoadAssignment without a cluster_name"},
		{name: "twice", give: []*anypb.Any{anyCLA(t, "api", "10.0.0.1"), anyCLA(t, "api", "10.0.0.2")}, wantNACK: `resources[1]: "api" appears twice in the response`},
		{name: "response of another type", typeURL: "type.googleapis.com/envoy.config.cluster.v3.Cluster", give: []*anypb.Any{anyCLA(t, "api", "10.0.0.1")}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r, err := Resolver{Target: "x", Node: Node{ID: "n"}, Clusters: []string{"api"}, Logger: slog.New(slog.DiscardHandler)}.withDefaults()
			require.NoError(t, err)
			var got []string
			w := newWatcher(r, func(eps []lb.Endpoint) error {
				got = []string{}
				for _, e := range eps {
					got = append(got, e.Addr)
				}
				return nil
			})
			resp := &discoveryv3.DiscoveryResponse{VersionInfo: "1", Nonce: "n1", TypeUrl: claType, Resources: tt.give}
			if tt.typeURL != "" {
				resp.TypeUrl = tt.typeURL
			}
			req, err := w.handle(context.Background(), resp)
			require.NoError(t, err)
			assert.Equal(t, tt.wantAddrs, got)
			if tt.typeURL != "" {
				assert.Nil(t, req, "a response of a type not asked for is not answered")
				return
			}
			require.NotNil(t, req)
			assert.Equal(t, "n1", req.GetResponseNonce())
			assert.Equal(t, []string{"api"}, req.GetResourceNames())
			assert.Equal(t, claType, req.GetTypeUrl())
			if tt.wantNACK == "" {
				assert.Nil(t, req.GetErrorDetail())
				assert.Equal(t, "1", req.GetVersionInfo())
				return
			}
			assert.Equal(t, "", req.GetVersionInfo(), "a NACK names the last version accepted")
			assert.Contains(t, req.GetErrorDetail().GetMessage(), tt.wantNACK)
		})
	}
}

// A heartbeat keeps what it names; an unsubscribed resource does not
// remove the subscribed ones.
func TestHandleKeeps(t *testing.T) {
	t.Parallel()
	r, err := Resolver{Target: "x", Node: Node{ID: "n"}, Clusters: []string{"api", "web"}}.withDefaults()
	require.NoError(t, err)
	reports := 0
	w := newWatcher(r, func([]lb.Endpoint) error { reports++; return nil })
	for i, give := range [][]*anypb.Any{
		{anyCLA(t, "api", "10.0.0.1"), anyCLA(t, "web", "10.0.0.2")},
		{wrapped(t, "api", nil)},
		{anyCLA(t, "other", "10.0.0.3")},
		{wrapped(t, "web", nil), anyCLA(t, "api", "10.0.0.1")},
	} {
		req, err := w.handle(context.Background(), &discoveryv3.DiscoveryResponse{VersionInfo: "v", TypeUrl: claType, Resources: give})
		require.NoError(t, err)
		require.Nil(t, req.GetErrorDetail(), "response %d", i)
		require.Len(t, w.last, 2, "response %d", i)
	}
	assert.Equal(t, 1, reports, "the set never changed")
}
