package zookeeper_test

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/go-lb/lb/internal/resolvertest"
)

// exampleZK is the address of the ZooKeeper server that TestMain starts
// for the examples and for the tests that need no server of their own.
var exampleZK string

// TestMain starts one ZooKeeper server for the package, runs the tests,
// stops it, and then fails if any goroutine is left: once the connections
// are closed, go-zookeeper's client leaves none, and neither may our
// resolvers and registrations.
func TestMain(m *testing.M) {
	flag.Parse()
	if f := flag.Lookup("test.fuzzworker"); f != nil && f.Value.String() == "true" {
		os.Exit(m.Run()) // a fuzzing worker runs only a fuzz target: no server
	}
	srv, err := newServer(os.TempDir())
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting ZooKeeper:", err)
		os.Exit(1)
	}
	exampleZK = srv.addr
	code := m.Run()
	srv.stop()
	_ = os.RemoveAll(srv.dir)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// zkJar is Debian's ZooKeeper server jar (package zookeeper); its manifest
// names the jars it needs.
const zkJar = "/usr/share/java/zookeeper.jar"

// zkServer is a standalone ZooKeeper server (Debian's jars, in a JVM of
// its own) on a free loopback port, with its own data directory. Its tick
// is 100 ms, so sessions may be as short as 200 ms and expiry is tested in
// about a second. stop kills it (as a crash would); start starts it again
// on the same port and data.
type zkServer struct {
	dir  string
	addr string
	cfg  string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
}

func newServer(parent string) (*zkServer, error) {
	if _, err := os.Stat(zkJar); err != nil {
		return nil, fmt.Errorf("ZooKeeper's jars are not installed (%v): run ./testdeps as root", err)
	}
	if _, err := exec.LookPath("java"); err != nil {
		return nil, fmt.Errorf("no java (%v): run ./testdeps as root", err)
	}
	dir, err := os.MkdirTemp(parent, "zk-")
	if err != nil {
		return nil, err
	}
	port, err := resolvertest.FreePort()
	if err != nil {
		return nil, err
	}
	s := &zkServer{dir: dir, addr: fmt.Sprintf("127.0.0.1:%d", port), cfg: filepath.Join(dir, "zoo.cfg")}
	cfg := strings.Join([]string{
		"tickTime=100",
		"dataDir=" + filepath.Join(dir, "data"),
		fmt.Sprintf("clientPort=%d", port),
		"clientPortAddress=127.0.0.1",
		"maxClientCnxns=0",
		"minSessionTimeout=200",
		"maxSessionTimeout=30000",
		"4lw.commands.whitelist=srvr",
		"admin.enableServer=false",
		"forceSync=no",
		"",
	}, "\n")
	if err := os.WriteFile(s.cfg, []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	return s, s.start()
}

// startServer starts a server of the test's own, stopped at its end.
func startServer(t *testing.T) *zkServer {
	t.Helper()
	s, err := newServer(t.TempDir())
	require.NoError(t, err)
	t.Cleanup(s.stop)
	return s
}

// start runs the JVM and waits until the server serves (its srvr answer
// says standalone), or fails after a deadline only a broken setup reaches.
func (s *zkServer) start() error {
	logf, err := os.OpenFile(filepath.Join(s.dir, "server.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command("java", "-Xms32m", "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
		"-cp", zkJar, "org.apache.zookeeper.server.ZooKeeperServerMain", s.cfg)
	cmd.Stdout, cmd.Stderr = logf, logf
	resolvertest.DieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(exited)
	}()
	s.mu.Lock()
	s.cmd, s.exited = cmd, exited
	s.mu.Unlock()

	deadline := time.NewTimer(2 * time.Minute)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !s.serving() {
		select {
		case <-exited:
			out, _ := os.ReadFile(filepath.Join(s.dir, "server.log"))
			return fmt.Errorf("ZooKeeper exited while starting: %s", out)
		case <-deadline.C:
			s.stop()
			return errors.New("ZooKeeper did not serve within 2 minutes")
		case <-tick.C:
		}
	}
	return nil
}

// serving asks the server's srvr four-letter word whether it serves.
func (s *zkServer) serving() bool {
	c, err := net.DialTimeout("tcp", s.addr, time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(c, "srvr"); err != nil {
		return false
	}
	out, _ := io.ReadAll(bufio.NewReader(c))
	return strings.Contains(string(out), "Mode: standalone")
}

// version returns the server's version line, from srvr.
func (s *zkServer) version() string {
	c, err := net.DialTimeout("tcp", s.addr, time.Second)
	if err != nil {
		return err.Error()
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	_, _ = io.WriteString(c, "srvr")
	line, _ := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line)
}

// stop kills the server (SIGKILL: no clean shutdown, as in a crash) and
// waits for it to exit.
func (s *zkServer) stop() {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.cmd = nil
	s.mu.Unlock()
	if cmd != nil {
		_ = cmd.Process.Kill()
		<-exited
	}
}

// quiet drops the go-zookeeper client's log lines.
type quiet struct{}

func (quiet) Printf(string, ...any) {}

// connect opens a connection to addr with the given session timeout,
// through dial (nil: net.DialTimeout), waits for its session, and closes
// it at the test's end, waiting for the client's goroutines to end.
func connect(t testing.TB, addr string, timeout time.Duration, dial zk.Dialer) *zk.Conn {
	t.Helper()
	if dial == nil {
		dial = net.DialTimeout
	}
	conn, events, err := zk.Connect([]string{addr}, timeout, zk.WithLogger(quiet{}), zk.WithDialer(dial))
	require.NoError(t, err)
	t.Cleanup(func() {
		conn.Close()
		for range events { //nolint:revive // until the client closes it
		}
	})
	deadline := time.After(30 * time.Second)
	for conn.State() != zk.StateHasSession {
		select {
		case <-events:
		case <-deadline:
			t.Fatalf("no session with %s in 30s", addr)
		}
	}
	return conn
}

// connectShared opens a connection to the package's server with a 10 s
// session.
func connectShared(t testing.TB) *zk.Conn {
	t.Helper()
	return connect(t, exampleZK, 10*time.Second, nil)
}

// link is a zk.Dialer whose connections a test can cut: cut closes them
// and refuses new ones until heal. It is how a test cuts one client off
// a server that carries on, for longer than its session timeout.
type link struct {
	mu    sync.Mutex
	down  bool
	conns map[net.Conn]struct{}
}

func newLink() *link { return &link{conns: map[net.Conn]struct{}{}} }

func (l *link) dial(network, addr string, timeout time.Duration) (net.Conn, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.down {
		return nil, errors.New("link cut by the test")
	}
	c, err := net.DialTimeout(network, addr, timeout)
	if err != nil {
		return nil, err
	}
	lc := &linkConn{Conn: c, l: l}
	l.conns[lc] = struct{}{}
	return lc, nil
}

func (l *link) cut() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.down = true
	for c := range l.conns {
		c.(*linkConn).Conn.Close()
		delete(l.conns, c)
	}
}

func (l *link) heal() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.down = false
}

type linkConn struct {
	net.Conn
	l *link
}

func (c *linkConn) Close() error {
	c.l.mu.Lock()
	delete(c.l.conns, c)
	c.l.mu.Unlock()
	return c.Conn.Close()
}

// put creates the znode p (and its missing parents) with data, or sets
// its data when it exists.
func put(t testing.TB, conn *zk.Conn, p, data string) {
	t.Helper()
	for i := 1; i < len(p); i++ {
		if p[i] == '/' {
			_, err := conn.Create(p[:i], nil, zk.FlagPersistent, zk.WorldACL(zk.PermAll))
			if !errors.Is(err, zk.ErrNodeExists) {
				require.NoError(t, err)
			}
		}
	}
	_, err := conn.Create(p, []byte(data), zk.FlagPersistent, zk.WorldACL(zk.PermAll))
	if errors.Is(err, zk.ErrNodeExists) {
		_, err = conn.Set(p, []byte(data), -1)
	}
	require.NoError(t, err)
}

func del(t testing.TB, conn *zk.Conn, p string) {
	t.Helper()
	require.NoError(t, conn.Delete(p, -1))
}

func exists(t testing.TB, conn *zk.Conn, p string) (bool, *zk.Stat) {
	t.Helper()
	ok, stat, err := conn.Exists(p)
	require.NoError(t, err)
	return ok, stat
}

// newLogs keeps what the resolvers and registrations log, from Info up:
// the go-zookeeper client's own lines (Debug) are left out.
func newLogs() *resolvertest.Logs { return &resolvertest.Logs{MinLevel: slog.LevelInfo} }
