package xds_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/go-lb/lb"
	"github.com/go-lb/lb/discovery/xds"
	"github.com/go-lb/lb/internal/resolvertest"
)

// labels is the label set of an endpoint of cluster at region/zone and
// priority p, plus extra key-value pairs.
func labels(cluster, region, zone, p string, extra ...string) map[string]string {
	m := map[string]string{xds.LabelCluster: cluster, lb.LabelPriority: p, lb.LabelRegion: region, lb.LabelZone: zone}
	for i := 0; i+1 < len(extra); i += 2 {
		m[extra[i]] = extra[i+1]
	}
	return m
}

// acked waits for the client's ACK of version.
func acked(t *testing.T, cp *controlPlane, version string) {
	t.Helper()
	nonce := cp.nonceOf(t, version)
	cp.waitRequest(t, "the ACK of version "+version, func(r *discoveryv3.DiscoveryRequest) bool {
		return r.GetVersionInfo() == version && r.GetResponseNonce() == nonce && r.GetErrorDetail() == nil
	})
}

func TestFirstSetAndUpdates(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name   string
		stream xds.Stream
		ads    bool // the snapshot cache's ADS mode
	}{
		{"ADS", xds.ADS, false},
		{"ADS/cache in ADS mode", xds.ADS, true},
		{"EDS", xds.EDS, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cp := startControlPlane(t, "127.0.0.1:0", cachev3.NewSnapshotCache(tt.ads, cachev3.IDHash{}, nil))
			logs := &resolvertest.Logs{}
			r := cp.resolver("node-1", "api")
			r.Stream, r.Logger = tt.stream, slog.New(logs)

			z1 := func(eps ...*endpointv3.LbEndpoint) *endpointv3.LocalityLbEndpoints {
				return loc("r1", "z1", 0, 3, eps...)
			}
			cp.set(t, "node-1", "1", cla("api",
				z1(ep("10.0.0.1", 80, weight(2), hostname("a.example"), hashKey("api-a")),
					ep("10.0.0.2", 80, health(corev3.HealthStatus_DEGRADED)),
					ep("10.0.0.3", 80, health(corev3.HealthStatus_UNHEALTHY)),
					ep("::1", 8080, health(corev3.HealthStatus_HEALTHY)),
					pipe("/run/api.sock")),
				loc("r1", "z2", 1, 0,
					ep("10.0.1.1", 80, health(corev3.HealthStatus_DRAINING)),
					ep("10.0.1.2", 80, health(corev3.HealthStatus_TIMEOUT)),
					ep("10.0.1.3", 80, health(corev3.HealthStatus_UNKNOWN))),
			))
			w := watch(t, r)
			z1Labels := func(extra ...string) map[string]string {
				return labels("api", "r1", "z1", "0", append([]string{xds.LabelLocalityWeight, "3"}, extra...)...)
			}
			assert.Equal(t, []lb.Endpoint{
				{Addr: "10.0.0.1:80", Weight: 2, HashKey: "api-a", Labels: z1Labels(xds.LabelHostname, "a.example")},
				{Addr: "10.0.0.2:80", Weight: 1, Labels: z1Labels(xds.LabelHealth, xds.HealthDegraded)},
				{Addr: "10.0.1.3:80", Weight: 1, Labels: labels("api", "r1", "z2", "1")},
				{Addr: "[::1]:8080", Weight: 1, Labels: z1Labels()},
			}, w.next(t), "first set")
			acked(t, cp, "1")
			skips := logs.Matching("leaving out endpoints")
			require.Len(t, skips, 1)
			assert.Contains(t, skips[0], "count=1")
			assert.Contains(t, skips[0], `/run/api.sock`)
			first := cp.waitRequest(t, "the first request", func(*discoveryv3.DiscoveryRequest) bool { return true })
			assert.Equal(t, "node-1", first.GetNode().GetId())
			assert.Equal(t, "z1", first.GetNode().GetLocality().GetZone())
			assert.Equal(t, []string{"api"}, first.GetResourceNames())

			steps := []struct {
				what string
				give *endpointv3.ClusterLoadAssignment
				want []string // addresses; nil: no new set
			}{
				{"add", cla("api", z1(ep("10.0.0.1", 80), ep("10.0.0.2", 80), ep("10.0.0.4", 80))), []string{"10.0.0.1:80", "10.0.0.2:80", "10.0.0.4:80"}},
				{"remove", cla("api", z1(ep("10.0.0.1", 80), ep("10.0.0.4", 80))), []string{"10.0.0.1:80", "10.0.0.4:80"}},
				{"reweight", cla("api", z1(ep("10.0.0.1", 80, weight(5)), ep("10.0.0.4", 80))), []string{"10.0.0.1:80", "10.0.0.4:80"}},
				{"relabel", cla("api", z1(ep("10.0.0.1", 80, weight(5))), loc("r1", "z3", 0, 3, ep("10.0.0.4", 80))), []string{"10.0.0.1:80", "10.0.0.4:80"}},
				{"same set, new version", cla("api", z1(ep("10.0.0.1", 80, weight(5))), loc("r1", "z3", 0, 3, ep("10.0.0.4", 80))), nil},
			}
			for i, s := range steps {
				version := fmt.Sprint(i + 2)
				cp.set(t, "node-1", version, s.give)
				if s.want == nil {
					acked(t, cp, version)
					w.quiet(t)
					continue
				}
				got := w.next(t)
				require.Equal(t, s.want, resolvertest.Addrs(got), s.what)
				acked(t, cp, version)
				switch s.what {
				case "reweight":
					assert.Equal(t, 5, got[0].Weight)
				case "relabel":
					assert.Equal(t, "z3", got[1].Labels[lb.LabelZone])
				}
			}
			assert.Empty(t, cp.nacks())
		})
	}
}

func TestNACKKeepsTheSet(t *testing.T) {
	t.Parallel()
	good := cla("api", loc("r1", "z1", 0, 0, ep("10.0.0.1", 80), ep("10.0.0.2", 80)))
	web := cla("web", loc("r1", "z1", 0, 0, ep("10.0.9.1", 80)))
	noAddr := ep("10.0.0.5", 80)
	noAddr.GetEndpoint().Address = nil
	for _, tt := range []struct {
		name string
		give []*endpointv3.ClusterLoadAssignment
		want string // in the NACK's error detail
	}{
		{"duplicate address", []*endpointv3.ClusterLoadAssignment{cla("api",
			loc("r1", "z1", 0, 0, ep("10.0.0.1", 80)), loc("r1", "z2", 0, 0, ep("10.0.0.1", 80)))},
			`address "10.0.0.1:80" appears twice`},
		{"duplicate address across clusters", []*endpointv3.ClusterLoadAssignment{good,
			cla("web", loc("r1", "z1", 0, 0, ep("10.0.0.1", 80)))},
			`address "10.0.0.1:80" appears twice (clusters "api" and "web")`},
		{"duplicate hash key", []*endpointv3.ClusterLoadAssignment{cla("api", loc("r1", "z1", 0, 0,
			ep("10.0.0.1", 80, hashKey("k")), ep("10.0.0.2", 80, hashKey("k"))))},
			`hash name "k"`},
		{"weight 0", []*endpointv3.ClusterLoadAssignment{cla("api", loc("r1", "z1", 0, 0, ep("10.0.0.1", 80, weight(0))))},
			`load_balancing_weight of "10.0.0.1:80" is 0`},
		{"locality weight 0", []*endpointv3.ClusterLoadAssignment{cla("api", &endpointv3.LocalityLbEndpoints{
			LbEndpoints: []*endpointv3.LbEndpoint{ep("10.0.0.1", 80)}, LoadBalancingWeight: wrapperspb.UInt32(0)})},
			`load_balancing_weight is 0; a locality's weight`},
		{"port 0", []*endpointv3.ClusterLoadAssignment{cla("api", loc("r1", "z1", 0, 0, ep("10.0.0.1", 0)))},
			`port_value of "10.0.0.1" is 0`},
		{"port 70000", []*endpointv3.ClusterLoadAssignment{cla("api", loc("r1", "z1", 0, 0, ep("10.0.0.1", 70000)))},
			`port_value of "10.0.0.1" is 70000`},
		{"empty address", []*endpointv3.ClusterLoadAssignment{cla("api", loc("r1", "z1", 0, 0, ep("", 80)))},
			`socket_address.address is empty`},
		{"address with a space", []*endpointv3.ClusterLoadAssignment{cla("api", loc("r1", "z1", 0, 0, ep("10.0.0.1 x", 80)))},
			`contains whitespace`},
		{"no address", []*endpointv3.ClusterLoadAssignment{cla("api", loc("r1", "z1", 0, 0, noAddr))},
			`lb_endpoints[0]: the endpoint has no address`},
		{"priority gap", []*endpointv3.ClusterLoadAssignment{cla("api",
			loc("r1", "z1", 0, 0, ep("10.0.0.1", 80)), loc("r1", "z2", 2, 0, ep("10.0.0.2", 80)))},
			`no locality has priority 1, but one has priority 2`},
		{"priority 129", []*endpointv3.ClusterLoadAssignment{cla("api", loc("r1", "z1", 129, 0, ep("10.0.0.1", 80)))},
			`priority is 129`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cp := startControlPlane(t, "127.0.0.1:0", nil)
			logs := &resolvertest.Logs{}
			r := cp.resolver("n", "api", "web")
			r.Logger = slog.New(logs)
			cp.set(t, "n", "1", good, web)
			w := watch(t, r)
			require.Equal(t, []string{"10.0.0.1:80", "10.0.0.2:80", "10.0.9.1:80"}, resolvertest.Addrs(w.next(t)))
			acked(t, cp, "1")

			cp.set(t, "n", "2", tt.give...)
			nonce := cp.nonceOf(t, "2")
			nack := cp.waitRequest(t, "the NACK of version 2", func(r *discoveryv3.DiscoveryRequest) bool {
				return r.GetResponseNonce() == nonce
			})
			require.NotNil(t, nack.GetErrorDetail(), "version 2 was ACKed")
			assert.Equal(t, "1", nack.GetVersionInfo(), "a NACK names the last good version")
			assert.Contains(t, nack.GetErrorDetail().GetMessage(), tt.want)
			assert.Equal(t, 1, logs.Count("rejecting (NACK)"), "one warning per rejected version")
			w.quiet(t)

			// The next good version is taken, and only it.
			cp.set(t, "n", "3", cla("api", loc("r1", "z1", 0, 0, ep("10.0.0.3", 80))), web)
			require.Equal(t, []string{"10.0.0.3:80", "10.0.9.1:80"}, resolvertest.Addrs(w.next(t)))
			acked(t, cp, "3")
			for _, n := range cp.nacks() {
				assert.Equal(t, "1", n.GetVersionInfo())
			}
		})
	}
}

// go-control-plane's snapshot cache answers a NACK with the rejected
// version, at once: the resolver paces its repeated NACKs with its
// backoff (waits of MinBackoff·2^(n-1), less up to half of jitter), and
// takes a good version once the server has one.
func TestNACKPacing(t *testing.T) {
	t.Parallel()
	const minBackoff = 40 * time.Millisecond
	cp := startControlPlane(t, "127.0.0.1:0", nil)
	r := cp.resolver("n", "api")
	r.MinBackoff, r.MaxBackoff = minBackoff, time.Second
	cp.set(t, "n", "1", cla("api", loc("r1", "z1", 0, 0, ep("10.0.0.1", 80))))
	w := watch(t, r)
	require.Equal(t, []string{"10.0.0.1:80"}, resolvertest.Addrs(w.next(t)))
	cp.set(t, "n", "2", cla("api", loc("r1", "z1", 0, 0, ep("10.0.0.1", 0))))
	require.Eventually(t, func() bool { return len(cp.nacks()) >= 4 }, resolvertest.Deadline, time.Millisecond)
	_, at := cp.nackTimes()
	// NACK 1 at once, then waits of at least 20, 40 and 80 ms.
	assert.GreaterOrEqual(t, at[3].Sub(at[0]), (minBackoff/2)*7, "NACKs of a re-sent version are paced")
	w.quiet(t)
	cp.set(t, "n", "3", cla("api", loc("r1", "z1", 0, 0, ep("10.0.0.3", 80))))
	require.Equal(t, []string{"10.0.0.3:80"}, resolvertest.Addrs(w.next(t)))
	acked(t, cp, "3")
}

// What empties the set: a response without resources (the server has
// none of the subscribed clusters), an empty ClusterLoadAssignment, or one
// whose every endpoint is unhealthy. A response that leaves one cluster
// out does not remove it.
func TestRemoval(t *testing.T) {
	t.Parallel()
	api := cla("api", loc("r1", "z1", 0, 0, ep("10.0.0.1", 80)))
	web := cla("web", loc("r1", "z1", 0, 0, ep("10.0.9.1", 80)))
	for _, tt := range []struct {
		name string
		give []*endpointv3.ClusterLoadAssignment // version 2
		want []string                            // nil: version 2 changes nothing
	}{
		{"no resources", nil, []string{}},
		{"empty ClusterLoadAssignments", []*endpointv3.ClusterLoadAssignment{cla("api"), cla("web")}, []string{}},
		{"empty localities", []*endpointv3.ClusterLoadAssignment{cla("api", loc("r1", "z1", 0, 0)), cla("web", loc("r1", "z1", 0, 0))}, []string{}},
		{"every endpoint unhealthy", []*endpointv3.ClusterLoadAssignment{
			cla("api", loc("r1", "z1", 0, 0, ep("10.0.0.1", 80, health(corev3.HealthStatus_UNHEALTHY)))),
			cla("web", loc("r1", "z1", 0, 0, ep("10.0.9.1", 80, health(corev3.HealthStatus_DRAINING))))}, []string{}},
		{"one cluster emptied", []*endpointv3.ClusterLoadAssignment{api, cla("web")}, []string{"10.0.0.1:80"}},
		{"one cluster left out", []*endpointv3.ClusterLoadAssignment{api}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cp := startControlPlane(t, "127.0.0.1:0", nil)
			cp.set(t, "n", "1", api, web)
			w := watch(t, cp.resolver("n", "api", "web"))
			require.Equal(t, []string{"10.0.0.1:80", "10.0.9.1:80"}, resolvertest.Addrs(w.next(t)))
			cp.set(t, "n", "2", tt.give...)
			if tt.want == nil {
				acked(t, cp, "2")
				w.quiet(t)
			} else {
				require.Equal(t, tt.want, resolvertest.Addrs(w.next(t)))
				acked(t, cp, "2")
			}
			// Whatever version 2 did, version 3 brings both back.
			cp.set(t, "n", "3", api, web)
			if tt.want != nil {
				require.Equal(t, []string{"10.0.0.1:80", "10.0.9.1:80"}, resolvertest.Addrs(w.next(t)))
			}
			acked(t, cp, "3")
			w.quiet(t)
			assert.Empty(t, cp.nacks())
		})
	}
}

// The first response is reported even when it holds none of the
// clusters: the server says authoritatively that there are no endpoints.
func TestFirstSetEmpty(t *testing.T) {
	t.Parallel()
	cp := startControlPlane(t, "127.0.0.1:0", nil)
	cp.set(t, "n", "1", cla("other", loc("r1", "z1", 0, 0, ep("10.0.0.1", 80))))
	w := watch(t, cp.resolver("n", "api"))
	assert.Empty(t, w.next(t))
	acked(t, cp, "1")
}

func TestTenThousandEndpoints(t *testing.T) {
	t.Parallel()
	const n = 10000
	cp := startControlPlane(t, "127.0.0.1:0", nil)
	cp.set(t, "n", "1", manyEndpoints("big", n, 0))
	w := watch(t, cp.resolver("n", "big"))
	got := w.next(t)
	require.Len(t, got, n)
	bal, err := lb.NewBalancer(lb.RoundRobin{})
	require.NoError(t, err)
	defer bal.Close()
	require.NoError(t, bal.Update(got))
	acked(t, cp, "1")

	// Shift every address by 100: 100 endpoints go, 100 come.
	cp.set(t, "n", "2", manyEndpoints("big", n, 100))
	got = w.next(t)
	require.Len(t, got, n)
	assert.Equal(t, "10.0.0.100:8080", got[0].Addr)
	require.NoError(t, bal.Update(got))
	acked(t, cp, "2")
}

// The control plane goes away and comes back on the same port with a
// newer snapshot: the balancer keeps its set while it is away, and the
// resolver subscribes again and takes the new set.
func TestControlPlaneRestart(t *testing.T) {
	t.Parallel()
	cp := startControlPlane(t, "127.0.0.1:0", nil)
	cp.set(t, "n", "1", cla("api", loc("r1", "z1", 0, 0, ep("10.0.0.1", 80), ep("10.0.0.2", 80))))
	logs := &resolvertest.Logs{}
	r := cp.resolver("n", "api")
	r.Logger = slog.New(logs)
	bal, err := lb.NewBalancer(lb.RoundRobin{})
	require.NoError(t, err)
	defer bal.Close()
	f := lb.StartFollower(context.Background(), r, bal)
	defer func() { require.NoError(t, f.Stop()) }()
	select {
	case <-f.Ready():
	case <-time.After(resolvertest.Deadline):
		t.Fatal("no first set")
	}
	require.Equal(t, []string{"10.0.0.1:80", "10.0.0.2:80"}, backendAddrs(bal))
	acked(t, cp, "1")

	cp.stop()
	// The stream ends, and attempts to open a new one fail, with backoff.
	require.Eventually(t, func() bool { return logs.Count("stream to the management server ended") >= 3 },
		resolvertest.Deadline, time.Millisecond)
	assert.Equal(t, []string{"10.0.0.1:80", "10.0.0.2:80"}, backendAddrs(bal), "the set is kept while the control plane is away")
	p, err := bal.Pick("")
	require.NoError(t, err)
	p.Done(nil, 0)

	cp2 := startControlPlane(t, cp.addr, nil)
	cp2.set(t, "n", "2", cla("api", loc("r1", "z1", 0, 0, ep("10.0.0.2", 80), ep("10.0.0.3", 80))))
	require.Eventually(t, func() bool {
		a := backendAddrs(bal)
		return len(a) == 2 && a[0] == "10.0.0.2:80" && a[1] == "10.0.0.3:80"
	}, resolvertest.Deadline, time.Millisecond)
	sub := cp2.waitRequest(t, "the new subscription", func(*discoveryv3.DiscoveryRequest) bool { return true })
	assert.Equal(t, "1", sub.GetVersionInfo(), "a new stream names the last version the client has")
	assert.Equal(t, "n", sub.GetNode().GetId())
	assert.Equal(t, []string{"api"}, sub.GetResourceNames())
	acked(t, cp2, "2")
}

func backendAddrs(bal *lb.Balancer) []string {
	bs := bal.Backends()
	out := make([]string, len(bs))
	for i, b := range bs {
		out[i] = b.Addr()
	}
	return out
}

func TestEndToEnd(t *testing.T) {
	t.Parallel()
	cp := startControlPlane(t, "127.0.0.1:0", nil)
	cp.set(t, "n", "1", cla("api",
		loc("r1", "z1", 0, 0, ep("10.0.0.1", 80, weight(1)), ep("10.0.0.2", 80, weight(2))),
		loc("r1", "z2", 1, 0, ep("10.0.0.3", 80, weight(3)))))
	bal, err := lb.NewBalancer(lb.WeightedRoundRobin{})
	require.NoError(t, err)
	defer bal.Close()
	f := lb.StartFollower(context.Background(), cp.resolver("n", "api"), bal)
	defer func() { require.NoError(t, f.Stop()) }()
	select {
	case <-f.Ready():
	case <-time.After(resolvertest.Deadline):
		t.Fatal("no first set")
	}
	picks := func() map[string]int {
		counts := map[string]int{}
		for range 600 {
			p, err := bal.Pick("")
			require.NoError(t, err)
			counts[p.Addr()]++
			p.Done(nil, time.Millisecond)
		}
		return counts
	}
	assert.Equal(t, map[string]int{"10.0.0.1:80": 100, "10.0.0.2:80": 200, "10.0.0.3:80": 300}, picks())
	for _, b := range bal.Backends() {
		zone, _ := b.Label(lb.LabelZone)
		prio, _ := b.Label(lb.LabelPriority)
		assert.Equal(t, map[string]string{"10.0.0.1:80": "z1/0", "10.0.0.2:80": "z1/0", "10.0.0.3:80": "z2/1"}[b.Addr()], zone+"/"+prio)
	}

	cp.set(t, "n", "2", cla("api", loc("r1", "z1", 0, 0, ep("10.0.0.1", 80, weight(5)), ep("10.0.0.2", 80, weight(1)))))
	require.Eventually(t, func() bool { return len(bal.Backends()) == 2 }, resolvertest.Deadline, time.Millisecond)
	assert.Equal(t, map[string]int{"10.0.0.1:80": 500, "10.0.0.2:80": 100}, picks())
}

// TTL resources come wrapped in Resource messages, and the server sends
// heartbeats (a Resource without its resource) for them: the set is read
// through the wrapper, and heartbeats are ACKed and change nothing.
func TestTTLResourcesAndHeartbeats(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cache := cachev3.NewSnapshotCacheWithHeartbeating(ctx, false, cachev3.IDHash{}, nil, 20*time.Millisecond)
	cp := startControlPlane(t, "127.0.0.1:0", cache)
	t.Cleanup(cancel) // after cp.stop: cleanups run last first
	ttl := time.Minute
	snap, err := cachev3.NewSnapshotWithTTLs("1", map[string][]types.ResourceWithTTL{
		resource.EndpointType: {{Resource: cla("api", loc("r1", "z1", 0, 0, ep("10.0.0.1", 80))), TTL: &ttl}},
	})
	require.NoError(t, err)
	require.NoError(t, cache.SetSnapshot(context.Background(), "n", snap))
	w := watch(t, cp.resolver("n", "api"))
	require.Equal(t, []string{"10.0.0.1:80"}, resolvertest.Addrs(w.next(t)))
	// Heartbeats are responses of the same version; wait for three ACKed.
	require.Eventually(t, func() bool {
		cp.mu.Lock()
		defer cp.mu.Unlock()
		n := 0
		for _, r := range cp.requests {
			if r.GetVersionInfo() == "1" && r.GetResponseNonce() != "" && r.GetErrorDetail() == nil {
				n++
			}
		}
		return n >= 3
	}, resolvertest.Deadline, time.Millisecond)
	w.quiet(t)
	assert.Empty(t, cp.nacks())
}

// A connection of the caller's is used as it is and not closed; once the
// caller closes it, Watch returns an error.
func TestCallerConn(t *testing.T) {
	t.Parallel()
	cp := startControlPlane(t, "127.0.0.1:0", nil)
	cp.set(t, "n", "1", cla("api", loc("r1", "z1", 0, 0, ep("10.0.0.1", 80))))
	conn, err := grpc.NewClient(cp.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	done := make(chan error, 1)
	sets := make(chan int, 1)
	go func() {
		done <- xds.Resolver{Conn: conn, Node: xds.Node{ID: "n"}, Clusters: []string{"api"}, MinBackoff: time.Millisecond}.
			Watch(context.Background(), func(eps []lb.Endpoint) error {
				sets <- len(eps)
				return nil
			})
	}()
	require.Equal(t, 1, <-sets)
	require.NoError(t, conn.Close())
	select {
	case err := <-done:
		require.Error(t, err)
		assert.NotErrorIs(t, err, context.Canceled)
		assert.Contains(t, err.Error(), "connection to the management server was closed")
	case <-time.After(resolvertest.Deadline):
		t.Fatal("Watch did not return after its connection was closed")
	}
}

// An error of update ends Watch with that error.
func TestUpdateError(t *testing.T) {
	t.Parallel()
	cp := startControlPlane(t, "127.0.0.1:0", nil)
	cp.set(t, "n", "1", cla("api", loc("r1", "z1", 0, 0, ep("10.0.0.1", 80))))
	boom := errors.New("boom")
	err := cp.resolver("n", "api").Watch(context.Background(), func([]lb.Endpoint) error { return boom })
	require.ErrorIs(t, err, boom)
}

func TestCancel(t *testing.T) {
	t.Parallel()
	// A port nothing listens on: Watch is retrying with backoff.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	closed := ln.Addr().String()
	require.NoError(t, ln.Close())
	// A server without a snapshot for the node: Watch waits for a first
	// response.
	cp := startControlPlane(t, "127.0.0.1:0", nil)
	for _, tt := range []struct {
		name   string
		target string
		before bool // cancel before Watch starts
	}{
		{"already cancelled", cp.addr, true},
		{"no server", closed, false},
		{"waiting for a first response", cp.addr, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			logs := &resolvertest.Logs{}
			r := cp.resolver("nobody", "api")
			r.Target, r.Logger = tt.target, slog.New(logs)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tt.before {
				cancel()
			}
			done := make(chan error, 1)
			go func() {
				done <- r.Watch(ctx, func([]lb.Endpoint) error { return errors.New("no set expected") })
			}()
			if !tt.before {
				want := "subscribing"
				if tt.target == closed {
					want = "stream to the management server ended"
				}
				require.Eventually(t, func() bool { return logs.Count(want) > 0 }, resolvertest.Deadline, time.Millisecond)
				cancel()
			}
			select {
			case err := <-done:
				require.ErrorIs(t, err, context.Canceled)
			case <-time.After(resolvertest.Deadline):
				t.Fatal("Watch did not return after its context ended")
			}
		})
	}
}

func TestConfigErrors(t *testing.T) {
	t.Parallel()
	ok := xds.Resolver{
		Target:      "127.0.0.1:1",
		DialOptions: []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())},
		Node:        xds.Node{ID: "n"},
		Clusters:    []string{"api"},
	}
	conn, err := grpc.NewClient("127.0.0.1:1", grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer conn.Close()
	for _, tt := range []struct {
		name string
		give func(*xds.Resolver)
		want string
	}{
		{"no server", func(r *xds.Resolver) { r.Target = "" }, "Conn is nil and Target is empty"},
		{"both", func(r *xds.Resolver) { r.Conn = conn }, "Conn and Target are both set"},
		{"dial options with Conn", func(r *xds.Resolver) { r.Target, r.Conn = "", conn }, "DialOptions are set with Conn"},
		{"no credentials", func(r *xds.Resolver) { r.DialOptions = nil }, "xds.Resolver.Target \"127.0.0.1:1\" with its DialOptions"},
		{"no node", func(r *xds.Resolver) { r.Node.ID = "" }, "Node.ID is empty"},
		{"no clusters", func(r *xds.Resolver) { r.Clusters = nil }, "Clusters is empty"},
		{"empty cluster", func(r *xds.Resolver) { r.Clusters = []string{"api", ""} }, "Clusters[1] is empty"},
		{"cluster twice", func(r *xds.Resolver) { r.Clusters = []string{"api", "web", "api"} }, `Clusters[2] is "api", which is listed twice`},
		{"bad stream", func(r *xds.Resolver) { r.Stream = 7 }, "Stream is Stream(7)"},
		{"negative MinBackoff", func(r *xds.Resolver) { r.MinBackoff = -1 }, "MinBackoff is -1ns"},
		{"negative MaxBackoff", func(r *xds.Resolver) { r.MaxBackoff = -1 }, "MaxBackoff is -1ns"},
		{"MinBackoff above MaxBackoff", func(r *xds.Resolver) { r.MinBackoff, r.MaxBackoff = time.Second, time.Millisecond }, "MinBackoff (1s) is more than MaxBackoff (1ms)"},
		{"negative MaxResponseBytes", func(r *xds.Resolver) { r.MaxResponseBytes = -1 }, "MaxResponseBytes is -1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := ok
			tt.give(&r)
			err := r.Watch(context.Background(), func([]lb.Endpoint) error { return nil })
			require.ErrorIs(t, err, lb.ErrInvalidConfig)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
	err = ok.Watch(context.Background(), nil)
	require.ErrorIs(t, err, lb.ErrInvalidConfig)
	assert.Contains(t, err.Error(), "update function")
}
