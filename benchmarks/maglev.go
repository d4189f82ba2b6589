package benchmarks

import (
	"github.com/cespare/xxhash/v2"
	maglev "github.com/dgryski/go-maglev"
)

// GoMaglev is dgryski/go-maglev's table with the names of its backends:
// Lookup takes a 64-bit key hash and returns a backend index.
type GoMaglev struct {
	t     *maglev.Table
	names []string
}

// NewGoMaglev returns go-maglev's table over names, with maglev.SmallM
// (65537) slots.
func NewGoMaglev(names []string) *GoMaglev {
	return &GoMaglev{t: maglev.New(names, maglev.SmallM), names: names}
}

// Get hashes key with xxhash64 (the library takes a hash, not a key) and
// returns its backend.
func (g *GoMaglev) Get(key string) string {
	return g.names[g.t.Lookup(xxhash.Sum64String(key))]
}

func maglevImpls() []Impl {
	return []Impl{{
		Workload: Hash, ID: "go-maglev", Kind: "maglev",
		Library: "github.com/dgryski/go-maglev", Module: "github.com/dgryski/go-maglev",
		Settings: "New(names, SmallM): 65537 slots; keys hashed with xxhash64",
		NewKeyed: func(names []string) (KeyPicker, error) { return NewGoMaglev(names), nil },
	}}
}
