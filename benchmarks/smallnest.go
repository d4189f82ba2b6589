package benchmarks

import "github.com/smallnest/weighted"

// NewSmallnestSW returns smallnest/weighted's smooth weighted round robin
// (nginx's algorithm) over names with weights. Its Next is not safe for
// concurrent use.
func NewSmallnestSW(names []string, weights []int) *weighted.SW {
	w := &weighted.SW{}
	for i, name := range names {
		w.Add(name, weights[i])
	}
	return w
}

// NewSmallnestRandW returns smallnest/weighted's weighted random over names
// with weights. Its Next is not safe for concurrent use. Its generator is
// seeded from the clock: the quality report's shares for it vary by run.
func NewSmallnestRandW(names []string, weights []int) *weighted.RandW {
	w := weighted.NewRandW()
	for i, name := range names {
		w.Add(name, weights[i])
	}
	return w
}

type smallnestPicker struct{ w weighted.W }

func (s smallnestPicker) Next() string {
	v, _ := s.w.Next().(string)
	return v
}

func smallnestImpls() []Impl {
	const lib, mod = "github.com/smallnest/weighted", "github.com/smallnest/weighted"
	return []Impl{
		{
			Workload: WeightedRR, ID: "smallnest-SW", Library: lib, Module: mod, Unsafe: true,
			Settings: "SW (nginx smooth weighted, O(N) per pick)",
			NewSeq: func(names []string, weights []int) (SeqPicker, error) {
				return smallnestPicker{NewSmallnestSW(names, weights)}, nil
			},
		},
		{
			Workload: WeightedRandom, ID: "smallnest-RandW", Library: lib, Module: mod, Unsafe: true,
			Settings: "RandW (linear scan of cumulative weights)",
			NewSeq: func(names []string, weights []int) (SeqPicker, error) {
				return smallnestPicker{NewSmallnestRandW(names, weights)}, nil
			},
		},
	}
}
