package etcd_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/go-lb/lb/internal/resolvertest"
)

// exampleEtcd is the address of the etcd server that TestMain starts for
// the examples and for tests that need no server of their own.
var exampleEtcd string

// TestMain starts one embedded etcd for the package, runs the tests, stops
// it, and then fails if any goroutine is left. No goroutine is ignored:
// once the clients are closed and the servers stopped, etcd's server and
// client (grpc included) leave none, and neither may our resolvers and
// registrations.
func TestMain(m *testing.M) {
	srv, err := newEtcdServer(os.TempDir())
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting the example etcd:", err)
		os.Exit(1)
	}
	exampleEtcd = srv.clientURL.Host
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

// etcdServer is a single-member etcd embedded in the test process, on
// loopback ports chosen free, in a directory of its own. stop and start
// restart it on the same data and ports.
type etcdServer struct {
	dir       string
	clientURL url.URL
	peerURL   url.URL

	mu sync.Mutex
	e  *embed.Etcd
}

func newEtcdServer(parent string) (*etcdServer, error) {
	dir, err := os.MkdirTemp(parent, "etcd-")
	if err != nil {
		return nil, err
	}
	cp, err := resolvertest.FreePort()
	if err != nil {
		return nil, err
	}
	pp, err := resolvertest.FreePort()
	if err != nil {
		return nil, err
	}
	s := &etcdServer{
		dir:       dir,
		clientURL: url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", cp)},
		peerURL:   url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", pp)},
	}
	return s, s.start()
}

// startEtcd starts a server of the test's own, stopped at the test's end.
func startEtcd(t *testing.T) *etcdServer {
	t.Helper()
	s, err := newEtcdServer(t.TempDir())
	require.NoError(t, err)
	t.Cleanup(s.stop)
	return s
}

func (s *etcdServer) start() error {
	cfg := embed.NewConfig()
	cfg.Name = "lb-test"
	cfg.Dir = s.dir
	cfg.ListenClientUrls = []url.URL{s.clientURL}
	cfg.AdvertiseClientUrls = []url.URL{s.clientURL}
	cfg.ListenPeerUrls = []url.URL{s.peerURL}
	cfg.AdvertisePeerUrls = []url.URL{s.peerURL}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.TickMs, cfg.ElectionMs = 50, 500
	cfg.Logger = "zap"
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return err
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return err
	case <-time.After(2 * time.Minute):
		e.Close()
		return errors.New("etcd did not start in 2 minutes")
	}
	s.mu.Lock()
	s.e = e
	s.mu.Unlock()
	return nil
}

func (s *etcdServer) stop() {
	s.mu.Lock()
	e := s.e
	s.e = nil
	s.mu.Unlock()
	if e != nil {
		e.Close()
	}
}

// client returns a new client of s, closed at the test's end.
func (s *etcdServer) client(t *testing.T) *clientv3.Client {
	t.Helper()
	return newClient(t, s.clientURL.Host)
}

func newClient(t *testing.T, addr string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   []string{addr},
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = cli.Close() })
	return cli
}

func put(t *testing.T, cli *clientv3.Client, key, val string, opts ...clientv3.OpOption) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := cli.Put(ctx, key, val, opts...)
	require.NoError(t, err)
	return resp.Header.Revision
}

func del(t *testing.T, cli *clientv3.Client, key string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := cli.Delete(ctx, key)
	require.NoError(t, err)
}
