// Package crcforce makes strings with a chosen CRC-32, for tests of rings
// that place keys by CRC-32 (the keys exactly on a point, and either side
// of it, are where the ring's rules show).
package crcforce

import "hash/crc32"

// Force appends 4 bytes to prefix so that the IEEE CRC-32 of the result is
// want. CRC is affine over GF(2): the bytes come from running the table
// backwards from the wanted register, then forwards from the prefix's.
func Force(prefix []byte, want uint32) []byte {
	tab := crc32.IEEETable
	var rev [256]byte // top byte of an entry -> its index (the top bytes are a permutation)
	for i := range tab {
		rev[tab[i]>>24] = byte(i)
	}
	var idx [4]byte
	r := ^want
	for k := 3; k >= 0; k-- {
		idx[k] = rev[r>>24]
		r = (r ^ tab[idx[k]]) << 8
	}
	reg := ^crc32.ChecksumIEEE(prefix)
	out := append([]byte(nil), prefix...)
	for k := 0; k < 4; k++ {
		out = append(out, byte(reg)^idx[k])
		reg = tab[idx[k]] ^ reg>>8
	}
	return out
}
