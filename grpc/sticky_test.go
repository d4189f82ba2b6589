package lbgrpc_test

import (
	"fmt"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestKeyedCallsStick: with the ring and Maglev, every call with a key goes
// to the same server, whether the key comes from WithHashKey or from the
// requestHashHeader metadata. A key moves only when its server leaves:
// removed by the resolver, or killed; and it comes back with the server.
func TestKeyedCallsStick(t *testing.T) {
	t.Parallel()
	tests := []struct {
		give string
		// stray is how many keys of servers that stay may move when one
		// leaves: none on the ring; Maglev trades a few for its balance.
		stray int
	}{
		{give: "ring", stray: 0},
		{give: "maglev", stray: 3},
	}
	for _, tt := range tests {
		t.Run(tt.give, func(t *testing.T) {
			t.Parallel()
			a, b, c := startServer(t, "a"), startServer(t, "b"), startServer(t, "c")
			// Retryable, as a killed server's first calls fail.
			cl := newClient(t, serviceConfig(fmt.Sprintf(`{"strategy": %q, "requestHashHeader": "X-User"}`, tt.give), retryPolicy),
				endpointsOf(a, b, c))

			const keys = 60
			place := func(header string) map[string]string {
				got := make(map[string]string, keys)
				for i := 0; i < keys; i++ {
					k := "user-" + strconv.Itoa(i)
					got[k] = cl.keyed(k, header)
				}
				return got
			}
			home := place("")
			assert.Equal(t, home, place(""), "a key's calls stay on one server")
			assert.Equal(t, home, place("x-user"), "the header gives the key's server too")
			for _, s := range []string{"a", "b", "c"} {
				assert.Contains(t, values(home), s, "keys spread over every server")
			}

			// The resolver drops b: b's keys move, the others stay. (The
			// manual resolver's update returns once the policy has it.)
			cl.update(endpointsOf(a, c))
			require.Len(t, cl.stats(), 2)
			assertMoved(t, home, place(""), "b", tt.stray)

			// b comes back: every key is home again (its keys wait for its
			// new connection rather than go elsewhere).
			cl.update(endpointsOf(a, b, c))
			require.Len(t, cl.stats(), 3)
			assert.Equal(t, home, place(""), "keys go back to b")

			// c is killed (the resolver still lists it): its keys move
			// once its SubConn has failed to reconnect; the others stay.
			c.stop()
			assertMoved(t, home, place(""), "c", tt.stray)
			assert.True(t, cl.stats()["c"].Unhealthy, "c is marked down in lb")
		})
	}
}

// assertMoved checks that every key placed on gone (in home) has moved
// (in now), and that at most stray keys of the other servers have.
func assertMoved(t *testing.T, home, now map[string]string, gone string, stray int) {
	t.Helper()
	strays := 0
	for k, s := range home {
		switch {
		case s == gone:
			assert.NotEqual(t, gone, now[k], "key %s left %s", k, gone)
		case now[k] != s:
			strays++
		}
	}
	assert.LessOrEqual(t, strays, stray, "keys that moved between servers that stayed")
}

func values(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}
