package lbotel_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-lb/lb"
	lbotel "github.com/go-lb/lb/otel"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
)

// svcAttrs are the attributes of a request to http://svc.test/ with
// method m, plus kvs.
func svcAttrs(m string, kvs ...attribute.KeyValue) attribute.Distinct {
	return set(append(kvs, semconv.ServerAddress("svc.test"), semconv.ServerPort(80), semconv.HTTPRequestMethodKey.String(m), semconv.URLScheme("http"))...)
}

// stallAfterHead sends headers and two bytes, then stalls until the
// client goes away.
func stallAfterHead(w http.ResponseWriter, req *http.Request) {
	io.WriteString(w, "ab")
	w.(http.Flusher).Flush()
	hang(w, req)
}

// TestRequestBodyStall: a body that stalls after its headers ends the
// request with error.type body_stalled; the attempt ended well, at its
// headers.
func TestRequestBodyStall(t *testing.T) {
	r := newReader(t)
	be := startBackend(t, stallAfterHead)
	bal := newBalancer(t, []string{be.addr()})
	tr := instrumented(t, r, bal, nil, lb.WithBodyIdleTimeout(50*time.Millisecond))
	rt, err := lbotel.RoundTripper(tr, lbotel.WithMeterProvider(r.mp))
	require.NoError(t, err)

	resp, err := (&http.Client{Transport: rt}).Get("http://svc.test/")
	require.NoError(t, err)
	_, err = io.ReadAll(resp.Body)
	require.ErrorIs(t, err, lb.ErrBodyStalled)
	require.NoError(t, resp.Body.Close())

	c := r.collect(t)
	ok200 := semconv.HTTPResponseStatusCode(200)
	assert.Equal(t, map[attribute.Distinct]uint64{svcAttrs("GET", ok200, semconv.ErrorTypeKey.String("body_stalled")): 1},
		c.counts(t, lbotel.RequestDurationName))
	h, p := hostPort(t, be.addr())
	assert.Equal(t, map[attribute.Distinct]uint64{
		set(semconv.ServerAddress(h), semconv.ServerPort(p), semconv.HTTPRequestMethodGet, semconv.URLScheme("http"), ok200, attribute.String("lb.attempt.kind", "first")): 1,
	}, c.counts(t, "http.client.request.duration"))
	assert.Equal(t, map[attribute.Distinct]int64{set(): 1}, c.ints(t, "lb.transport.body_stalls"))
	bs := set(semconv.ServerAddress(h), semconv.ServerPort(p))
	assert.Equal(t, map[attribute.Distinct]int64{bs: 1}, c.ints(t, "lb.backend.failures"), "a stall is the backend's failure")
	d := c.hist(t, lbotel.RequestDurationName)[svcAttrs("GET", ok200, semconv.ErrorTypeKey.String("body_stalled"))]
	least, _ := d.Min.Value()
	assert.GreaterOrEqual(t, least, 0.05*0.9, "the request lasted until the stall was called")
}

// TestRequestEnds covers how a request's measurement ends: a body read
// to its end, one closed early, none (HEAD), a method the conventions do
// not know, the caller's cancelled context, and a refused request.
func TestRequestEnds(t *testing.T) {
	r := newReader(t)
	be := startBackend(t, func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path == "/stall" {
			stallAfterHead(w, req)
			return
		}
		io.WriteString(w, "hello")
	})
	bal := newBalancer(t, []string{be.addr()})
	tr, err := lb.NewTransport(bal, lb.WithHosts("svc.test"))
	require.NoError(t, err)
	closeIdle(t, tr)
	rt, err := lbotel.RoundTripper(tr, lbotel.WithMeterProvider(r.mp), lbotel.WithService("svc"))
	require.NoError(t, err)
	client := &http.Client{Transport: rt}
	svc := semconv.ServicePeerName("svc")
	ok200 := semconv.HTTPResponseStatusCode(200)

	send := func(ctx context.Context, method, url string) *http.Response {
		req, err := http.NewRequestWithContext(ctx, method, url, nil)
		require.NoError(t, err)
		resp, err := client.Do(req)
		require.NoError(t, err)
		return resp
	}
	// Read to the end: recorded at io.EOF, before Close.
	resp := send(context.Background(), "GET", "http://svc.test/")
	_, err = io.ReadAll(resp.Body)
	require.NoError(t, err)
	assert.Equal(t, map[attribute.Distinct]uint64{svcAttrs("GET", ok200, svc): 1}, r.collect(t).counts(t, lbotel.RequestDurationName))
	require.NoError(t, resp.Body.Close())
	// Closed early: recorded at Close, no error.
	resp = send(context.Background(), "GET", "http://svc.test/")
	assert.Equal(t, map[attribute.Distinct]uint64{svcAttrs("GET", ok200, svc): 1}, r.collect(t).counts(t, lbotel.RequestDurationName), "not yet")
	require.NoError(t, resp.Body.Close())
	require.NoError(t, resp.Body.Close())
	// HEAD: no body, recorded at once.
	resp = send(context.Background(), "HEAD", "http://svc.test/")
	require.NoError(t, resp.Body.Close())
	// PURGE: a method the conventions do not know.
	resp = send(context.Background(), "PURGE", "http://svc.test/")
	_, err = io.Copy(io.Discard, resp.Body)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	// The caller gives up on a stalled body.
	ctx, cancel := context.WithCancel(context.Background())
	resp = send(ctx, "GET", "http://svc.test/stall")
	buf := make([]byte, 2)
	_, err = io.ReadFull(resp.Body, buf)
	require.NoError(t, err)
	cancel()
	_, err = io.ReadAll(resp.Body)
	require.ErrorIs(t, err, context.Canceled)
	require.NoError(t, resp.Body.Close())
	// A host the Transport does not serve: refused, no response.
	_, err = client.Get("http://other.test/")
	require.ErrorIs(t, err, lb.ErrUnknownHost)

	assert.Equal(t, map[attribute.Distinct]uint64{
		svcAttrs("GET", ok200, svc):                                          2,
		svcAttrs("HEAD", ok200, svc):                                         1,
		svcAttrs("_OTHER", ok200, svc):                                       1,
		svcAttrs("GET", ok200, svc, semconv.ErrorTypeKey.String("canceled")): 1,
		set(semconv.ServerAddress("other.test"), semconv.ServerPort(80), semconv.HTTPRequestMethodGet, semconv.URLScheme("http"),
			svc, semconv.ErrorTypeKey.String("unknown_host")): 1,
	}, r.collect(t).counts(t, lbotel.RequestDurationName))
}

// TestRequestUpgrade: a 101 Switching Protocols response keeps its body,
// the connection, writable; the request is recorded when the protocol
// switches.
func TestRequestUpgrade(t *testing.T) {
	r := newReader(t)
	be := startBackend(t, func(w http.ResponseWriter, _ *http.Request) {
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
		brw.Flush()
		line, err := brw.ReadString('\n')
		if err != nil {
			return
		}
		brw.WriteString(line)
		brw.Flush()
	})
	bal := newBalancer(t, []string{be.addr()})
	tr, err := lb.NewTransport(bal)
	require.NoError(t, err)
	closeIdle(t, tr)
	rt, err := lbotel.RoundTripper(tr, lbotel.WithMeterProvider(r.mp))
	require.NoError(t, err)

	req, err := http.NewRequest("GET", "http://svc.test/echo", nil)
	require.NoError(t, err)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "echo")
	resp, err := (&http.Client{Transport: rt}).Do(req)
	require.NoError(t, err)
	require.Equal(t, http.StatusSwitchingProtocols, resp.StatusCode)
	assert.Equal(t, map[attribute.Distinct]uint64{svcAttrs("GET", semconv.HTTPResponseStatusCode(101)): 1},
		r.collect(t).counts(t, lbotel.RequestDurationName))
	rw, isRW := resp.Body.(io.ReadWriteCloser)
	require.True(t, isRW, "the upgraded body is the connection")
	_, err = io.WriteString(rw, "ping\n")
	require.NoError(t, err)
	line, err := bufio.NewReader(rw).ReadString('\n')
	require.NoError(t, err)
	assert.Equal(t, "ping\n", line)
	require.NoError(t, rw.Close())
}

// TestRequestCloseIdleConnections: http.Client.CloseIdleConnections
// reaches the Transport through the RoundTripper.
func TestRequestCloseIdleConnections(t *testing.T) {
	var closed atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(ok))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateClosed {
			closed.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	bal := newBalancer(t, []string{srv.Listener.Addr().String()})
	tr, err := lb.NewTransport(bal)
	require.NoError(t, err)
	closeIdle(t, tr)
	rt, err := lbotel.RoundTripper(tr, lbotel.WithMeterProvider(newReader(t).mp))
	require.NoError(t, err)
	client := &http.Client{Transport: rt}
	_, errs := get(t, rt, "/", 1)
	require.Empty(t, errs)
	require.Zero(t, closed.Load(), "the connection is idle, kept")
	client.CloseIdleConnections()
	require.Eventually(t, func() bool { return closed.Load() == 1 }, 5*time.Second, time.Millisecond)
}

// TestBadInput: every constructor refuses bad input with an error that
// wraps lb.ErrInvalidConfig and says what is wrong.
func TestBadInput(t *testing.T) {
	t.Parallel()
	bal := newBalancer(t, []string{"127.0.0.1:1"})
	mp := lbotel.WithMeterProvider(newReader(t).mp)
	tests := []struct {
		name string
		give func() error
		want string
	}{
		{"Instrument(nil, nil)", func() error { _, err := lbotel.Instrument(nil, nil, mp); return err }, "needs a Balancer or a Transport"},
		{"RoundTripper(nil)", func() error { _, err := lbotel.RoundTripper(nil, mp); return err }, "needs the RoundTripper to wrap"},
		{"RoundTripper(nil *lb.Transport)", func() error { _, err := lbotel.RoundTripper((*lb.Transport)(nil), mp); return err }, "needs the RoundTripper to wrap"},
		{"a reserved attribute", func() error {
			_, err := lbotel.Instrument(bal, nil, mp, lbotel.WithAttributes(semconv.ServerAddress("x")))
			return err
		}, `attribute "server.address" is set by lbotel`},
		{"an invalid attribute", func() error {
			_, err := lbotel.AttemptObserver(mp, lbotel.WithAttributes(attribute.KeyValue{}))
			return err
		}, "is not valid"},
		{"lb.attempt.kind", func() error {
			_, err := lbotel.RoundTripper(http.DefaultTransport, mp, lbotel.WithAttributes(attribute.String("lb.attempt.kind", "x")))
			return err
		}, `"lb.attempt.kind" is set by lbotel`},
	}
	for _, tt := range tests {
		err := tt.give()
		require.Error(t, err, tt.name)
		assert.True(t, errors.Is(err, lb.ErrInvalidConfig), "%s: %v", tt.name, err)
		assert.Contains(t, err.Error(), tt.want, tt.name)
	}
}
