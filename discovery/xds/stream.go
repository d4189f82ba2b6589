package xds

import (
	"context"
	"fmt"
	"slices"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	edsv3 "github.com/envoyproxy/go-control-plane/envoy/service/endpoint/v3"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/go-lb/lb"
	"github.com/go-lb/lb/internal/report"
)

// Type URLs of the resources the resolver reads.
const (
	claType      = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
	resourceType = "type.googleapis.com/envoy.service.discovery.v3.Resource"
)

// watcher is what one Watch call knows; it outlives its streams.
type watcher struct {
	Resolver
	update   func([]lb.Endpoint) error
	node     *corev3.Node
	wanted   map[string]bool
	clusters map[string][]record // the accepted resources, by name
	version  string              // version_info of the last accepted response
	last     []record            // the set last reported
	reported bool
	// rejected is the version last NACKed on this stream and how many
	// times in a row, to pace the NACKs of a server that re-sends it.
	rejected struct {
		version string
		n       int
	}
}

func newWatcher(r Resolver, update func([]lb.Endpoint) error) *watcher {
	w := &watcher{Resolver: r, update: update, node: r.nodeProto(), wanted: map[string]bool{}, clusters: map[string][]record{}}
	for _, c := range r.Clusters {
		w.wanted[c] = true
	}
	return w
}

type xdsStream = grpc.BidiStreamingClient[discoveryv3.DiscoveryRequest, discoveryv3.DiscoveryResponse]

// run opens one stream, subscribes, and follows it until it breaks or ctx
// ends. delivered says whether the server sent anything on it.
func (w *watcher) run(ctx context.Context, conn *grpc.ClientConn) (delivered bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // ends the stream, whatever ends run
	var s xdsStream
	limit := grpc.MaxCallRecvMsgSize(w.MaxResponseBytes)
	if w.Stream == EDS {
		s, err = edsv3.NewEndpointDiscoveryServiceClient(conn).StreamEndpoints(ctx, limit)
	} else {
		s, err = discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx, limit)
	}
	if err != nil {
		return false, fmt.Errorf("opening the %v stream: %w", w.Stream, err)
	}
	// On a new stream the nonce starts afresh; the version is the last one
	// accepted, so a server may skip resending what the client has.
	first := w.request("", nil)
	first.Node = w.node
	w.rejected.n = 0
	w.Logger.Debug("xds: subscribing", "stream", w.Stream, "clusters", w.Clusters, "version", w.version)
	send := func(req *discoveryv3.DiscoveryRequest) error {
		err := s.Send(req)
		if err == nil {
			return nil
		}
		// Send fails with io.EOF when the stream has ended; Recv says why.
		if _, rerr := s.Recv(); rerr != nil {
			return rerr
		}
		return err
	}
	if err := send(first); err != nil {
		return false, err
	}
	for {
		resp, err := s.Recv()
		if err != nil {
			return delivered, err
		}
		delivered = true
		req, err := w.handle(ctx, resp)
		if err != nil {
			return delivered, err
		}
		if req == nil { // a response that needs no answer
			continue
		}
		if err := send(req); err != nil {
			return delivered, err
		}
	}
}

// request is a subscription to the clusters at the last accepted version:
// an ACK of the response of nonce, or its NACK when nack is not nil.
func (w *watcher) request(nonce string, nack error) *discoveryv3.DiscoveryRequest {
	req := &discoveryv3.DiscoveryRequest{
		VersionInfo:   w.version,
		ResourceNames: w.Clusters,
		TypeUrl:       claType,
		ResponseNonce: nonce,
	}
	if nack != nil {
		req.ErrorDetail = &statuspb.Status{Code: int32(codes.InvalidArgument), Message: nack.Error()}
	}
	return req
}

// handle applies a response and returns its ACK or NACK (nil for a
// response of a type the resolver did not ask for), or a report.UpdateError, or
// ctx.Err().
func (w *watcher) handle(ctx context.Context, resp *discoveryv3.DiscoveryResponse) (*discoveryv3.DiscoveryRequest, error) {
	if resp.GetTypeUrl() != claType {
		// Answering would subscribe to that type; say nothing.
		w.Logger.Warn("xds: ignoring a response of a type not asked for", "type_url", resp.GetTypeUrl())
		return nil, nil
	}
	clusters, set, heard, err := w.accept(resp)
	if err != nil {
		return w.nack(ctx, resp, err)
	}
	w.rejected.n = 0
	w.clusters, w.version = clusters, resp.GetVersionInfo()
	if w.reported && !slices.EqualFunc(w.last, set, record.equal) || !w.reported && heard {
		eps := make([]lb.Endpoint, len(set))
		for i, r := range set {
			eps[i] = r.endpoint()
		}
		if err := w.update(eps); err != nil {
			return nil, report.UpdateError{Err: err}
		}
		w.last, w.reported = set, true
	}
	w.Logger.Debug("xds: accepted (ACK)", "version", w.version, "endpoints", len(set))
	return w.request(resp.GetNonce(), nil), nil
}

// nack returns the NACK of resp. Some servers (go-control-plane's
// snapshot cache) answer a NACK by sending the rejected version again at
// once; the NACK of a version rejected just before waits, with the
// stream's backoff, so that such a server and the resolver do not spin.
// A new version is then received when the wait ends.
func (w *watcher) nack(ctx context.Context, resp *discoveryv3.DiscoveryResponse, err error) (*discoveryv3.DiscoveryRequest, error) {
	version := resp.GetVersionInfo()
	if w.rejected.n == 0 || w.rejected.version != version {
		w.rejected.version, w.rejected.n = version, 0
		w.Logger.Warn("xds: rejecting (NACK) an update; keeping the last set",
			"version", version, "nonce", resp.GetNonce(), "kept_version", w.version, "err", err)
	} else {
		wait := retryWait(w.rejected.n, w.MinBackoff, w.MaxBackoff)
		w.Logger.Debug("xds: the server sent a rejected version again; NACKing it again after a wait",
			"version", version, "wait", wait)
		if err := sleep(ctx, wait); err != nil {
			return nil, err
		}
	}
	w.rejected.n++
	return w.request(resp.GetNonce(), err), nil
}

// accept decodes the resources of resp and returns the clusters and the
// set they would make, or why resp must be rejected. A response without
// resources removes every cluster (see the package documentation); one
// with some leaves the clusters it does not carry as they were. heard
// says whether resp tells anything of the subscribed clusters: until a
// response does, no set is reported.
func (w *watcher) accept(resp *discoveryv3.DiscoveryResponse) (_ map[string][]record, _ []record, heard bool, _ error) {
	next := make(map[string][]record, len(w.wanted))
	carried := make(map[string]bool, len(resp.GetResources()))
	heard = len(resp.GetResources()) == 0
	for i, res := range resp.GetResources() {
		name, cla, err := unpack(res)
		if err != nil {
			return nil, nil, false, fmt.Errorf("resources[%d]: %w", i, err)
		}
		if name == "" {
			return nil, nil, false, fmt.Errorf("resources[%d]: %w: a ClusterLoadAssignment without a cluster_name", i, lb.ErrInvalidEndpoint)
		}
		if !w.wanted[name] {
			w.Logger.Debug("xds: ignoring a resource not subscribed to", "name", name)
			continue
		}
		if carried[name] {
			return nil, nil, false, fmt.Errorf("resources[%d]: %q appears twice in the response", i, name)
		}
		carried[name] = true
		if cla == nil { // a heartbeat: the resource is unchanged
			if old, ok := w.clusters[name]; ok {
				next[name], heard = old, true
			}
			continue
		}
		recs, sk, err := convert(cla)
		if err != nil {
			return nil, nil, false, fmt.Errorf("resources[%d]: %w", i, err)
		}
		if sk.n > 0 {
			w.Logger.Warn("xds: leaving out endpoints lb cannot use", "cluster", name, "count", sk.n, "first", sk.first)
		}
		next[name], heard = recs, true
	}
	if len(resp.GetResources()) > 0 {
		for name, recs := range w.clusters {
			if !carried[name] {
				next[name] = recs
			}
		}
	}
	sets := make([][]record, 0, len(next))
	for _, c := range w.Clusters { // in a fixed order, so errors are the same every time
		if recs, ok := next[c]; ok {
			sets = append(sets, recs)
		}
	}
	set, err := mergeSets(sets)
	if err != nil {
		return nil, nil, false, err
	}
	return next, set, heard, nil
}

// unpack returns the name of a resource and its ClusterLoadAssignment,
// which is nil for a Resource wrapper without a resource (a TTL
// heartbeat).
func unpack(res *anypb.Any) (string, *endpointv3.ClusterLoadAssignment, error) {
	if res.GetTypeUrl() == resourceType {
		var wrapper discoveryv3.Resource
		if err := proto.Unmarshal(res.GetValue(), &wrapper); err != nil {
			return "", nil, fmt.Errorf("%w: a Resource that does not decode: %v", lb.ErrInvalidEndpoint, err)
		}
		if wrapper.GetResource() == nil {
			if wrapper.GetName() == "" {
				return "", nil, fmt.Errorf("%w: a Resource with neither a name nor a resource", lb.ErrInvalidEndpoint)
			}
			return wrapper.GetName(), nil, nil
		}
		res = wrapper.GetResource()
	}
	if res.GetTypeUrl() != claType {
		return "", nil, fmt.Errorf("%w: a resource of type %q in a response of type %q", lb.ErrInvalidEndpoint, res.GetTypeUrl(), claType)
	}
	cla := new(endpointv3.ClusterLoadAssignment)
	if err := proto.Unmarshal(res.GetValue(), cla); err != nil {
		return "", nil, fmt.Errorf("%w: a ClusterLoadAssignment that does not decode: %v", lb.ErrInvalidEndpoint, err)
	}
	return cla.GetClusterName(), cla, nil
}
