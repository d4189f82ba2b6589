package xds

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/connectivity"

	"github.com/go-lb/lb"
	retry "github.com/go-lb/lb/internal/backoff"
	"github.com/go-lb/lb/internal/report"
)

// Resolver is an lb.Resolver over the ClusterLoadAssignments (EDS
// resources) that an xDS management server sends: see the package
// documentation for the protocol it follows and how resources become
// endpoints. Its zero value is not usable: set Conn or Target, Node.ID and
// Clusters.
type Resolver struct {
	// Conn is a connection of the caller's to the management server. Watch
	// opens its streams on it and does not close it; Watch returns an
	// error once it is closed. Set Conn or Target, not both.
	Conn *grpc.ClientConn
	// Target is the management server's address, in grpc.NewClient's
	// syntax ("127.0.0.1:18000", "dns:///xds.example.com:443"): Watch
	// makes a connection of its own and closes it when it returns.
	Target string
	// DialOptions are used with Target; they must include transport
	// credentials (grpc.WithTransportCredentials: TLS, or
	// insecure.NewCredentials() for plaintext). The connection's reconnect
	// backoff follows MinBackoff and MaxBackoff unless these options set
	// their own (grpc.WithConnectParams).
	DialOptions []grpc.DialOption
	// Node identifies this client to the management server, which may
	// send each node its own endpoints. Node.ID is required.
	Node Node
	// Clusters are the names of the ClusterLoadAssignments to follow: a
	// Cluster's eds_service_name, or the cluster's name when it has none.
	// At least one is required. The endpoints of all of them make one set
	// (LabelCluster tells them apart).
	Clusters []string
	// Stream is the xDS service to use: ADS (the default) or EDS.
	Stream Stream
	// Logger receives NACKs, skipped endpoints and lost streams (Warn),
	// and stream starts and ACKed versions (Debug); nil logs nothing.
	Logger *slog.Logger
	// MinBackoff is the first wait before opening a stream again after
	// one failed; 0 means DefaultMinBackoff. The wait doubles with each
	// failure in a row (with jitter), up to MaxBackoff; a stream that
	// delivered a response resets it.
	MinBackoff time.Duration
	// MaxBackoff is the longest wait between attempts; 0 means
	// DefaultMaxBackoff.
	MaxBackoff time.Duration
	// MaxResponseBytes is the largest response accepted from the server;
	// 0 means DefaultMaxResponseBytes. (A ClusterLoadAssignment of 10,000
	// endpoints is about 0.5 MB.)
	MaxResponseBytes int
}

// Node is the client's identity, sent to the management server in the
// first request of each stream.
type Node struct {
	// ID is the node's identifier (node.id); required.
	ID string
	// Cluster is the service the client belongs to (node.cluster).
	Cluster string
	// Locality is where the client runs.
	Locality Locality
}

// Locality is a region, a zone within it and a sub-zone within that.
type Locality struct {
	Region, Zone, SubZone string
}

// Stream is the xDS service the resolver subscribes through.
type Stream int

const (
	// ADS is the aggregated discovery service
	// (AggregatedDiscoveryService.StreamAggregatedResources), state of the
	// world, subscribing to ClusterLoadAssignments only.
	ADS Stream = iota
	// EDS is the endpoint discovery service
	// (EndpointDiscoveryService.StreamEndpoints), state of the world.
	EDS
)

// String returns "ADS" or "EDS".
func (s Stream) String() string {
	switch s {
	case ADS:
		return "ADS"
	case EDS:
		return "EDS"
	}
	return fmt.Sprintf("Stream(%d)", int(s))
}

// Defaults of Resolver.
const (
	// DefaultMinBackoff is the default first wait before a new stream.
	DefaultMinBackoff = 100 * time.Millisecond
	// DefaultMaxBackoff is the default longest wait before a new stream.
	DefaultMaxBackoff = 10 * time.Second
	// DefaultMaxResponseBytes is the default largest response accepted.
	DefaultMaxResponseBytes = 64 << 20
)

func (r Resolver) withDefaults() (Resolver, error) {
	bad := func(format string, args ...any) (Resolver, error) {
		return r, fmt.Errorf("%w: xds.Resolver.%s", lb.ErrInvalidConfig, fmt.Sprintf(format, args...))
	}
	switch {
	case r.Conn == nil && r.Target == "":
		return bad("Conn is nil and Target is empty; set one of them")
	case r.Conn != nil && r.Target != "":
		return bad("Conn and Target are both set; set one of them")
	case r.Conn != nil && len(r.DialOptions) > 0:
		return bad("DialOptions are set with Conn; they apply to Target only")
	case r.Node.ID == "":
		return bad("Node.ID is empty; management servers tell clients apart by it")
	case len(r.Clusters) == 0:
		return bad("Clusters is empty; name at least one ClusterLoadAssignment to follow")
	case r.Stream != ADS && r.Stream != EDS:
		return bad("Stream is %v; it must be ADS or EDS", r.Stream)
	case r.MinBackoff < 0:
		return bad("MinBackoff is %v; it must be >= 0", r.MinBackoff)
	case r.MaxBackoff < 0:
		return bad("MaxBackoff is %v; it must be >= 0", r.MaxBackoff)
	case r.MaxResponseBytes < 0:
		return bad("MaxResponseBytes is %d; it must be >= 0", r.MaxResponseBytes)
	}
	r.Clusters = slices.Clone(r.Clusters) // the caller's slice may change
	seen := make(map[string]bool, len(r.Clusters))
	for i, c := range r.Clusters {
		switch {
		case c == "":
			return bad("Clusters[%d] is empty", i)
		case seen[c]:
			return bad("Clusters[%d] is %q, which is listed twice", i, c)
		}
		seen[c] = true
	}
	if r.MinBackoff == 0 {
		r.MinBackoff = DefaultMinBackoff
	}
	if r.MaxBackoff == 0 {
		r.MaxBackoff = max(DefaultMaxBackoff, r.MinBackoff)
	}
	if r.MinBackoff > r.MaxBackoff {
		return bad("MinBackoff (%v) is more than MaxBackoff (%v)", r.MinBackoff, r.MaxBackoff)
	}
	if r.MaxResponseBytes == 0 {
		r.MaxResponseBytes = DefaultMaxResponseBytes
	}
	if r.Logger == nil {
		r.Logger = slog.New(slog.DiscardHandler)
	}
	return r, nil
}

// Watch implements lb.Resolver. It returns an error wrapping
// lb.ErrInvalidConfig at once when r is invalid, ctx.Err() when ctx ends,
// the error of update when that is not nil, and an error when Conn is
// closed. Everything else (an unreachable server, a broken stream, a
// resource it NACKs) is logged and retried, and the last good set stays.
func (r Resolver) Watch(ctx context.Context, update func([]lb.Endpoint) error) error {
	r, err := r.withDefaults()
	if err != nil {
		return err
	}
	if update == nil {
		return fmt.Errorf("%w: xds.Resolver.Watch needs an update function", lb.ErrInvalidConfig)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	conn := r.Conn
	if conn == nil {
		opts := append([]grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: r.MinBackoff, Multiplier: 1.6, Jitter: 0.2, MaxDelay: r.MaxBackoff},
			MinConnectTimeout: 20 * time.Second,
		})}, r.DialOptions...)
		conn, err = grpc.NewClient(r.Target, opts...)
		if err != nil {
			return fmt.Errorf("%w: xds.Resolver.Target %q with its DialOptions: %v", lb.ErrInvalidConfig, r.Target, err)
		}
		defer conn.Close()
	}
	w := newWatcher(r, update)
	failures := 0
	for {
		delivered, err := w.run(ctx, conn)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var ue report.UpdateError
		if errors.As(err, &ue) {
			return ue.Err
		}
		if conn.GetState() == connectivity.Shutdown {
			return fmt.Errorf("xds: the connection to the management server was closed: %w", err)
		}
		if delivered {
			failures = 0
		}
		failures++
		wait := retryWait(failures, r.MinBackoff, r.MaxBackoff)
		r.Logger.Warn("xds: the stream to the management server ended; keeping the last set",
			"stream", r.Stream, "err", err, "retry_in", wait)
		if err := sleep(ctx, wait); err != nil {
			return err
		}
	}
}

// sleep waits for d, or returns ctx.Err() when ctx ends first.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// retryWait is the wait before attempt n+1 after n failures in a row:
// lo·2^(n-1), at most hi, of which a random part, up to half, is taken
// off so that clients that lost the same server do not return together.
func retryWait(n int, lo, hi time.Duration) time.Duration {
	return retry.Jitter(retry.Exp(n, lo, hi))
}

func (r Resolver) nodeProto() *corev3.Node {
	var loc *corev3.Locality
	if l := r.Node.Locality; l != (Locality{}) {
		loc = &corev3.Locality{Region: l.Region, Zone: l.Zone, SubZone: l.SubZone}
	}
	return &corev3.Node{
		Id:            r.Node.ID,
		Cluster:       r.Node.Cluster,
		Locality:      loc,
		UserAgentName: "go-lb",
		ClientFeatures: []string{
			// The overprovisioning factor (and so locality spill-over by
			// it) is not applied.
			"envoy.lb.does_not_support_overprovisioning",
			// Resources may come wrapped in a Resource (TTLs, heartbeats).
			"xds.config.resource-in-sotw",
		},
	}
}
