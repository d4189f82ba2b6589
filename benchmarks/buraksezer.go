package benchmarks

import (
	"fmt"
	"math"

	"github.com/buraksezer/consistent"
	"github.com/cespare/xxhash/v2"
)

// BuraksezerPartitions are the partition counts of the buraksezer rows:
// its default (271, which cannot hold more than 216 members at its default
// load 1.25: New panics) and 65537, the size of lb.Maglev's table.
var BuraksezerPartitions = []int{271, 65537}

// BuraksezerMember is a ring member: a backend address.
type BuraksezerMember string

// String implements consistent.Member.
func (m BuraksezerMember) String() string { return string(m) }

// BuraksezerHasher is xxhash64, the hasher of buraksezer/consistent's
// README (the library has no default and panics without one).
type BuraksezerHasher struct{}

// Sum64 implements consistent.Hasher.
func (BuraksezerHasher) Sum64(b []byte) uint64 { return xxhash.Sum64(b) }

// BuraksezerConfig returns the library's default configuration with the
// given partition count: replication factor 20, load 1.25, xxhash64.
func BuraksezerConfig(partitions int) consistent.Config {
	return consistent.Config{
		PartitionCount:    partitions,
		ReplicationFactor: consistent.DefaultReplicationFactor,
		Load:              consistent.DefaultLoad,
		Hasher:            BuraksezerHasher{},
	}
}

// buraksezerLimit reports whether partitions can be spread over n members:
// each member may hold at most ceil(floor(partitions/n) × 1.25) of them.
func buraksezerLimit(partitions int) func(n int) error {
	return func(n int) error {
		if n > 1001 {
			return fmt.Errorf("not run: New distributes %d partitions over %d members in minutes", partitions, n)
		}
		capacity := int(math.Ceil(float64(partitions/n)*consistent.DefaultLoad)) * n
		if capacity < partitions {
			return fmt.Errorf("New panics: %d partitions do not fit %d members at load %.2f", partitions, n, consistent.DefaultLoad)
		}
		return nil
	}
}

// NewBuraksezer returns buraksezer's ring over names with the given
// partition count; an error where the library panics.
func NewBuraksezer(names []string, partitions int) (c *consistent.Consistent, err error) {
	if err := buraksezerLimit(partitions)(len(names)); err != nil {
		return nil, err
	}
	defer recoverError(&err)
	members := make([]consistent.Member, len(names))
	for i, name := range names {
		members[i] = BuraksezerMember(name)
	}
	return consistent.New(members, BuraksezerConfig(partitions)), nil
}

type buraksezerPicker struct{ c *consistent.Consistent }

func (b buraksezerPicker) Get(key string) string {
	m := b.c.LocateKey([]byte(key))
	if m == nil {
		return ""
	}
	return m.String()
}

func buraksezerImpls() []Impl {
	var out []Impl
	for _, p := range BuraksezerPartitions {
		p := p
		settings := "defaults: 271 partitions, replication 20, load 1.25; xxhash64 (README's hasher)"
		if p != 271 {
			settings = "65537 partitions (as lb.Maglev's slots), replication 20, load 1.25; xxhash64"
		}
		out = append(out, Impl{
			Workload: Hash, Kind: "ring", ID: "buraksezer-p" + itoa(p),
			Library: "github.com/buraksezer/consistent", Module: "github.com/buraksezer/consistent",
			Settings: settings,
			Limit:    buraksezerLimit(p),
			NewKeyed: func(names []string) (KeyPicker, error) {
				c, err := NewBuraksezer(names, p)
				if err != nil {
					return nil, err
				}
				return buraksezerPicker{c}, nil
			},
		})
	}
	return out
}
