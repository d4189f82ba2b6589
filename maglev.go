package lb

import (
	"fmt"
	"math/bits"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/cespare/xxhash/v2"
)

// Maglev is Google's Maglev consistent hashing (Eisenbud et al., NSDI
// 2016): a lookup table of TableSize slots, filled by letting each backend
// claim slots in the order of its own permutation of the table, so that
// every backend holds an almost equal share of slots (in proportion to its
// weight). A lookup is one hash and one table read (a slot is a 16-bit
// backend index when there are at most 65,536 backends). When a backend
// is added or removed, most keys of the others stay where they were, but
// not all: Maglev trades some movement between other backends for its
// balance, and the fewer slots per backend, the more it moves. Adding a
// 101st backend to 100 moves about 1.6 times the ideal 1/101 of the keys
// with the default table, 1.15 times with 655,373 slots; a 1,001st to
// 1,000, 6.4 times with 65,537 slots and 2.3 times with the default past
// 256 backends. Use Ring where keys must never move between backends that
// stay.
//
// The default table size follows the number of backends, in two steps
// only (a new size moves nearly every key, so it must not change with
// every backend): DefaultMaglevTableSize (65,537) slots up to
// MaglevSmallBackends (256) backends, as in every earlier release, and
// MaglevLargeTableSize (2,097,143: 4 MiB) past it. A set crossing 256
// backends moves most keys once.
//
// Each backend is placed by its hash name (Backend.HashName: its HashKey,
// or its address). Its permutation comes from XXH64 of the name: offset is
// the low 32 bits modulo TableSize, skip the high 32 bits modulo
// (TableSize-1), plus 1. Backends take their turns in order of hash name,
// so the table does not depend on the order they are given in. A key's slot
// is (XXH64(key) × TableSize) >> 64. These rules are part of the
// compatibility promise: a golden test pins placements.
//
// The zero value is ready to use.
type Maglev struct {
	// TableSize is the number of slots: a prime, at least the number of
	// backends; 0 means the default (see above). The paper advises at least
	// 100 slots per backend for balance within 1%.
	TableSize int
	// Rand, when not nil, draws the random slots of empty keys instead of
	// the runtime's generator (see Random.Rand).
	Rand rand.Source
}

// DefaultMaglevTableSize is the default table up to MaglevSmallBackends
// backends: 65,537 slots (128 KiB: a slot is a 16-bit backend index).
const DefaultMaglevTableSize = 65537

// MaglevSmallBackends is the most backends the default table of
// DefaultMaglevTableSize slots serves; past it the default is
// MaglevLargeTableSize.
const MaglevSmallBackends = 256

// MaglevLargeTableSize is the default table past MaglevSmallBackends
// backends: the largest prime below 2^21 (4 MiB of 16-bit slots).
const MaglevLargeTableSize = 2097143

// defaultMaglevSize is the default table size for n backends. It changes
// once, at MaglevSmallBackends: a new table size moves nearly every key,
// so the table must not grow with every backend.
func defaultMaglevSize(n int) int {
	if n <= MaglevSmallBackends {
		return DefaultMaglevTableSize
	}
	if n > MaglevLargeTableSize {
		return nextPrime(n) // more backends than slots: one slot each, at least
	}
	return MaglevLargeTableSize
}

// nextPrime returns the smallest prime at or above n.
func nextPrime(n int) int {
	for !isPrime(uint64(n)) {
		n++
	}
	return n
}

// MaxMaglevTableSize bounds TableSize (128 MiB of table).
const MaxMaglevTableSize = 1 << 24

// MaglevPicker is the Picker built by Maglev. It also implements
// PreferenceLister.
type MaglevPicker struct {
	backends []*Backend
	s16      []uint16 // backend index per slot, when there are at most 65,536 backends
	s32      []uint32 // otherwise
	m        uint64
	rnd      randSource
}

// Build implements Builder.
func (g Maglev) Build(backends []*Backend) (Picker, error) { return g.build(backends) }

// New validates eps and builds a Maglev table over fresh backends, for use
// without a Balancer.
func (g Maglev) New(eps []Endpoint) (*MaglevPicker, error) {
	bs, err := NewBackends(eps)
	if err != nil {
		return nil, err
	}
	return g.build(bs)
}

func (g Maglev) build(backends []*Backend) (*MaglevPicker, error) {
	if err := checkBackends(backends); err != nil {
		return nil, err
	}
	if err := checkHashNames(backends); err != nil {
		return nil, err
	}
	m := g.TableSize
	if m == 0 {
		m = defaultMaglevSize(len(backends))
	}
	if m < 2 || m > MaxMaglevTableSize || !isPrime(uint64(m)) {
		return nil, fmt.Errorf("%w: Maglev.TableSize is %d; it must be 0 (the default: %d slots up to %d backends, %d beyond) or a prime from 2 to %d",
			ErrInvalidConfig, g.TableSize, DefaultMaglevTableSize, MaglevSmallBackends, MaglevLargeTableSize, MaxMaglevTableSize)
	}
	if m < len(backends) {
		return nil, fmt.Errorf("%w: Maglev.TableSize %d is smaller than the number of backends (%d)", ErrInvalidConfig, m, len(backends))
	}

	// Turn order: by hash name, independent of the input order.
	order := make([]int, len(backends))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return strings.Compare(backends[a].HashName(), backends[b].HashName()) })

	mm := uint64(m)
	type perm struct{ next, skip uint64 }
	perms := make([]perm, len(backends))
	var maxW int64
	for i, b := range backends {
		h := xxhash.Sum64String(b.HashName())
		perms[i] = perm{next: uint64(uint32(h)) % mm, skip: (h>>32)%(mm-1) + 1}
		maxW = max(maxW, int64(b.Weight()))
	}
	credit := make([]int64, len(backends))
	const empty = ^uint32(0)
	slots := make([]uint32, m)
	for i := range slots {
		slots[i] = empty
	}
	filled := 0
	for filled < m {
		for _, i := range order {
			// Weights: every backend earns its weight in credit per round and
			// takes one turn per maxW of credit, so the heaviest takes a turn
			// every round and the others in proportion.
			credit[i] += int64(backends[i].Weight())
			if credit[i] < maxW {
				continue
			}
			credit[i] -= maxW
			pm := &perms[i]
			for slots[pm.next] != empty {
				pm.next += pm.skip
				if pm.next >= mm {
					pm.next -= mm
				}
			}
			slots[pm.next] = uint32(i)
			pm.next += pm.skip
			if pm.next >= mm {
				pm.next -= mm
			}
			if filled++; filled == m {
				break
			}
		}
	}
	p := &MaglevPicker{backends: backends, m: mm, rnd: newRandSource(g.Rand)}
	if len(backends) <= 1<<16 {
		p.s16 = make([]uint16, m)
		for s, i := range slots {
			p.s16[s] = uint16(i)
		}
	} else {
		p.s32 = slots
	}
	return p, nil
}

func (p *MaglevPicker) slot(key string) uint64 {
	if key == "" {
		return p.rnd.uint64n(p.m)
	}
	s, _ := bits.Mul64(xxhash.Sum64String(key), p.m)
	return s
}

// Pick returns the backend of the key's slot. The empty key picks at
// random, in proportion to weight.
func (p *MaglevPicker) Pick(key string) (*Backend, error) {
	s := p.slot(key)
	if p.s16 != nil {
		return p.backends[p.s16[s]], nil
	}
	return p.backends[p.s32[s]], nil
}

// owner returns the backend index of slot s.
func (p *MaglevPicker) owner(s int) uint32 {
	if p.s16 != nil {
		return uint32(p.s16[s])
	}
	return p.s32[s]
}

// AppendPreferences appends to dst up to n distinct backends in the key's
// order of preference: the backends of the table's slots from the key's
// slot on, skipping those already listed. The first is Pick's answer. The
// table's slots are filled in a well-mixed order, so the second choice of
// the keys of any one backend spreads over the others about evenly (the
// tests measure it). It allocates nothing when dst has room.
func (p *MaglevPicker) AppendPreferences(dst []*Backend, key string, n int) []*Backend {
	n = min(n, len(p.backends))
	if n <= 0 {
		return dst
	}
	s := int(p.slot(key))
	m := int(p.m)
	return appendDistinct(dst, p.backends, n, m, func(step int) uint32 {
		i := s + step
		if i >= m {
			i -= m
		}
		return p.owner(i)
	})
}

// Backends returns the backends the picker was built over. The slice must
// not be modified.
func (p *MaglevPicker) Backends() []*Backend { return p.backends }

// TableSize returns the number of slots.
func (p *MaglevPicker) TableSize() int { return int(p.m) }

// MemoryBytes returns the memory the table holds, in bytes.
func (p *MaglevPicker) MemoryBytes() int { return len(p.s16)*2 + len(p.s32)*4 + len(p.backends)*8 }

// isPrime tests n by trial division (n is at most MaxMaglevTableSize).
func isPrime(n uint64) bool {
	if n < 2 {
		return false
	}
	for d := uint64(2); d*d <= n; d++ {
		if n%d == 0 {
			return false
		}
	}
	return true
}
