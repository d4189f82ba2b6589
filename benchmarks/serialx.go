package benchmarks

import (
	"fmt"

	"github.com/serialx/hashring"
)

// SerialxPoints are the points per backend of the serialx rows: New gives
// each node one point (weight 1); NewWithWeights with weight 1024 gives
// lb's 1024.
var SerialxPoints = []int{1, 1024}

// NewSerialx returns serialx's ring (MD5) over names, with points ring
// points per node.
func NewSerialx(names []string, points int) *hashring.HashRing {
	if points == 1 {
		return hashring.New(names)
	}
	w := make(map[string]int, len(names))
	for _, name := range names {
		w[name] = points
	}
	return hashring.NewWithWeights(w)
}

type serialxPicker struct{ r *hashring.HashRing }

func (s serialxPicker) Get(key string) string {
	v, _ := s.r.GetNode(key)
	return v
}

func serialxImpls() []Impl {
	var out []Impl
	for _, p := range SerialxPoints {
		p := p
		settings := "New(nodes): 1 point per node (weight 1), MD5"
		if p != 1 {
			settings = "NewWithWeights(weight 1024): 1024 points per node (as lb), MD5"
		}
		out = append(out, Impl{
			Workload: Hash, Kind: "ring", ID: "serialx-w" + itoa(p),
			Library: "github.com/serialx/hashring", Module: "github.com/serialx/hashring",
			Settings: settings,
			Limit: func(n int) error {
				if p > 1 && n > 1001 {
					return fmt.Errorf("not run: %d nodes × %d MD5 points takes minutes to build", n, p)
				}
				return nil
			},
			NewKeyed: func(names []string) (KeyPicker, error) { return serialxPicker{NewSerialx(names, p)}, nil },
		})
	}
	return out
}
