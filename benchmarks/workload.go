// Package benchmarks runs the same work through lb and through the peer
// libraries users pick today, so that every performance claim of lb is a
// ratio measured in the same run on the same machine.
//
// Each peer has one file here (adapters) and one _test.go file (its speed
// benchmarks, written as direct calls on the peer's own types). quality.go
// measures balance, key movement and weighted shares over 1,000,000 keys,
// and cmd/benchmd runs both and writes BENCHMARKS.md at the repository
// root (make bench).
package benchmarks

import (
	"fmt"
	"math/rand/v2"
)

// Sizes are the backend counts every speed benchmark runs at (each row
// where its library can take that many).
var Sizes = []int{10, 100, 1000, 10000}

// QualitySizes are the backend counts the quality report runs at.
var QualitySizes = []int{10, 100, 1000}

// KeyPool is the number of keys a speed benchmark cycles through: a power
// of two, so that the key of iteration i is keys[i&(KeyPool-1)]. It is
// large enough that tables bigger than the caches pay for their misses,
// as they do under real traffic (a pool of a few thousand keys keeps any
// table in cache).
const KeyPool = 65536

// Name returns the address of backend i: "10.a.b.c:8080", the same form
// as the root module's benchmarks.
func Name(i int) string {
	return fmt.Sprintf("10.%d.%d.%d:8080", i>>16&255, i>>8&255, i&255)
}

// Names returns the addresses of backends 0 to n-1.
func Names(n int) []string {
	s := make([]string, n)
	for i := range s {
		s[i] = Name(i)
	}
	return s
}

// Weight returns the weight of backend i in the weighted workloads:
// 1 + i%5, as in the root module's benchmarks.
func Weight(i int) int { return 1 + i%5 }

// Weights returns the weights of backends 0 to n-1.
func Weights(n int) []int {
	w := make([]int, n)
	for i := range w {
		w[i] = Weight(i)
	}
	return w
}

// Keys returns count keys of 16 to 32 random lower-case letters, the same
// for the same seed.
func Keys(seed uint64, count int) []string {
	r := rand.New(rand.NewPCG(seed, 0x6c62))
	keys := make([]string, count)
	buf := make([]byte, 32)
	for i := range keys {
		b := buf[:16+r.IntN(17)]
		for j := range b {
			b[j] = byte('a' + r.IntN(26))
		}
		keys[i] = string(b)
	}
	return keys
}

// KeyBytes returns the keys as byte slices, for the peers whose lookup
// takes []byte: they get their native input, so no conversion is measured.
func KeyBytes(keys []string) [][]byte {
	bs := make([][]byte, len(keys))
	for i, k := range keys {
		bs[i] = []byte(k)
	}
	return bs
}
