//go:build go1.24

package lb_test

import (
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-lb/lb"
)

// h2c on the default base: backends that speak HTTP/2 without TLS, each
// with its own per-backend pool, and HTTP/2 settings passed through.
func TestTransportUnencryptedHTTP2(t *testing.T) {
	t.Parallel()
	var eps []lb.Endpoint
	for i := 0; i < 2; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		var ps http.Protocols
		ps.SetUnencryptedHTTP2(true)
		srv := &http.Server{Protocols: &ps, ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, r.Proto)
		})}
		go func() { _ = srv.Serve(ln) }()
		t.Cleanup(func() { _ = srv.Close() })
		eps = append(eps, lb.Endpoint{Addr: ln.Addr().String()})
	}
	tr, bal := newTestTransport(t, lb.RoundRobin{}, eps, nil,
		lb.WithProtocols(lb.Protocols{UnencryptedHTTP2: true, HTTP2SendPingTimeout: time.Second, HTTP2PingTimeout: time.Second}))
	c := &http.Client{Transport: tr}
	for i := 0; i < 10; i++ {
		code, body, err := trGet(t, c, "http://svc.internal/")
		require.NoError(t, err)
		assert.Equal(t, 200, code)
		assert.Equal(t, "HTTP/2.0", body)
	}
	for _, s := range bal.Stats() {
		assert.Positive(t, s.Successes, "both backends served")
	}
	// Without it, the same backends refuse HTTP/1 (a failed attempt, not
	// a crash).
	tr1, _ := newTestTransport(t, lb.RoundRobin{}, eps, nil)
	_, _, err := trGet(t, &http.Client{Transport: tr1}, "http://svc.internal/")
	assert.Error(t, err)
}

// HTTP/2 over TLS is negotiated by the default base's own handshake, and
// Protocols can turn it off.
func TestTransportHTTP2OverTLS(t *testing.T) {
	t.Parallel()
	pool, cert := testCA(t, "api.internal")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, r.Proto)
	}), TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}}}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() { _ = srv.Close() })
	eps := []lb.Endpoint{{Addr: ln.Addr().String()}}
	for _, tt := range []struct {
		p    lb.Protocols
		want string
	}{{lb.Protocols{}, "HTTP/2.0"}, {lb.Protocols{HTTP1: true, HTTP2: true}, "HTTP/2.0"}, {lb.Protocols{HTTP1: true}, "HTTP/1.1"}} {
		opts := []lb.TransportOption{lb.WithTLSClientConfig(&tls.Config{RootCAs: pool})}
		if tt.p != (lb.Protocols{}) {
			opts = append(opts, lb.WithProtocols(tt.p))
		}
		tr, _ := newTestTransport(t, lb.RoundRobin{}, eps, nil, opts...)
		_, body, err := trGet(t, &http.Client{Transport: tr}, "https://api.internal/")
		require.NoError(t, err)
		assert.Equal(t, tt.want, body, "%+v", tt.p)
	}
	bal, err := lb.NewBalancer(lb.RoundRobin{}, lb.WithEndpoints(eps))
	require.NoError(t, err)
	defer bal.Close()
	for _, opts := range [][]lb.TransportOption{
		{lb.WithProtocols(lb.Protocols{HTTP2PingTimeout: time.Second})}, // no protocol allowed
		{lb.WithProtocols(lb.Protocols{HTTP1: true, HTTP2MaxReadFrameSize: -1})},
		{lb.WithBase(http.DefaultTransport), lb.WithProtocols(lb.Protocols{HTTP1: true})},
	} {
		_, err := lb.NewTransport(bal, opts...)
		assert.ErrorIs(t, err, lb.ErrInvalidConfig)
	}
}
