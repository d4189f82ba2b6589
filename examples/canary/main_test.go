package main

import (
	"context"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestCanaryRollout(t *testing.T) {
	for _, random := range []bool{false, true} {
		var out strings.Builder
		phases, err := run(context.Background(), config{requests: 1000, random: random}, &out)
		require.NoError(t, err)
		require.Len(t, phases, 3, out.String())
		for _, p := range phases {
			assert.Zero(t, p.failed, p.name)
			assert.Equal(t, 1000, p.v1+p.v2, p.name)
			assert.False(t, p.ejected)
			want := float64(p.canaryWeight) / 100 * 1000
			tolerance := 15.0 // smooth weighted round robin: exact over each period (10 or 30 picks)
			if random {
				tolerance = 60 // weighted random: ~4 standard deviations at 50%
			}
			assert.InDelta(t, want, p.v2, tolerance, "%s (random %v)", p.name, random)
		}
	}
}

func TestCanaryBad(t *testing.T) {
	var out strings.Builder
	phases, err := run(context.Background(), config{requests: 500, bad: true}, &out)
	require.NoError(t, err)
	require.Len(t, phases, 2, out.String())
	assert.Equal(t, "rolled back", phases[1].name)
	for _, p := range phases {
		assert.Zero(t, p.failed, "%s: a failing canary costs retries, not failed requests", p.name)
		assert.Zero(t, p.v2, "no 500 reaches the client")
	}
	assert.True(t, phases[0].ejected)
	assert.EqualValues(t, 3, phases[0].retries, "3 failures, then ejected")
	assert.Zero(t, phases[1].retries)
}

func TestCanaryBadFlags(t *testing.T) {
	_, err := run(context.Background(), config{}, io.Discard)
	assert.Error(t, err)
}
