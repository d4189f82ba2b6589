package resolvertest_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/go-lb/lb"
	"github.com/go-lb/lb/internal/resolvertest"
)

// TestMain fails the package if a helper leaves a goroutine behind.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// sets is a Resolver that reports each set sent on it, and returns with
// its context or, when the channel is closed, with errEnded.
type sets chan []lb.Endpoint

var errEnded = errors.New("no more sets")

func (s sets) Watch(ctx context.Context, update func([]lb.Endpoint) error) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case eps, ok := <-s:
			if !ok {
				return errEnded
			}
			if err := update(eps); err != nil {
				return err
			}
		}
	}
}

func eps(addrs ...string) []lb.Endpoint {
	out := make([]lb.Endpoint, len(addrs))
	for i, a := range addrs {
		out[i] = lb.Endpoint{Addr: a}
	}
	return out
}

func TestRecorder(t *testing.T) {
	t.Parallel()
	s := make(sets)
	rec := resolvertest.Watch(t, s)
	assert.Zero(t, rec.Count())
	assert.Nil(t, rec.Last())
	assert.Equal(t, []string{}, rec.Addrs())

	s <- eps()
	rec.WaitAddrs(t)
	assert.Equal(t, []lb.Endpoint{}, rec.Last())
	s <- eps("10.0.0.1:80", "10.0.0.2:80")
	rec.WaitAddrs(t, "10.0.0.1:80", "10.0.0.2:80")
	s <- eps("10.0.0.2:80")
	rec.WaitCount(t, 3, "the third set")
	assert.Equal(t, []string{"10.0.0.2:80"}, rec.Addrs())
	rec.NoRepeats(t)

	require.ErrorIs(t, rec.Stop(), context.Canceled)
	require.ErrorIs(t, rec.Stop(), context.Canceled, "a second Stop")
}

// NoRepeats fails on a set reported twice in a row; Ended returns the
// error Watch returned by itself.
// spy is a test whose failures are noted, not reported.
type spy struct {
	testing.TB
	failed bool
}

func (s *spy) Errorf(string, ...any) { s.failed = true }

func TestRecorderRepeatsAndEnded(t *testing.T) {
	t.Parallel()
	s := make(sets)
	rec := resolvertest.Watch(t, s)
	s <- eps("10.0.0.1:80")
	s <- eps("10.0.0.1:80")
	rec.WaitCount(t, 2, "two sets")
	sp := &spy{TB: t}
	rec.NoRepeats(sp)
	assert.True(t, sp.failed, "a repeated set passed")
	close(s)
	require.ErrorIs(t, rec.Ended(t), errEnded)
	require.ErrorIs(t, rec.Stop(), errEnded)
}

func TestFormatAndBackends(t *testing.T) {
	t.Parallel()
	tests := []struct {
		give []string
		want string
	}{
		{nil, "[]"},
		{[]string{"a:1"}, "[a:1]"},
		{[]string{"a:1", "b:2"}, "[a:1 b:2]"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, resolvertest.Format(tt.give))
	}
	bal, err := lb.NewBalancer(lb.RoundRobin{})
	require.NoError(t, err)
	defer bal.Close()
	assert.Equal(t, "[]", resolvertest.Backends(bal))
	require.NoError(t, bal.Update(eps("10.0.0.2:80", "10.0.0.1:80")))
	assert.Equal(t, "[10.0.0.2:80 10.0.0.1:80]", resolvertest.Backends(bal), "in the order of the set")
	resolvertest.PicksWork(t, bal, 3)
}

func TestLogs(t *testing.T) {
	t.Parallel()
	logs, logger := resolvertest.NewLogs()
	logger.Debug("first", "key", "/a", "n", 2)
	logger.With("ignored", true).Warn("second", "key", "/b")
	assert.Equal(t, []string{"first key=/a n=2", "second key=/b"}, logs.Matching("key="))
	assert.Equal(t, 1, logs.Count("key=/a "))
	assert.Zero(t, logs.Count("ignored"))

	info := &resolvertest.Logs{MinLevel: slog.LevelInfo}
	slog.New(info).Debug("dropped")
	slog.New(info).Info("kept")
	assert.Zero(t, info.Count("dropped"))
	assert.Equal(t, 1, info.Count("kept"))
}

// FollowInto, TimeChanges and NothingMore over a resolver the test feeds;
// MeasureFirstSet over lb.Static.
func TestMeasure(t *testing.T) {
	t.Parallel()
	bal, err := lb.NewBalancer(lb.RoundRobin{})
	require.NoError(t, err)
	defer bal.Close()
	s := make(sets)
	applied := make(chan string, 1)
	stop := resolvertest.FollowInto(t, s, bal, applied, resolvertest.Backends)
	total, after := resolvertest.TimeChanges(t, 4, applied, func(i int) string {
		s <- eps("10.0.0.1:80", "10.0.0.2:80")[:1+i%2]
		return []string{"[10.0.0.1:80]", "[10.0.0.1:80 10.0.0.2:80]"}[i%2]
	})
	resolvertest.NothingMore(t, applied)
	stop()
	require.Len(t, total, 4)
	require.Len(t, after, 4)
	for i := range total {
		assert.GreaterOrEqual(t, total[i], after[i])
	}
	med, largest := resolvertest.MedianMax([]time.Duration{3, 1, 2})
	assert.Equal(t, time.Duration(2), med)
	assert.Equal(t, time.Duration(3), largest)

	fs := resolvertest.MeasureFirstSet(t, lb.Static(eps("10.0.0.1:80", "10.0.0.2:80")), 2)
	assert.Positive(t, fs.After)
}

// The proxy forwards; Cut drops its connections and refuses new ones,
// Heal takes them again on the same port; Freeze silences the open
// connections and not later ones.
func TestProxy(t *testing.T) {
	t.Parallel()
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	served := make(chan struct{})
	go func() {
		defer close(served)
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	px := resolvertest.StartProxy(t, echo.Addr().String())
	t.Cleanup(func() { echo.Close(); <-served })

	roundTrip := func(c net.Conn) error {
		_ = c.SetDeadline(time.Now().Add(200 * time.Millisecond))
		if _, err := c.Write([]byte("ping")); err != nil {
			return err
		}
		buf := make([]byte, 4)
		_, err := io.ReadFull(c, buf)
		return err
	}
	dial := func() net.Conn {
		c, err := net.Dial("tcp", px.Addr())
		require.NoError(t, err)
		t.Cleanup(func() { c.Close() })
		return c
	}

	c := dial()
	require.NoError(t, roundTrip(c))
	px.Cut()
	require.Error(t, roundTrip(c), "a cut connection still works")
	_, err = net.Dial("tcp", px.Addr())
	require.Error(t, err, "a cut proxy accepted a connection")
	px.Heal(t)

	frozen := dial()
	require.NoError(t, roundTrip(frozen))
	px.Freeze()
	var ne net.Error
	require.ErrorAs(t, roundTrip(frozen), &ne)
	assert.True(t, ne.Timeout(), "a frozen connection answers nothing and stays open")
	require.NoError(t, roundTrip(dial()), "a connection made after Freeze works")
}

func TestFreePortAndUniq(t *testing.T) {
	t.Parallel()
	port, err := resolvertest.FreePort()
	require.NoError(t, err)
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	require.NoError(t, err)
	ln.Close()
	assert.NotEqual(t, resolvertest.Uniq("/a"), resolvertest.Uniq("/a"))
	assert.Regexp(t, `^/run\d+/a$`, resolvertest.Uniq("/a"))
}

func TestConfigError(t *testing.T) {
	t.Parallel()
	resolvertest.ConfigError(t, lb.DNS{}, "lb: invalid configuration")
	sp := &spy{TB: t}
	resolvertest.ConfigError(sp, lb.DNS{}, "not in the message")
	assert.True(t, sp.failed, "a message without what is wanted passed")
}
