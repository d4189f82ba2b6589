package etcd_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/goleak"
	"go.uber.org/zap"
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

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func newEtcdServer(parent string) (*etcdServer, error) {
	dir, err := os.MkdirTemp(parent, "etcd-")
	if err != nil {
		return nil, err
	}
	cp, err := freePort()
	if err != nil {
		return nil, err
	}
	pp, err := freePort()
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

// proxy is a TCP proxy on loopback in front of an etcd server: cut drops
// every connection and refuses new ones, heal accepts again on the same
// port. It is how a test makes one client lose its connection while the
// server and other clients carry on.
type proxy struct {
	target string
	addr   string

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func startProxy(t *testing.T, target string) *proxy {
	t.Helper()
	p := &proxy{target: target, conns: map[net.Conn]struct{}{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p.addr = ln.Addr().String()
	p.serve(ln)
	t.Cleanup(func() { p.cut(); p.wg.Wait() })
	return p
}

func (p *proxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				p.pipe(c)
			}()
		}
	}()
}

func (p *proxy) track(c net.Conn, on bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if on {
		if p.ln == nil {
			return false
		}
		p.conns[c] = struct{}{}
	} else {
		delete(p.conns, c)
	}
	return true
}

func (p *proxy) pipe(c net.Conn) {
	defer c.Close()
	up, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		return
	}
	defer up.Close()
	if !p.track(c, true) || !p.track(up, true) {
		return
	}
	defer p.track(c, false)
	defer p.track(up, false)
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(up, c); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, up); done <- struct{}{} }()
	<-done
	c.Close()
	up.Close()
	<-done
}

// cut closes the listener and every connection.
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
	}
}

// heal listens again on the same port.
func (p *proxy) heal(t *testing.T) {
	t.Helper()
	var ln net.Listener
	var err error
	deadline := time.Now().Add(20 * time.Second)
	for {
		ln, err = net.Listen("tcp", p.addr)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond) // the port is being released
	}
	require.NoError(t, err)
	p.serve(ln)
}

// waitFor polls cond until it holds, failing the test after a deadline
// that only a broken program reaches.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond) // poll interval
	}
}

var runs atomic.Int64

// uniq returns p under a prefix of its own for each call, so that tests
// sharing the package's etcd, and repeated runs (-count), do not see each
// other's keys.
func uniq(p string) string {
	return fmt.Sprintf("/run%d%s", runs.Add(1), p)
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
