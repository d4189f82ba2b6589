package lb

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Empty keys spread in proportion to the ring's shares on the compact
// table too.
func TestRingScaledEmptyKeyIsRandom(t *testing.T) {
	t.Parallel()
	eps := benchEndpoints(300, false)
	eps[0].Weight = 100 // 399 units: a third of the ring
	p, err := Ring{}.New(eps)
	require.NoError(t, err)
	heavy := 0
	const n = 60000
	for i := 0; i < n; i++ {
		b, _ := p.Pick("")
		if b.Addr() == eps[0].Addr {
			heavy++
		}
	}
	assert.InDelta(t, 100.0/399, float64(heavy)/n, 0.02)
}
