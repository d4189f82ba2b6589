package xds_test

import (
	"slices"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/proto"

	"github.com/go-lb/lb"
	"github.com/go-lb/lb/discovery/xds"
)

// FuzzConvert decodes the input as a ClusterLoadAssignment, as the
// resolver decodes what a server sends, and converts it: Convert never
// panics, and what it accepts is a set lb takes as it is (every endpoint
// valid, addresses and hash names unique), sorted by address, with
// weights within lb's bounds. Run it longer with
//
//	go test -run '^$' -fuzz FuzzConvert -fuzztime 1m .
func FuzzConvert(f *testing.F) {
	seeds := []*endpointv3.ClusterLoadAssignment{
		cla("api", loc("r1", "z1", 0, 3, ep("10.0.0.1", 80, weight(2), hashKey("a"), hostname("h")),
			ep("::1", 443, health(corev3.HealthStatus_DEGRADED)), pipe("/x")),
			loc("r1", "z2", 1, 0, ep("10.0.0.2", 80, weight(1<<31)), ep("10.0.0.3", 80, health(corev3.HealthStatus_DRAINING)))),
		cla("dup", loc("", "", 0, 0, ep("10.0.0.1", 80), ep("10.0.0.1", 80))),
		cla("hash", loc("", "", 0, 0, ep("10.0.0.1", 80, hashKey("10.0.0.2:80")), ep("10.0.0.2", 80))),
		cla("gap", loc("", "", 2, 0, ep("10.0.0.1", 80))),
		cla("bad", loc("", "", 0, 0, ep("10.0.0.1", 0), ep("", 1), ep("a b", 1))),
		manyEndpoints("many", 50, 0),
	}
	for _, s := range seeds {
		b, err := proto.Marshal(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		var c endpointv3.ClusterLoadAssignment
		if proto.Unmarshal(b, &c) != nil {
			return
		}
		eps, skipped, err := xds.Convert(&c)
		if err != nil {
			if eps != nil || skipped != 0 {
				t.Fatalf("an error with endpoints: %v", err)
			}
			return
		}
		if !slices.IsSortedFunc(eps, func(a, b lb.Endpoint) int { return strings.Compare(a.Addr, b.Addr) }) {
			t.Fatal("not sorted by address")
		}
		for _, e := range eps {
			if err := e.Validate(); err != nil {
				t.Fatalf("accepted an invalid endpoint: %v", err)
			}
			if e.Weight < 1 || e.Weight > lb.MaxWeight {
				t.Fatalf("weight %d of %q", e.Weight, e.Addr)
			}
			if e.Labels[xds.LabelCluster] != c.GetClusterName() {
				t.Fatalf("cluster label %q of %q", e.Labels[xds.LabelCluster], e.Addr)
			}
		}
		if len(eps) > 0 {
			if _, err := lb.NewBackends(eps); err != nil {
				t.Fatalf("accepted a set lb rejects: %v", err)
			}
		}
	})
}
