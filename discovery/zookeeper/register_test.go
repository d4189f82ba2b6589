package zookeeper_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-lb/lb"
	"github.com/go-lb/lb/discovery/zookeeper"
	"github.com/go-lb/lb/internal/resolvertest"
)

func get(t testing.TB, conn *zk.Conn, p string) (string, *zk.Stat) {
	t.Helper()
	data, stat, err := conn.Get(p)
	require.NoError(t, err)
	return string(data), stat
}

// Register creates the parents and an ephemeral child with the endpoint's
// JSON, named by the address; Close deletes it at once.
func TestRegisterCreatesAndCloseDeletes(t *testing.T) {
	t.Parallel()
	conn := connectShared(t)
	p := resolvertest.Uniq("/register/api")
	ep := lb.Endpoint{Addr: "10.0.0.7:80", Weight: 2, Labels: map[string]string{"zone": "eu-1"}}
	reg, err := zookeeper.Register(context.Background(), conn, p, ep, zookeeper.RegisterOptions{})
	require.NoError(t, err)
	assert.Equal(t, p+"/10.0.0.7:80", reg.Path())
	data, stat := get(t, conn, reg.Path())
	assert.JSONEq(t, `{"addr":"10.0.0.7:80","weight":2,"labels":{"zone":"eu-1"}}`, data)
	assert.Equal(t, conn.SessionID(), stat.EphemeralOwner)
	back, err := zookeeper.ParseChild("10.0.0.7:80", []byte(data))
	require.NoError(t, err)
	assert.Equal(t, ep, back)
	_, parent := get(t, conn, p)
	assert.Zero(t, parent.EphemeralOwner, "parents are persistent")

	require.NoError(t, reg.Close())
	require.NoError(t, reg.Close(), "Close twice")
	<-reg.Done()
	ok, _ := exists(t, conn, reg.Path())
	assert.False(t, ok, "Close should delete the znode at once")
}

// Sequential registrations of one address get names of their own, with
// the protection prefix and ZooKeeper's counter.
func TestRegisterSequential(t *testing.T) {
	t.Parallel()
	conn := connectShared(t)
	p := resolvertest.Uniq("/register/seq")
	ep := lb.Endpoint{Addr: "10.0.0.8:80"}
	var regs []*zookeeper.Registration
	for i := 0; i < 2; i++ {
		reg, err := zookeeper.Register(context.Background(), conn, p, ep, zookeeper.RegisterOptions{Sequential: true})
		require.NoError(t, err)
		defer reg.Close()
		regs = append(regs, reg)
		name := strings.TrimPrefix(reg.Path(), p+"/")
		assert.Regexp(t, `^_c_[0-9a-f]{32}-10\.0\.0\.8:80-\d{10}$`, name)
	}
	assert.NotEqual(t, regs[0].Path(), regs[1].Path())
	named, err := zookeeper.Register(context.Background(), conn, p, ep, zookeeper.RegisterOptions{Sequential: true, Name: "member-"})
	require.NoError(t, err)
	defer named.Close()
	assert.Regexp(t, `/_c_[0-9a-f]{32}-member-\d{10}$`, named.Path())

	children, _, err := conn.Children(p)
	require.NoError(t, err)
	assert.Len(t, children, 3)
	rec := resolvertest.Watch(t, zookeeper.Resolver{Conn: conn, Path: p})
	rec.WaitAddrs(t, "10.0.0.8:80")
}

// The registration's session expires while its process lives (its
// connection was cut for longer than the session timeout): the znode goes,
// and once the connection is back, the registration creates it again in
// the client's new session. A znode deleted behind its back is created
// again too.
func TestRegisterRecreates(t *testing.T) {
	t.Parallel()
	for _, seq := range []bool{false, true} {
		t.Run(fmt.Sprintf("sequential=%v", seq), func(t *testing.T) {
			t.Parallel()
			admin := connectShared(t)
			lnk := newLink()
			conn := connect(t, exampleZK, time.Second, lnk.dial)
			p := resolvertest.Uniq("/register/expiry")
			logs := newLogs()
			reg, err := zookeeper.Register(context.Background(), conn, p, lb.Endpoint{Addr: "10.0.0.9:80"},
				zookeeper.RegisterOptions{Sequential: seq, Logger: slog.New(logs)})
			require.NoError(t, err)
			defer reg.Close()
			first := reg.Path()
			_, stat := get(t, admin, first)
			sid := stat.EphemeralOwner

			lnk.cut()
			resolvertest.WaitFor(t, "the cut session's znode to go", func() bool { ok, _ := exists(t, admin, first); return !ok })
			lnk.heal()
			resolvertest.WaitFor(t, "the znode again", func() bool {
				ok, stat := exists(t, admin, reg.Path())
				return ok && stat.EphemeralOwner != sid
			})
			_, stat = get(t, admin, reg.Path())
			assert.Equal(t, conn.SessionID(), stat.EphemeralOwner)
			if seq {
				assert.NotEqual(t, first, reg.Path(), "a new sequence number")
			} else {
				assert.Equal(t, first, reg.Path())
			}
			assert.Positive(t, logs.Count("creating it again"))

			again := reg.Path()
			del(t, admin, again)
			resolvertest.WaitFor(t, "the deleted znode again", func() bool {
				ok, _ := exists(t, admin, reg.Path())
				return ok
			})
			require.NoError(t, reg.Close())
			ok, _ := exists(t, admin, reg.Path())
			assert.False(t, ok)
		})
	}
}

// A process that dies without Close: its connection goes silent (cut, as
// a crash or a partition would), and ZooKeeper expires its session, which
// removes the znode; a resolver drops the endpoint then. A connection
// closed without Close ends the session at once, and the znode with it.
func TestRegisterGoesWithItsSession(t *testing.T) {
	t.Parallel()
	const timeout = time.Second
	p := resolvertest.Uniq("/register/crash")
	lnk := newLink()
	crashing := connect(t, exampleZK, timeout, lnk.dial)
	closing := connectShared(t)
	reg1, err := zookeeper.Register(context.Background(), crashing, p, lb.Endpoint{Addr: "10.0.1.1:80"}, zookeeper.RegisterOptions{})
	require.NoError(t, err)
	reg2, err := zookeeper.Register(context.Background(), closing, p, lb.Endpoint{Addr: "10.0.1.2:80"}, zookeeper.RegisterOptions{})
	require.NoError(t, err)

	bal, err := lb.NewBalancer(lb.RoundRobin{})
	require.NoError(t, err)
	defer bal.Close()
	f := lb.StartFollower(context.Background(), zookeeper.Resolver{Conn: connectShared(t), Path: p}, bal)
	defer f.Stop()
	<-f.Ready()
	require.Equal(t, "[10.0.1.1:80 10.0.1.2:80]", resolvertest.Backends(bal))

	crashed := time.Now()
	lnk.cut()
	resolvertest.WaitFor(t, "the crashed service's removal", func() bool { return resolvertest.Backends(bal) == "[10.0.1.2:80]" })
	t.Logf("crashed service removed %v after its connection went silent (session timeout %v)", time.Since(crashed).Round(time.Millisecond), timeout)
	require.Error(t, reg1.Close(), "deleting through a cut connection")

	closing.Close()
	<-reg2.Done()
	resolvertest.WaitFor(t, "the closed session's removal", func() bool { return resolvertest.Backends(bal) == "[]" })
	require.Error(t, reg2.Close(), "deleting through a closed connection")
	require.NoError(t, f.Stop())
}

// A znode of the registration's name held by another session (a previous
// run whose session has not expired) is waited for: Register returns once
// it has gone and the new one is made. ctx bounds that wait.
func TestRegisterWaitsForAnotherSession(t *testing.T) {
	t.Parallel()
	p := resolvertest.Uniq("/register/wait")
	ep := lb.Endpoint{Addr: "10.0.2.1:80"}
	old := connectShared(t)
	prev, err := zookeeper.Register(context.Background(), old, p, ep, zookeeper.RegisterOptions{})
	require.NoError(t, err)

	conn := connectShared(t)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err = zookeeper.Register(ctx, conn, p, ep, zookeeper.RegisterOptions{})
	require.ErrorIs(t, err, context.DeadlineExceeded)

	logs := newLogs()
	done := make(chan *zookeeper.Registration, 1)
	go func() {
		reg, err := zookeeper.Register(context.Background(), conn, p, ep, zookeeper.RegisterOptions{Logger: slog.New(logs)})
		assert.NoError(t, err)
		done <- reg
	}()
	resolvertest.WaitFor(t, "the wait to be logged", func() bool { return logs.Count("held by another session") > 0 })
	require.NoError(t, prev.Close())
	reg := <-done
	require.NotNil(t, reg)
	defer reg.Close()
	_, stat := get(t, conn, reg.Path())
	assert.Equal(t, conn.SessionID(), stat.EphemeralOwner)
}

func TestRegisterErrors(t *testing.T) {
	t.Parallel()
	conn := connectShared(t)
	ok := lb.Endpoint{Addr: "10.0.0.1:1"}
	p := resolvertest.Uniq("/register/errors")
	put(t, conn, p+"/persistent", "")
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name  string
		ctx   context.Context
		conn  *zk.Conn
		path  string
		ep    lb.Endpoint
		opts  zookeeper.RegisterOptions
		want  error
		wantS string
	}{
		{"nil connection", nil, nil, p, ok, zookeeper.RegisterOptions{}, lb.ErrInvalidConfig, "connection is nil"},
		{"bad path", nil, conn, "services", ok, zookeeper.RegisterOptions{}, lb.ErrInvalidConfig, "path \"services\" is not absolute"},
		{"bad name", nil, conn, p, ok, zookeeper.RegisterOptions{Name: "a/b"}, lb.ErrInvalidConfig, `Name "a/b"`},
		{"dot name", nil, conn, p, ok, zookeeper.RegisterOptions{Name: ".."}, lb.ErrInvalidConfig, `".." segment`},
		{"invalid endpoint", nil, conn, p, lb.Endpoint{Addr: "nope"}, zookeeper.RegisterOptions{}, lb.ErrInvalidEndpoint, "host:port"},
		{"context ended", canceled, conn, p, ok, zookeeper.RegisterOptions{}, context.Canceled, ""},
		{"persistent znode of the name", nil, conn, p, ok, zookeeper.RegisterOptions{Name: "persistent"}, nil, "is not ephemeral"},
		{"ephemeral parent", nil, conn, p + "/eph", ok, zookeeper.RegisterOptions{}, zk.ErrNoChildrenForEphemerals, ""},
	}
	_, err := conn.Create(p+"/eph", nil, zk.FlagEphemeral, zk.WorldACL(zk.PermAll))
	require.NoError(t, err)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := tt.ctx
			if ctx == nil {
				ctx = context.Background()
			}
			reg, err := zookeeper.Register(ctx, tt.conn, tt.path, tt.ep, tt.opts)
			require.Error(t, err)
			assert.Nil(t, reg)
			if tt.want != nil {
				require.ErrorIs(t, err, tt.want)
			}
			assert.Contains(t, err.Error(), tt.wantS)
		})
	}
	children, _, err := conn.Children(p)
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{"persistent", "eph"}, children, "a failed Register left a znode")
}
