package compat

import (
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"sort"
	"strconv"
	"testing"

	"github.com/go-lb/lb"
	"github.com/go-lb/lb/internal/crcforce"
	"github.com/stretchr/testify/require"
)

// keys returns n seeded random keys of 8 to 40 printable bytes.
func keys(n int, seed uint64) []string {
	r := rand.New(rand.NewPCG(seed, 99))
	out := make([]string, n)
	for i := range out {
		b := make([]byte, 8+r.IntN(33))
		for j := range b {
			b[j] = byte('!' + r.IntN(94))
		}
		out[i] = string(b)
	}
	return out
}

// peerURLs are groupcache-style peer names.
func peerURLs(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("http://10.%d.%d.%d:8080", i>>16&255, i>>8&255, i&255)
	}
	return out
}

// endpoints gives each name an endpoint whose HashKey is the name (the
// address is made up: only the name places).
func endpoints(names []string) []lb.Endpoint {
	eps := make([]lb.Endpoint, len(names))
	for i, n := range names {
		eps[i] = lb.Endpoint{Addr: fmt.Sprintf("backend-%d:80", i), HashKey: n}
	}
	return eps
}

// boundaryKeys are keys whose CRC-32 is exactly a point of the ring, or one
// less or more: the keys where "at or after" and "after" differ, and where
// a ring's ends and ties are decided.
func boundaryKeys(names []string, replicas, count int) []string {
	var points []uint32
	for _, n := range names {
		for i := 0; i < replicas; i++ {
			points = append(points, crc32.ChecksumIEEE([]byte(strconv.Itoa(i)+n)))
		}
	}
	sort.Slice(points, func(i, j int) bool { return points[i] < points[j] })
	step := max(len(points)/count, 1)
	var out []string
	for i := 0; i < len(points); i += step {
		for _, d := range []uint32{0, 1, ^uint32(0)} {
			out = append(out, string(crcforce.Force([]byte("key-"), points[i]+d)))
		}
	}
	// both ends of the ring
	for _, v := range []uint32{0, 1, ^uint32(0), points[0], points[len(points)-1]} {
		out = append(out, string(crcforce.Force([]byte("end-"), v)))
	}
	return out
}

// agreement counts the keys on which lb's picker and the other
// implementation name the same node.
func agreement(t *testing.T, p lb.Picker, other func(string) string, keys []string) int {
	t.Helper()
	agree := 0
	for _, k := range keys {
		b, err := p.Pick(k)
		require.NoError(t, err)
		if b.HashName() == other(k) {
			agree++
		}
	}
	return agree
}
