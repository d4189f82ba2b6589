package benchmarks

import (
	"github.com/cespare/xxhash/v2"
	jump "github.com/dgryski/go-jump"
)

// Jump is jump consistent hashing (dgryski/go-jump) over a list of names:
// a key's bucket is jump.Hash(xxhash64(key), N). Backends can only be added
// or removed at the end of the list.
type Jump struct{ names []string }

// NewJump returns jump hashing over names.
func NewJump(names []string) *Jump { return &Jump{names: names} }

// Get returns the key's backend.
func (j *Jump) Get(key string) string {
	return j.names[jump.Hash(xxhash.Sum64String(key), len(j.names))]
}

func jumpImpls() []Impl {
	return []Impl{{
		Workload: Hash, ID: "go-jump", Kind: "jump",
		Library: "github.com/dgryski/go-jump", Module: "github.com/dgryski/go-jump",
		Settings: "Hash(xxhash64(key), N); removal only at the end of the list",
		NewKeyed: func(names []string) (KeyPicker, error) { return NewJump(names), nil },
	}}
}
