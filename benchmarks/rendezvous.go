package benchmarks

import (
	"fmt"

	"github.com/cespare/xxhash/v2"
	rendezvous "github.com/dgryski/go-rendezvous"
)

// NewRendezvous returns rendezvous (highest random weight) hashing over
// names with xxhash64: O(N) per lookup.
func NewRendezvous(names []string) *rendezvous.Rendezvous {
	return rendezvous.New(names, xxhash.Sum64String)
}

type rendezvousPicker struct{ r *rendezvous.Rendezvous }

func (r rendezvousPicker) Get(key string) string { return r.r.Lookup(key) }

func rendezvousImpls() []Impl {
	return []Impl{{
		Workload: Hash, ID: "go-rendezvous", Kind: "rendezvous",
		Library: "github.com/dgryski/go-rendezvous", Module: "github.com/dgryski/go-rendezvous",
		Settings: "New(names, xxhash64): one hash per key, O(N) scan",
		NewKeyed: func(names []string) (KeyPicker, error) { return rendezvousPicker{NewRendezvous(names)}, nil },
		QualityLimit: func(n int) error {
			if n > 100 {
				return fmt.Errorf("not run: a lookup scores every backend (O(N)), %d keys × 3 sets at N=%d take minutes", KeysFor(n, QualityKeys), n)
			}
			return nil
		},
	}}
}
