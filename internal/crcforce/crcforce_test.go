package crcforce

import (
	"hash/crc32"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestForce(t *testing.T) {
	t.Parallel()
	for _, want := range []uint32{0, 1, 0xdeadbeef, ^uint32(0)} {
		for _, prefix := range []string{"", "k", "prefix-of-some-length"} {
			got := Force([]byte(prefix), want)
			assert.Equal(t, want, crc32.ChecksumIEEE(got), "%q", prefix)
			assert.Equal(t, prefix, string(got[:len(prefix)]))
		}
	}
}
