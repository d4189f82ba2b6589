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
				res, err := run(context.Background(), config{by: by, strategy: strategy, users: 40, requests: 3, backends: 4}, &out)
				require.NoError(t, err)
				assert.True(t, res.sticky, out.String())
				assert.Positive(t, res.moved, "the removed backend held sessions")
				assert.Zero(t, res.strayMoves, "only the removed backend's sessions move")
				assert.Equal(t, res.moved, res.returned, "they return when it does")
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
