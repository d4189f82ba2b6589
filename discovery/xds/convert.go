package xds

import (
	"cmp"
	"fmt"
	"net"
	"slices"
	"strconv"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/go-lb/lb"
)

// Label keys the resolver sets besides lb.LabelRegion, lb.LabelZone,
// lb.LabelSubZone and lb.LabelPriority.
const (
	// LabelCluster is the name of the ClusterLoadAssignment the endpoint
	// came from (one of Resolver.Clusters).
	LabelCluster = "cluster"
	// LabelLocalityWeight is the locality's load_balancing_weight, a
	// decimal integer; absent when the locality has none.
	LabelLocalityWeight = "locality_weight"
	// LabelHealth is set to HealthDegraded for endpoints the management
	// server reports DEGRADED; absent for HEALTHY and UNKNOWN ones.
	LabelHealth = "health"
	// LabelHostname is the endpoint's hostname; absent when it has none.
	LabelHostname = "hostname"
)

// HealthDegraded is the value of LabelHealth for a DEGRADED endpoint.
const HealthDegraded = "degraded"

// Where gRFC A76 keeps an endpoint's hash key: the string field "hash_key"
// of the "envoy.lb" filter metadata.
const (
	hashKeyFilter = "envoy.lb"
	hashKeyField  = "hash_key"
)

// locality is what the endpoints of one LocalityLbEndpoints share.
type locality struct {
	cluster, region, zone, subZone string
	priority                       uint32
	weight                         uint32 // 0: not set
}

// record is one endpoint as the resolver keeps it: about half the memory
// of an lb.Endpoint with its labels map, which is built only when a set is
// reported.
type record struct {
	addr, hashKey, hostname string
	loc                     *locality
	weight                  uint32 // as sent (1 when unset), until scaled
	degraded                bool
}

func (a record) equal(b record) bool {
	return a.addr == b.addr && a.hashKey == b.hashKey && a.hostname == b.hostname &&
		a.weight == b.weight && a.degraded == b.degraded && *a.loc == *b.loc
}

// endpoint is the lb.Endpoint of r, with labels of its own.
func (r record) endpoint() lb.Endpoint {
	l := r.loc
	labels := make(map[string]string, 8)
	labels[LabelCluster] = l.cluster
	labels[lb.LabelPriority] = strconv.FormatUint(uint64(l.priority), 10)
	for _, kv := range [...][2]string{{lb.LabelRegion, l.region}, {lb.LabelZone, l.zone}, {lb.LabelSubZone, l.subZone}, {LabelHostname, r.hostname}} {
		if kv[1] != "" {
			labels[kv[0]] = kv[1]
		}
	}
	if l.weight != 0 {
		labels[LabelLocalityWeight] = strconv.FormatUint(uint64(l.weight), 10)
	}
	if r.degraded {
		labels[LabelHealth] = HealthDegraded
	}
	return lb.Endpoint{Addr: r.addr, Weight: int(r.weight), HashKey: r.hashKey, Labels: labels}
}

// skips counts the endpoints of a resource that lb cannot use, and says
// why for the first one, so that a resource with thousands of them logs
// one line.
type skips struct {
	n     int
	first string
}

func (s *skips) add(format string, args ...any) {
	if s.n == 0 {
		s.first = fmt.Sprintf(format, args...)
	}
	s.n++
}

// Convert maps a ClusterLoadAssignment to lb endpoints, by the rules of the
// package documentation: the endpoints sorted by address, each of which
// passes lb.Endpoint.Validate, with unique addresses and hash names, and
// weights scaled to at most lb.MaxWeight. Endpoints lb cannot use (pipes,
// internal addresses, named ports, UDP, custom resolvers, endpoint names,
// LEDS localities) are left out, and skipped counts them; endpoints whose
// health status is UNHEALTHY, DRAINING or TIMEOUT (or a status this
// package does not know) are left out and not counted. A malformed
// resource (one the resolver NACKs) gets an error wrapping
// lb.ErrInvalidEndpoint that says where and why, and no endpoints.
//
// Convert is what the resolver does with each resource; it is exported for
// programs that receive ClusterLoadAssignments by other means.
func Convert(cla *endpointv3.ClusterLoadAssignment) (eps []lb.Endpoint, skipped int, err error) {
	recs, sk, err := convert(cla)
	if err != nil {
		return nil, 0, err
	}
	recs, err = mergeSets([][]record{recs})
	if err != nil {
		return nil, 0, err
	}
	eps = make([]lb.Endpoint, len(recs))
	for i, r := range recs {
		eps[i] = r.endpoint()
	}
	return eps, sk.n, nil
}

// convert reads the endpoints of cla that lb can use, unsorted and with
// their weights as sent.
func convert(cla *endpointv3.ClusterLoadAssignment) ([]record, skips, error) {
	var sk skips
	name := cla.GetClusterName()
	bad := func(format string, args ...any) ([]record, skips, error) {
		return nil, skips{}, fmt.Errorf("%w: ClusterLoadAssignment %q: %s", lb.ErrInvalidEndpoint, name, fmt.Sprintf(format, args...))
	}
	if name == "" {
		return bad("cluster_name is empty")
	}
	if len(cla.GetNamedEndpoints()) > 0 {
		sk.add("named_endpoints are not supported")
	}
	n := 0
	for _, le := range cla.GetEndpoints() {
		n += len(le.GetLbEndpoints())
	}
	recs := make([]record, 0, n)
	priorities := make([]bool, 0, 1)
	for li, le := range cla.GetEndpoints() {
		where := func() string {
			l := le.GetLocality()
			return fmt.Sprintf("endpoints[%d] (region %q, zone %q, sub_zone %q)", li, l.GetRegion(), l.GetZone(), l.GetSubZone())
		}
		p := le.GetPriority()
		if p > maxPriority {
			return bad("%s: priority is %d; priorities are at most %d", where(), p, maxPriority)
		}
		for int(p) >= len(priorities) {
			priorities = append(priorities, false)
		}
		priorities[p] = true
		loc := &locality{
			cluster:  name,
			region:   le.GetLocality().GetRegion(),
			zone:     le.GetLocality().GetZone(),
			subZone:  le.GetLocality().GetSubZone(),
			priority: p,
		}
		if w := le.GetLoadBalancingWeight(); w != nil {
			if w.GetValue() == 0 {
				return bad("%s: load_balancing_weight is 0; a locality's weight must be >= 1 when set", where())
			}
			loc.weight = w.GetValue()
		}
		if le.GetLedsClusterLocalityConfig() != nil {
			sk.add("%s: LEDS (leds_cluster_locality_config) is not supported", where())
			continue
		}
		for ei, e := range le.GetLbEndpoints() {
			r, why, err := convertEndpoint(e, loc)
			if err != nil {
				return bad("%s: lb_endpoints[%d]: %v", where(), ei, err)
			}
			switch {
			case why != "":
				sk.add("%s: lb_endpoints[%d]: %s", where(), ei, why)
			case r.addr != "":
				recs = append(recs, r)
			}
		}
	}
	for p, ok := range priorities {
		if !ok {
			return bad("no locality has priority %d, but one has priority %d; priorities must be contiguous from 0", p, len(priorities)-1)
		}
	}
	return recs, sk, nil
}

// maxPriority is the largest priority a locality may have (the proto's
// own limit).
const maxPriority = 128

// convertEndpoint returns the record of e; or why lb cannot use it; or an
// empty record when its health status leaves it out; or an error when it
// is malformed.
func convertEndpoint(e *endpointv3.LbEndpoint, loc *locality) (record, string, error) {
	switch e.GetHealthStatus() {
	case corev3.HealthStatus_UNKNOWN, corev3.HealthStatus_HEALTHY, corev3.HealthStatus_DEGRADED:
	default: // UNHEALTHY, DRAINING, TIMEOUT, and values this package does not know
		return record{}, "", nil
	}
	if e.GetEndpointName() != "" {
		return record{}, fmt.Sprintf("endpoint_name %q: named endpoints are not supported", e.GetEndpointName()), nil
	}
	ep := e.GetEndpoint()
	if ep == nil || ep.GetAddress() == nil {
		return record{}, "", fmt.Errorf("the endpoint has no address")
	}
	addr := ep.GetAddress()
	switch {
	case addr.GetPipe() != nil:
		return record{}, fmt.Sprintf("pipe %q: lb dials host:port addresses only", addr.GetPipe().GetPath()), nil
	case addr.GetEnvoyInternalAddress() != nil:
		return record{}, "an Envoy internal address: lb dials host:port addresses only", nil
	}
	sa := addr.GetSocketAddress()
	if sa == nil {
		return record{}, "", fmt.Errorf("the address is of no known kind")
	}
	switch {
	case sa.GetProtocol() != corev3.SocketAddress_TCP:
		return record{}, fmt.Sprintf("%s address %q: lb dials TCP only", sa.GetProtocol(), sa.GetAddress()), nil
	case sa.GetNamedPort() != "":
		return record{}, fmt.Sprintf("address %q has the named port %q: lb needs a port number", sa.GetAddress(), sa.GetNamedPort()), nil
	case sa.GetResolverName() != "":
		return record{}, fmt.Sprintf("address %q names the resolver %q: lb does not resolve EDS addresses", sa.GetAddress(), sa.GetResolverName()), nil
	}
	if sa.GetAddress() == "" {
		return record{}, "", fmt.Errorf("socket_address.address is empty")
	}
	port := sa.GetPortValue()
	if port == 0 || port > 65535 {
		return record{}, "", fmt.Errorf("port_value of %q is %d; ports must be 1-65535", sa.GetAddress(), port)
	}
	r := record{
		addr:     net.JoinHostPort(sa.GetAddress(), strconv.FormatUint(uint64(port), 10)),
		hostname: ep.GetHostname(),
		loc:      loc,
		weight:   1,
		degraded: e.GetHealthStatus() == corev3.HealthStatus_DEGRADED,
	}
	if w := e.GetLoadBalancingWeight(); w != nil {
		if w.GetValue() == 0 {
			return record{}, "", fmt.Errorf("load_balancing_weight of %q is 0; weights must be >= 1 when set", r.addr)
		}
		r.weight = w.GetValue()
	}
	// gRFC A76: a hash key that is not a string is ignored.
	if v, ok := e.GetMetadata().GetFilterMetadata()[hashKeyFilter].GetFields()[hashKeyField].GetKind().(*structpb.Value_StringValue); ok {
		r.hashKey = v.StringValue
	}
	if err := (lb.Endpoint{Addr: r.addr, HashKey: r.hashKey}).Validate(); err != nil {
		return record{}, "", err
	}
	return r, "", nil
}

// mergeSets joins the records of several resources into one set sorted by
// address, checks lb's rules for a set (unique addresses, unique hash
// names), and scales the weights when the largest is above lb.MaxWeight.
// The records are copied; the inputs are not changed.
func mergeSets(sets [][]record) ([]record, error) {
	n := 0
	for _, s := range sets {
		n += len(s)
	}
	out := make([]record, 0, n)
	for _, s := range sets {
		out = append(out, s...)
	}
	slices.SortFunc(out, func(a, b record) int { return cmp.Compare(a.addr, b.addr) })
	var names map[string]string // hash name -> address, when some endpoint has a hash key
	var maxW uint32
	for i, r := range out {
		if i > 0 && out[i-1].addr == r.addr {
			return nil, fmt.Errorf("%w: address %q appears twice (clusters %q and %q)", lb.ErrDuplicateEndpoint, r.addr, out[i-1].loc.cluster, r.loc.cluster)
		}
		if r.hashKey != "" && names == nil {
			names = make(map[string]string, len(out))
		}
		maxW = max(maxW, r.weight)
	}
	for _, r := range out {
		if names == nil {
			break
		}
		name := cmp.Or(r.hashKey, r.addr)
		if other, dup := names[name]; dup {
			return nil, fmt.Errorf("%w: hash name %q of %q is also the hash name of %q; hash keys (or the addresses of endpoints without one) must be unique", lb.ErrDuplicateEndpoint, name, r.addr, other)
		}
		names[name] = r.addr
	}
	if maxW > lb.MaxWeight {
		for i := range out {
			out[i].weight = scaleWeight(out[i].weight, maxW)
		}
	}
	return out, nil
}

// scaleWeight maps w in [1, maxW] to [1, lb.MaxWeight] in proportion,
// rounding to the nearest integer, and never below 1.
func scaleWeight(w, maxW uint32) uint32 {
	s := (uint64(w)*lb.MaxWeight + uint64(maxW)/2) / uint64(maxW)
	return uint32(max(s, 1))
}
