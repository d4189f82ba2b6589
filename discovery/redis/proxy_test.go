package redis_test

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// blackHole is a TCP proxy on loopback in front of a server. freeze makes
// every connection open at that moment swallow what is sent either way,
// without closing it, as a network partition does; connections made
// afterwards work.
type blackHole struct {
	target string
	addr   string
	ln     net.Listener

	mu    sync.Mutex
	conns map[net.Conn]*atomic.Bool // client side -> frozen
	wg    sync.WaitGroup
}

func startBlackHole(t *testing.T, target string) *blackHole {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &blackHole{target: target, addr: ln.Addr().String(), ln: ln, conns: map[net.Conn]*atomic.Bool{}}
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
	t.Cleanup(p.close)
	return p
}

func (p *blackHole) pipe(c net.Conn) {
	defer c.Close()
	up, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		return
	}
	defer up.Close()
	frozen := &atomic.Bool{}
	p.mu.Lock()
	if p.conns == nil { // closed
		p.mu.Unlock()
		return
	}
	p.conns[c] = frozen
	p.mu.Unlock()
	done := make(chan struct{}, 2)
	cp := func(dst io.Writer, src io.Reader) {
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 && !frozen.Load() {
				if _, werr := dst.Write(buf[:n]); werr != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
		done <- struct{}{}
	}
	go cp(up, c)
	go cp(c, up)
	<-done
	c.Close()
	up.Close()
	<-done
}

// freeze swallows all traffic of the connections open now.
func (p *blackHole) freeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, f := range p.conns {
		f.Store(true)
	}
}

func (p *blackHole) close() {
	p.ln.Close()
	p.mu.Lock()
	for c := range p.conns {
		c.Close()
	}
	p.conns = nil
	p.mu.Unlock()
	p.wg.Wait()
}
