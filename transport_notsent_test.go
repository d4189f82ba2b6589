package lb_test

import (
	"bufio"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-lb/lb"
)

// A TLS backend that misbehaves at a given moment: after the handshake,
// when it has read a request (answering bytes that are not TLS, so the
// client sees a tls.RecordHeaderError after the request was written), or
// in the handshake itself (the same error type, before anything was sent).
type rogueTLS struct {
	addr     string
	executed atomic.Int64 // requests read in full
}

const (
	rogueAfterRequest = iota // handshake, read the request, answer plain text
	rogueInHandshake         // answer plain text to the ClientHello
	rogueGood                // a real HTTPS answer
)

func startRogueTLS(t *testing.T, cert tls.Certificate, mode int) *rogueTLS {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	r := &rogueTLS{addr: ln.Addr().String()}
	done := make(chan struct{})
	t.Cleanup(func() {
		ln.Close()
		<-done
	})
	go func() {
		defer close(done)
		for {
			raw, err := ln.Accept()
			if err != nil {
				return
			}
			r.serve(raw, cert, mode)
		}
	}()
	return r
}

func (r *rogueTLS) serve(raw net.Conn, cert tls.Certificate, mode int) {
	defer raw.Close()
	if mode == rogueInHandshake {
		_, _ = io.WriteString(raw, "HTTP/1.1 400 Bad Request\r\n\r\n")
		return
	}
	tc := tls.Server(raw, &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"http/1.1"}})
	if tc.Handshake() != nil {
		return
	}
	req, err := http.ReadRequest(bufio.NewReader(tc))
	if err != nil {
		return
	}
	if _, err := io.Copy(io.Discard, req.Body); err != nil {
		return
	}
	r.executed.Add(1)
	if mode == rogueGood {
		_, _ = io.WriteString(tc, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
		return
	}
	// Plain text on the raw connection, past the TLS layer.
	_, _ = io.WriteString(raw, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
}

// "Not sent" is proven by where an error happened, never by its type. A
// tls.RecordHeaderError after the request was written means the POST may
// have run: it is not retried, and the error says ErrMaybeExecuted. The
// same error type in the handshake proves the opposite: the POST goes to
// another backend and runs once.
func TestTransportNotSentIsProven(t *testing.T) {
	t.Parallel()
	pool, cert := testCA(t, "api.internal")
	tlsConf := &tls.Config{RootCAs: pool}

	t.Run("record error after the write", func(t *testing.T) {
		t.Parallel()
		var eps []lb.Endpoint
		var backs []*rogueTLS
		for i := 0; i < 3; i++ {
			r := startRogueTLS(t, cert, rogueAfterRequest)
			backs = append(backs, r)
			eps = append(eps, lb.Endpoint{Addr: r.addr})
		}
		tr, _ := newTestTransport(t, lb.RoundRobin{}, eps, nil, lb.WithTLSClientConfig(tlsConf))
		resp, err := (&http.Client{Transport: tr}).Post("https://api.internal/orders", "text/plain", strings.NewReader("order-1"))
		if resp != nil {
			resp.Body.Close()
		}
		require.Error(t, err)
		var rec tls.RecordHeaderError
		assert.True(t, errors.As(err, &rec), "the TLS record error is in the chain: %v", err)
		assert.ErrorIs(t, err, lb.ErrMaybeExecuted)
		assert.NotErrorIs(t, err, lb.ErrNotSent)
		var total int64
		for _, r := range backs {
			total += r.executed.Load()
		}
		assert.EqualValues(t, 1, total, "the POST ran on one backend only")
	})

	t.Run("record error in the handshake", func(t *testing.T) {
		t.Parallel()
		bad1 := startRogueTLS(t, cert, rogueInHandshake)
		bad2 := startRogueTLS(t, cert, rogueInHandshake)
		good := startRogueTLS(t, cert, rogueGood)
		eps := []lb.Endpoint{{Addr: bad1.addr}, {Addr: bad2.addr}, {Addr: good.addr}}
		for i := 0; i < 6; i++ { // every start of the round robin
			tr, _ := newTestTransport(t, lb.RoundRobin{Stripes: 1}, eps, nil, lb.WithTLSClientConfig(tlsConf))
			resp, err := (&http.Client{Transport: tr}).Post("https://api.internal/orders", "text/plain", strings.NewReader("order"))
			require.NoError(t, err, "never sent to the rogue backends: retried, POST or not")
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			assert.Equal(t, "ok", string(body))
		}
		assert.EqualValues(t, 6, good.executed.Load(), "each POST ran once")
	})

	t.Run("every handshake fails", func(t *testing.T) {
		t.Parallel()
		bad := startRogueTLS(t, cert, rogueInHandshake)
		tr, _ := newTestTransport(t, lb.RoundRobin{}, []lb.Endpoint{{Addr: bad.addr}}, nil, lb.WithTLSClientConfig(tlsConf))
		_, err := (&http.Client{Transport: tr}).Post("https://api.internal/orders", "text/plain", strings.NewReader("order"))
		require.Error(t, err)
		assert.ErrorIs(t, err, lb.ErrNotSent)
		var rec tls.RecordHeaderError
		assert.True(t, errors.As(err, &rec), "%v", err)
	})
}
