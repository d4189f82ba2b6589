package redis_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/go-lb/lb/internal/resolvertest"
)

// shared is the redis-server that TestMain starts for the examples and
// for the tests that need no server of their own.
var shared *server

// TestMain starts one redis-server for the package, runs the tests, stops
// it, and then fails if any goroutine is left. No goroutine is ignored:
// once the clients are closed, go-redis leaves none, and neither may our
// resolvers and registrations.
func TestMain(m *testing.M) {
	goredis.SetLogger(quietLogger{}) // go-redis logs every failed dial while a server is down
	dir, err := os.MkdirTemp("", "lb-redis-")
	if err == nil {
		shared, err = newServer(dir)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting redis-server (./testdeps installs it):", err)
		os.Exit(1)
	}
	code := m.Run()
	shared.kill()
	_ = os.RemoveAll(dir)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

// server is a redis-server process of the tests' own (not the system's
// service), on a free loopback port, with no persistence, its files in a
// directory of its own. kill and start restart it on the same port.
type server struct {
	dir  string
	port int
	addr string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan error // receives the process's end
}

func newServer(dir string) (*server, error) {
	port, err := resolvertest.FreePort()
	if err != nil {
		return nil, err
	}
	s := &server{dir: dir, port: port, addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port))}
	return s, s.start()
}

// startServer starts a server of the test's own, killed at the test's
// end.
func startServer(t *testing.T) *server {
	t.Helper()
	s, err := newServer(t.TempDir())
	require.NoError(t, err)
	t.Cleanup(s.kill)
	return s
}

func (s *server) start() error {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return err
	}
	cmd := exec.Command(bin,
		"--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", s.dir,
		"--logfile", filepath.Join(s.dir, "redis.log"), "--loglevel", "warning")
	resolvertest.DieWithParent(cmd) // the server dies with the test binary, even on a panic
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := ping(s.addr)
		if err == nil {
			break
		}
		select {
		case werr := <-exited:
			log, _ := os.ReadFile(filepath.Join(s.dir, "redis.log"))
			return fmt.Errorf("redis-server exited (%v) before answering PING: %s", werr, log)
		default:
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-exited
			return fmt.Errorf("redis-server did not answer PING on %s in 30s: %w", s.addr, err)
		}
		time.Sleep(5 * time.Millisecond) // poll interval
	}
	s.mu.Lock()
	s.cmd, s.exited = cmd, exited
	s.mu.Unlock()
	return nil
}

// kill ends the server at once (SIGKILL: no shutdown, no save) and waits
// for the process to be gone.
func (s *server) kill() {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-exited
}

// ping sends PING over a fresh connection and expects +PONG.
func ping(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if strings.TrimSpace(line) != "+PONG" {
		return errors.New("unexpected reply to PING: " + line)
	}
	return nil
}

// client returns a new client of s, closed at the test's end.
func (s *server) client(t *testing.T) *goredis.Client {
	t.Helper()
	cli := goredis.NewClient(&goredis.Options{Addr: s.addr})
	t.Cleanup(func() { _ = cli.Close() })
	return cli
}

var runs atomic.Int64

// uniq returns a service name of its own for each call, so that tests
// sharing a server, and repeated runs (-count), do not see each other's
// instances.
func uniq(name string) string {
	return fmt.Sprintf("%s-%d", name, runs.Add(1))
}

// Keys of the documented layout, spelled out here so that the tests pin
// it.
func instanceKey(service, id string) string { return "lb:{" + service + "}:ep:" + id }
func indexKey(service string) string        { return "lb:{" + service + "}:index" }
func channelName(service string) string     { return "lb:{" + service + "}:changes" }

func bg(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// put lists an instance by hand, as the package documentation says: its
// key (with a TTL when ttl > 0), then its ID in the index. It announces
// nothing: resolvers learn of it through keyspace notifications.
func put(t *testing.T, cli *goredis.Client, service, id, val string, ttl time.Duration) {
	t.Helper()
	_, err := cli.TxPipelined(bg(t), func(p goredis.Pipeliner) error {
		p.Set(bg(t), instanceKey(service, id), val, ttl)
		p.ZAdd(bg(t), indexKey(service), goredis.Z{Score: inf, Member: id})
		return nil
	})
	require.NoError(t, err)
}

var inf = math.Inf(1)

// del deletes an instance's key (its ID stays in the index).
func del(t *testing.T, cli *goredis.Client, service, id string) {
	t.Helper()
	require.NoError(t, cli.Del(bg(t), instanceKey(service, id)).Err())
}
