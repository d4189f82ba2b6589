package benchmarks

import (
	"fmt"

	"github.com/stathat/consistent"
)

// StathatReplicas are the replica counts of the stathat rows: its default
// (20) and lb's (1024).
var StathatReplicas = []int{20, 1024}

// NewStathat returns stathat's ring over names with the given replicas
// (NumberOfReplicas) and its hash (CRC-32).
func NewStathat(names []string, replicas int) *consistent.Consistent {
	c := consistent.New()
	c.NumberOfReplicas = replicas
	c.Set(names)
	return c
}

type stathatPicker struct{ c *consistent.Consistent }

func (s stathatPicker) Get(key string) string {
	v, _ := s.c.Get(key)
	return v
}

func stathatImpls() []Impl {
	var out []Impl
	for _, r := range StathatReplicas {
		r := r
		settings := "New(): 20 replicas (default), CRC-32, RWMutex per lookup"
		if r != 20 {
			settings = "NumberOfReplicas = 1024 (as lb), CRC-32, RWMutex per lookup"
		}
		out = append(out, Impl{
			Workload: Hash, Kind: "ring", ID: "stathat-r" + itoa(r),
			Library: "github.com/stathat/consistent", Module: "github.com/stathat/consistent",
			Settings: settings,
			Limit:    stathatLimit(r),
			NewKeyed: func(names []string) (KeyPicker, error) { return stathatPicker{NewStathat(names, r)}, nil },
		})
	}
	return out
}

// stathatLimit keeps the 1024-replica row to at most 200 members and the
// default row to at most 1,001: stathat re-sorts the whole ring for every
// member it adds, so building 1,000 members × 1024 replicas, or 10,000 ×
// 20, takes minutes.
func stathatLimit(replicas int) func(n int) error {
	return func(n int) error {
		if (replicas > 20 && n > 200) || n > 1001 {
			return fmt.Errorf("not run: building %d members × %d replicas re-sorts the ring per member (minutes)", n, replicas)
		}
		return nil
	}
}
