package benchmarks

import (
	"fmt"

	"github.com/golang/groupcache/consistenthash"
)

// GroupcacheReplicas are the replica counts of the groupcache rows: 50 is
// what groupcache's own HTTPPool uses (consistenthash.New has no default),
// 1024 is lb's default, for a comparison at the same number of points.
var GroupcacheReplicas = []int{50, 1024}

// NewGroupcache returns groupcache's ring over names with the given
// replicas and its default hash (CRC-32).
func NewGroupcache(names []string, replicas int) *consistenthash.Map {
	m := consistenthash.New(replicas, nil)
	m.Add(names...)
	return m
}

func groupcacheImpls() []Impl {
	var out []Impl
	for _, r := range GroupcacheReplicas {
		r := r
		settings := "New(50, nil): 50 replicas (groupcache HTTPPool's), CRC-32"
		if r != 50 {
			settings = "New(1024, nil): 1024 replicas (as lb), CRC-32"
		}
		out = append(out, Impl{
			Workload: Hash, Kind: "ring", ID: groupcacheID(r),
			Library: "github.com/golang/groupcache/consistenthash", Module: "github.com/golang/groupcache",
			Settings: settings,
			Limit: func(n int) error {
				if r > 50 && n > 1001 {
					return fmt.Errorf("not run: %d members × %d replicas is %d points in a map and a sorted []int (GBs)", n, r, n*r)
				}
				return nil
			},
			NewKeyed: func(names []string) (KeyPicker, error) { return NewGroupcache(names, r), nil },
		})
	}
	return out
}

func groupcacheID(replicas int) string { return "groupcache-r" + itoa(replicas) }
