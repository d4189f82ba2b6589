package benchmarks

import (
	"fmt"

	"github.com/go-lb/lb"
)

// Endpoints returns lb endpoints for names, weighted when weights is not
// nil.
func Endpoints(names []string, weights []int) []lb.Endpoint {
	eps := lb.Addrs(names...)
	for i := range eps {
		if weights != nil {
			eps[i].Weight = weights[i]
		}
	}
	return eps
}

// The configurations of lb's hash rows, shared by the speed benchmarks and
// the quality report.
var (
	LbRing           = lb.Ring{}
	LbRingCRC32      = lb.Ring{Hash: lb.CRC32}
	LbRingGroupcache = lb.Ring{Compat: lb.CompatGroupcache}
	LbMaglev         = lb.Maglev{}
)

// NewLbAnchor returns a fresh lb.Anchor (an Anchor keeps its history, so
// every set starts its own).
func NewLbAnchor() *lb.Anchor { return &lb.Anchor{} }

// lbPicker adapts an lb picker to KeyPicker and SeqPicker.
type lbPicker struct{ p lb.Picker }

func (a lbPicker) Get(key string) string {
	b, err := a.p.Pick(key)
	if err != nil {
		return ""
	}
	return b.Addr()
}

func (a lbPicker) Next() string { return a.Get("") }

func lbSeq(build func([]lb.Endpoint) (lb.Picker, error)) func([]string, []int) (SeqPicker, error) {
	return func(names []string, weights []int) (SeqPicker, error) {
		p, err := build(Endpoints(names, weights))
		if err != nil {
			return nil, err
		}
		return lbPicker{p}, nil
	}
}

func lbKeyed(build func([]lb.Endpoint) (lb.Picker, error)) func([]string) (KeyPicker, error) {
	return func(names []string) (KeyPicker, error) {
		p, err := build(Endpoints(names, nil))
		if err != nil {
			return nil, err
		}
		return lbPicker{p}, nil
	}
}

// picker converts a concrete constructor's result to lb.Picker.
func picker[P lb.Picker](p P, err error) (lb.Picker, error) {
	if err != nil {
		return nil, err
	}
	return p, nil
}

func lbImpls() []Impl {
	const lib, mod = "github.com/go-lb/lb", "github.com/go-lb/lb"
	return []Impl{
		{
			Workload: RoundRobin, ID: "lb", Library: lib, Module: mod, Lb: true,
			Settings: "RoundRobin{} (striped counters, default stripes)",
			NewSeq: lbSeq(func(eps []lb.Endpoint) (lb.Picker, error) {
				return picker(lb.RoundRobin{}.New(eps))
			}),
		},
		{
			Workload: RoundRobin, ID: "lb-stripes1", Library: lib, Module: mod, Lb: true,
			Settings: "RoundRobin{Stripes: 1} (one counter, strict global order)",
			NewSeq: lbSeq(func(eps []lb.Endpoint) (lb.Picker, error) {
				return picker(lb.RoundRobin{Stripes: 1}.New(eps))
			}),
		},
		{
			Workload: Random, ID: "lb", Library: lib, Module: mod, Lb: true,
			Settings: "Random{} (math/rand/v2 per-thread generator)",
			NewSeq: lbSeq(func(eps []lb.Endpoint) (lb.Picker, error) {
				return picker(lb.Random{}.New(eps))
			}),
		},
		{
			Workload: WeightedRR, ID: "lb", Library: lib, Module: mod, Lb: true,
			Settings: "WeightedRoundRobin{} (precomputed nginx period, striped)",
			NewSeq: lbSeq(func(eps []lb.Endpoint) (lb.Picker, error) {
				return picker(lb.WeightedRoundRobin{}.New(eps))
			}),
		},
		{
			Workload: WeightedRandom, ID: "lb", Library: lib, Module: mod, Lb: true,
			Settings: "WeightedRandom{} (alias table)",
			NewSeq: lbSeq(func(eps []lb.Endpoint) (lb.Picker, error) {
				return picker(lb.WeightedRandom{}.New(eps))
			}),
		},
		{
			Workload: Hash, ID: "lb-ring", Kind: "ring", Library: lib, Module: mod, Lb: true,
			Settings: "Ring{}: 1024 replicas a backend up to 256, then about 1.5M points in all, xxhash64",
			NewKeyed: lbKeyed(func(eps []lb.Endpoint) (lb.Picker, error) {
				return picker(LbRing.New(eps))
			}),
		},
		{
			Workload: Hash, ID: "lb-ring-crc32", Kind: "ring", Library: lib, Module: mod, Lb: true,
			Settings: "Ring{Hash: CRC32}: 1024 replicas, CRC-32",
			Limit: func(n int) error {
				if n*1024 > lb.MaxRingPoints {
					return fmt.Errorf("not run: %d × 1024 replicas is more than lb.MaxRingPoints (only the default Ring scales)", n)
				}
				return nil
			},
			NewKeyed: lbKeyed(func(eps []lb.Endpoint) (lb.Picker, error) {
				return picker(LbRingCRC32.New(eps))
			}),
		},
		{
			Workload: Hash, ID: "lb-ring-groupcache", Kind: "ring", Library: lib, Module: mod, Lb: true,
			Settings: "Ring{Compat: CompatGroupcache}: groupcache's ring, 50 replicas, CRC-32 (same placement as groupcache-r50)",
			NewKeyed: lbKeyed(func(eps []lb.Endpoint) (lb.Picker, error) {
				return picker(LbRingGroupcache.New(eps))
			}),
		},
		{
			Workload: Hash, ID: "lb-maglev", Kind: "maglev", Library: lib, Module: mod, Lb: true,
			Settings: "Maglev{}: 65537 slots up to 256 backends, 2097143 past (16-bit slots), xxhash64",
			NewKeyed: lbKeyed(func(eps []lb.Endpoint) (lb.Picker, error) {
				return picker(LbMaglev.New(eps))
			}),
		},
		{
			Workload: Hash, ID: "lb-anchor", Kind: "jump", Library: lib, Module: mod, Lb: true,
			Settings: "&Anchor{}: AnchorHash over a constant-time jump, one bucket per backend, xxhash64; fresh history per set",
			NewKeyed: lbKeyed(func(eps []lb.Endpoint) (lb.Picker, error) {
				return picker(NewLbAnchor().New(eps))
			}),
			Successive: func() func([]string) (KeyPicker, error) {
				a := NewLbAnchor()
				return lbKeyed(func(eps []lb.Endpoint) (lb.Picker, error) { return picker(a.New(eps)) })
			},
		},
	}
}

// LbMemoryRows are the lb hash rows whose tables the report sizes.
var LbMemoryRows = []string{"lb-ring", "lb-maglev", "lb-anchor"}

// LbMemory returns the bytes the picker of lb hash row id holds over n
// backends (its MemoryBytes).
func LbMemory(id string, n int) (int, error) {
	eps := Endpoints(Names(n), nil)
	switch id {
	case "lb-ring":
		return memoryOf(LbRing.New(eps))
	case "lb-maglev":
		return memoryOf(LbMaglev.New(eps))
	case "lb-anchor":
		return memoryOf(NewLbAnchor().New(eps))
	}
	return 0, fmt.Errorf("no memory figure for %q", id)
}

func memoryOf[P interface{ MemoryBytes() int }](p P, err error) (int, error) {
	if err != nil {
		return 0, err
	}
	return p.MemoryBytes(), nil
}
