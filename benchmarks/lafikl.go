package benchmarks

import (
	"fmt"

	"github.com/lafikl/consistent"
)

// NewLafikl returns lafikl's ring over names: 10 replicas per host (a
// constant of the library), BLAKE2b.
func NewLafikl(names []string) *consistent.Consistent {
	c := consistent.New()
	for _, name := range names {
		c.Add(name)
	}
	return c
}

type lafiklPicker struct{ c *consistent.Consistent }

func (l lafiklPicker) Get(key string) string {
	v, _ := l.c.Get(key)
	return v
}

func lafiklImpls() []Impl {
	return []Impl{{
		Workload: Hash, Kind: "ring", ID: "lafikl",
		Library: "github.com/lafikl/consistent", Module: "github.com/lafikl/consistent",
		Settings: "New(): 10 replicas (fixed), BLAKE2b, RWMutex per lookup; Get (no load bound)",
		Limit: func(n int) error {
			if n > 1001 {
				return fmt.Errorf("not run: Add re-sorts the ring per member: %d members take about 20 s to build", n)
			}
			return nil
		},
		NewKeyed: func(names []string) (KeyPicker, error) { return lafiklPicker{NewLafikl(names)}, nil },
	}}
}
