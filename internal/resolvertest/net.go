package resolvertest

import (
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// FreePort returns a TCP port on loopback that nothing listened on a
// moment ago, for a server a test starts (and may restart on the same
// port).
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

var runs atomic.Int64

// Uniq returns p under a path of its own for each call ("/run7" + p), so
// that tests sharing a server, and repeated runs (-count), do not see
// each other's keys.
func Uniq(p string) string {
	return fmt.Sprintf("/run%d%s", runs.Add(1), p)
}

// Proxy is a TCP proxy on loopback in front of a server: how a test
// breaks one client's connections while the server and other clients
// carry on. Cut drops every connection and refuses new ones, and Heal
// accepts again on the same port; Freeze makes the connections open at
// that moment swallow what is sent either way without closing them, as a
// network partition does (connections made afterwards work).
type Proxy struct {
	target string
	addr   string

	mu    sync.Mutex
	ln    net.Listener              // nil while cut
	conns map[net.Conn]*atomic.Bool // both sides of each pipe -> frozen
	wg    sync.WaitGroup
}

// StartProxy starts a proxy to target; it is cut, and its goroutines
// waited for, at the test's end.
func StartProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	p := &Proxy{target: target, conns: map[net.Conn]*atomic.Bool{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p.addr = ln.Addr().String()
	p.serve(ln)
	t.Cleanup(func() { p.Cut(); p.wg.Wait() })
	return p
}

// Addr is the proxy's address, for the client to dial.
func (p *Proxy) Addr() string { return p.addr }

func (p *Proxy) serve(ln net.Listener) {
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

// track adds the two sides of a pipe (false when the proxy is cut) or
// removes them.
func (p *Proxy) track(c, up net.Conn, frozen *atomic.Bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if frozen == nil {
		delete(p.conns, c)
		delete(p.conns, up)
		return true
	}
	if p.ln == nil {
		return false
	}
	p.conns[c], p.conns[up] = frozen, frozen
	return true
}

func (p *Proxy) pipe(c net.Conn) {
	defer c.Close()
	up, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		return
	}
	defer up.Close()
	frozen := &atomic.Bool{}
	if !p.track(c, up, frozen) {
		return
	}
	defer p.track(c, up, nil)
	done := make(chan struct{}, 2)
	cp := func(dst, src net.Conn) {
		defer func() { done <- struct{}{} }()
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 && !frozen.Load() {
				if _, werr := dst.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	}
	go cp(up, c)
	go cp(c, up)
	<-done
	c.Close()
	up.Close()
	<-done
}

// Cut closes the listener and every connection; until Heal, nothing
// connects.
func (p *Proxy) Cut() {
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

// Heal listens again on the same port, waiting (up to Deadline) for the
// port to be released.
func (p *Proxy) Heal(t testing.TB) {
	t.Helper()
	var ln net.Listener
	WaitFor(t, "the proxy's port "+p.addr+" to be free again", func() bool {
		var err error
		ln, err = net.Listen("tcp", p.addr)
		return err == nil
	})
	p.serve(ln)
}

// Freeze swallows, from now on, all traffic of the connections open now.
func (p *Proxy) Freeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, f := range p.conns {
		f.Store(true)
	}
}
