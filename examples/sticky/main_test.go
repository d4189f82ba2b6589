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

func TestSticky(t *testing.T) {
	for _, by := range []string{"cookie", "header"} {
		for _, strategy := range []string{"ring", "maglev"} {
			t.Run(by+"/"+strategy, func(t *testing.T) {
				var out strings.Builder
				cfg := config{by: by, strategy: strategy, users: 40, requests: 3, backends: 4}
				res, err := run(context.Background(), cfg, &out)
				require.NoError(t, err)
				assert.True(t, res.sticky, out.String())
				assert.Positive(t, res.moved, "the removed backend held sessions")
				if strategy == "ring" {
					assert.Zero(t, res.strayMoves, "on the ring only the removed backend's sessions move")
				} else {
					// Maglev's table is refilled, so a few other keys move
					// too: about 0.15% of keys with 4 backends, so more
					// than 4 of 40 means its lookup table is broken.
					assert.LessOrEqual(t, res.strayMoves, cfg.users/10, "Maglev moves few sessions of backends that stay")
				}
				assert.Equal(t, res.moved, res.returned, "they return when it does")
				assert.True(t, res.restored, "every session is back on its first backend")
				assert.Contains(t, out.String(), "each user on one backend: true")
			})
		}
	}
}

func TestStickyBadFlags(t *testing.T) {
	for _, cfg := range []config{
		{by: "cookie", strategy: "round-robin", users: 1, requests: 1, backends: 2},
		{by: "query", strategy: "ring", users: 1, requests: 1, backends: 2},
		{by: "cookie", strategy: "ring", users: 1, requests: 1, backends: 1},
	} {
		_, err := run(context.Background(), cfg, io.Discard)
		assert.Error(t, err)
	}
}
