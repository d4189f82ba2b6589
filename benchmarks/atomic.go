package benchmarks

import "sync/atomic"

// AtomicRR is the floor a round robin is held to: one shared atomic
// counter, taken modulo the number of backends. It is not a library; it is
// what a hand-written round robin costs.
type AtomicRR struct {
	names []string
	n     uint64
	c     atomic.Uint64
}

// NewAtomicRR returns a bare atomic round robin over names.
func NewAtomicRR(names []string) *AtomicRR {
	return &AtomicRR{names: names, n: uint64(len(names))}
}

// Next returns the next backend in turn.
func (a *AtomicRR) Next() string { return a.names[a.c.Add(1)%a.n] }

func atomicImpls() []Impl {
	return []Impl{{
		Workload: RoundRobin, ID: "atomic", Library: "sync/atomic", Module: "std", Baseline: true,
		Settings: "bare baseline: names[counter.Add(1) % N]",
		NewSeq: func(names []string, _ []int) (SeqPicker, error) {
			return NewAtomicRR(names), nil
		},
	}}
}
