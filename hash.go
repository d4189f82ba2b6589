package lb

import (
	"hash/crc32"
	"unsafe"

	"github.com/cespare/xxhash/v2"
)

// HashFunc maps a key to a 64-bit position. It must be deterministic across
// processes and releases (every client must agree on placement), must not
// retain or modify its argument, and should not allocate.
type HashFunc func(key string) uint64

// XXHash is the default HashFunc: xxhash64 (XXH64, seed 0) of the key's bytes.
func XXHash(key string) uint64 { return xxhash.Sum64String(key) }

// CRC32 is the IEEE CRC-32 of the key's bytes. Its values are below 2^32.
// Ring{Hash: CRC32} is lb's ring with CRC-32 positions: it does not place
// keys as groupcache, stathat or nginx do (they name their points
// differently and have their own lookup rules), so it is no migration
// path; for that use Ring.Compat, which reproduces those rings. CRC-32
// also balances a ring markedly worse than XXHash: it is linear, and the
// names of one backend's replicas differ only in their last digits, so
// their points are correlated (the busiest of 10 or 100 backends gets
// about 1.35 times the mean, against 1.07 with XXHash).
func CRC32(key string) uint64 { return uint64(crc32.ChecksumIEEE(stringBytes(key))) }

// stringBytes views s as a byte slice without copying. The slice must not
// be modified.
func stringBytes(s string) []byte {
	return unsafe.Slice(unsafe.StringData(s), len(s))
}

// bytesString views b as a string without copying. b must not be modified
// while the string is in use.
func bytesString(b []byte) string {
	return unsafe.String(unsafe.SliceData(b), len(b))
}
