package lbgrpc

import (
	"encoding/json"
	"log/slog"
	"sync"

	"github.com/go-lb/lb"
	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/serviceconfig"
)

// Name is the policy name Register registers, the key of the policy's
// entry in a service config's "loadBalancingConfig" list.
const Name = "go_lb"

// Options configures a Builder made by NewBuilder. The zero value is the
// builder Register registers.
type Options struct {
	// Name is the policy name the builder answers to; "" means Name. Give
	// another name to register a second builder with other Options (a
	// different Logger or OnBalancer) beside the default one.
	Name string
	// Logger receives the policy's and its lb.Balancers' logs (endpoints
	// skipped, ejections, readmissions). nil logs nothing.
	Logger *slog.Logger
	// OnBalancer, when not nil, is called with each lb.Balancer the policy
	// creates: one per ClientConn (target is the ClientConn's parsed
	// target, as resolver.Target.String gives it), and a new one when the
	// service config changes the strategy or the outlier settings. Use it
	// to read the Balancer's Stats (in flight, failures, ejections). It is
	// called from gRPC's balancer goroutine: it must not block.
	OnBalancer func(target string, b *lb.Balancer)
}

// NewBuilder returns a balancer.Builder that runs lb's strategies. The
// value also implements balancer.ConfigParser: gRPC hands it the policy's
// service-config entry (see the package documentation). Register it with
// balancer.Register at start-up, before any ClientConn is created, as
// gRPC requires; Register does that for the default Options.
func NewBuilder(o Options) balancer.Builder {
	if o.Name == "" {
		o.Name = Name
	}
	return builder{opts: o}
}

var registerOnce sync.Once

// Register registers NewBuilder(Options{}) with gRPC under Name, so that a
// service config can select the policy. Call it once at start-up (in main
// or in an init function of your own) before creating ClientConns: gRPC's
// registry is not safe for concurrent use. Later calls do nothing.
//
// The package does not register itself in an init function: importing it
// changes nothing until Register (or balancer.Register with NewBuilder) is
// called, so a program states which policies it runs, and a second builder
// with other Options cannot be shadowed by a side effect of an import.
func Register() {
	registerOnce.Do(func() { balancer.Register(NewBuilder(Options{})) })
}

type builder struct{ opts Options }

// Name implements balancer.Builder.
func (b builder) Name() string { return b.opts.Name }

// ParseConfig implements balancer.ConfigParser.
func (b builder) ParseConfig(js json.RawMessage) (serviceconfig.LoadBalancingConfig, error) {
	return parseConfig(js)
}

// Build implements balancer.Builder.
func (b builder) Build(cc balancer.ClientConn, bo balancer.BuildOptions) balancer.Balancer {
	return newBalancer(cc, bo.Target.String(), b.opts)
}
