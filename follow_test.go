package lb

import (
	"context"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A Follower stops when its Balancer is closed, even when the resolver
// has nothing more to say (Static waits for its context): Done closes and
// Err wraps ErrClosed. Follow returns too.
func TestFollowerStopsWhenBalancerCloses(t *testing.T) {
	t.Parallel()
	for _, r := range []Resolver{Static(Addrs("a:1", "b:1")), Static(nil)} {
		bal, err := NewBalancer(RoundRobin{})
		require.NoError(t, err)
		f := StartFollower(context.Background(), r, bal)
		select {
		case <-f.Ready():
		case <-time.After(5 * time.Second):
			t.Fatal("not ready")
		}
		require.NoError(t, bal.Close())
		select {
		case <-f.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("the follower did not stop when its balancer closed")
		}
		assert.ErrorIs(t, f.Err(), ErrClosed)
		assert.ErrorIs(t, f.Stop(), ErrClosed)

		bal2, err := NewBalancer(RoundRobin{})
		require.NoError(t, err)
		done := make(chan error, 1)
		go func() { done <- Follow(context.Background(), r, bal2) }()
		require.Eventually(t, func() bool { _, err := bal2.Pick(""); return err == nil || len(bal2.Backends()) == 0 }, 5*time.Second, time.Millisecond)
		require.NoError(t, bal2.Close())
		select {
		case err := <-done:
			assert.ErrorIs(t, err, ErrClosed)
		case <-time.After(5 * time.Second):
			t.Fatal("Follow did not return when its balancer closed")
		}
	}
	// Following a balancer that is closed already ends at once.
	bal, err := NewBalancer(RoundRobin{})
	require.NoError(t, err)
	require.NoError(t, bal.Close())
	assert.ErrorIs(t, Follow(context.Background(), Static(Addrs("a:1")), bal), ErrClosed)
	assert.ErrorIs(t, Follow(nil, Static(Addrs("a:1")), bal), ErrInvalidConfig) //nolint:staticcheck // a nil context is bad input
}

// A resolver that fails for good closes Done, never Ready: code that
// waits for Ready alone would block forever, so the docs (README and
// godoc) wait on both.
func TestFollowerFailingResolverAndTheDocs(t *testing.T) {
	t.Parallel()
	bal, err := NewBalancer(RoundRobin{})
	require.NoError(t, err)
	defer bal.Close()
	f := StartFollower(context.Background(), DNS{}, bal) // invalid: no name
	select {
	case <-f.Ready():
		t.Fatal("ready without a set")
	case <-f.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("a permanently failing resolver did not end the follower")
	}
	assert.ErrorIs(t, f.Err(), ErrInvalidConfig)

	// Every wait for Ready in the README's Go code is a case of a select
	// that also waits for Done.
	readme, err := os.ReadFile("README.md")
	require.NoError(t, err)
	blocks := regexp.MustCompile("(?s)```go\n(.*?)```").FindAllStringSubmatch(string(readme), -1)
	require.NotEmpty(t, blocks)
	found := 0
	for _, b := range blocks {
		code := b[1]
		for _, line := range strings.Split(code, "\n") {
			if strings.Contains(line, "Ready()") {
				found++
				assert.Contains(t, line, "case <-", "README waits for Ready outside a select: %q", line)
				assert.Contains(t, code, "Done()", "README's select on Ready also needs Done")
			}
		}
	}
	assert.NotZero(t, found, "the README shows StartFollower")
}
