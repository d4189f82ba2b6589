package benchmarks

import (
	"context"

	"github.com/go-kit/kit/endpoint"
	"github.com/go-kit/kit/sd"
	kitlb "github.com/go-kit/kit/sd/lb"
)

// GoKitEndpointer returns a fixed go-kit endpointer over names: each
// endpoint answers with its backend's address.
func GoKitEndpointer(names []string) sd.FixedEndpointer {
	eps := make(sd.FixedEndpointer, len(names))
	for i, name := range names {
		name := name
		eps[i] = func(context.Context, any) (any, error) { return name, nil }
	}
	return eps
}

// NewGoKitRoundRobin returns go-kit's round robin over names.
func NewGoKitRoundRobin(names []string) kitlb.Balancer {
	return kitlb.NewRoundRobin(GoKitEndpointer(names))
}

// GoKitSeed seeds go-kit's random balancer.
const GoKitSeed = 42

// NewGoKitRandom returns go-kit's random balancer over names. It is not
// safe for concurrent use (one unsynchronised *rand.Rand).
func NewGoKitRandom(names []string) kitlb.Balancer {
	return kitlb.NewRandom(GoKitEndpointer(names), GoKitSeed)
}

type gokitPicker struct{ b kitlb.Balancer }

func (g gokitPicker) Next() string {
	ep, err := g.b.Endpoint()
	if err != nil {
		return ""
	}
	return endpointName(ep)
}

func endpointName(ep endpoint.Endpoint) string {
	v, err := ep(context.Background(), nil)
	if err != nil {
		return ""
	}
	s, _ := v.(string)
	return s
}

func gokitImpls() []Impl {
	const lib, mod = "github.com/go-kit/kit/sd/lb", "github.com/go-kit/kit"
	return []Impl{
		{
			Workload: RoundRobin, ID: "go-kit", Library: lib, Module: mod,
			Settings: "NewRoundRobin(sd.FixedEndpointer)",
			NewSeq: func(names []string, _ []int) (SeqPicker, error) {
				return gokitPicker{NewGoKitRoundRobin(names)}, nil
			},
		},
		{
			Workload: Random, ID: "go-kit", Library: lib, Module: mod, Unsafe: true,
			Settings: "NewRandom(sd.FixedEndpointer, seed 42)",
			NewSeq: func(names []string, _ []int) (SeqPicker, error) {
				return gokitPicker{NewGoKitRandom(names)}, nil
			},
		},
	}
}
