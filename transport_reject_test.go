package lb_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-lb/lb"
)

// Requests net/http would refuse to send are refused before a pick, with
// an error that says why; they are never retried and never count against
// a backend: with ejection after one failure, no backend is ejected.
func TestTransportRefusesWhatNetHTTPWould(t *testing.T) {
	t.Parallel()
	backs, eps := startTBackends(t, 2)
	od := lb.OutlierDetection{ConsecutiveFailures: 1, BaseEjectionTime: time.Hour, MaxEjectionPercent: 100}
	tr, bal := newTestTransport(t, lb.P2C{}, eps, []lb.Option{lb.WithOutlierDetection(od)})
	base := func() *http.Request {
		r, err := http.NewRequest(http.MethodGet, "http://svc.internal/x", nil)
		require.NoError(t, err)
		return r
	}
	tests := []struct {
		name string
		give func() *http.Request
		want string
	}{
		{"newline in a header value", func() *http.Request {
			r := base()
			r.Header.Set("X-Note", "a\r\nInjected: yes")
			return r
		}, "invalid header field value"},
		{"NUL in a header value", func() *http.Request { r := base(); r.Header["X-A"] = []string{"a\x00b"}; return r }, "invalid header field value"},
		{"space in a header name", func() *http.Request { r := base(); r.Header["Bad Name"] = []string{"v"}; return r }, "invalid header field name"},
		{"empty header name", func() *http.Request { r := base(); r.Header[""] = []string{"v"}; return r }, "invalid header field name"},
		{"invalid method", func() *http.Request { r := base(); r.Method = "GET X"; return r }, "invalid method"},
		{"method with a newline", func() *http.Request { r := base(); r.Method = "GET\n"; return r }, "invalid method"},
		{"gopher scheme", func() *http.Request { r := base(); r.URL.Scheme = "gopher"; return r }, "unsupported protocol scheme"},
		{"no scheme", func() *http.Request { r := base(); r.URL.Scheme = ""; return r }, "no scheme"},
		{"Host with a space", func() *http.Request { r := base(); r.Host = "svc internal"; return r }, "invalid Host"},
		{"Host with a newline", func() *http.Request { r := base(); r.Host = "svc\r\nX: y"; return r }, "invalid Host"},
		{"ContentLength with no body", func() *http.Request { r := base(); r.ContentLength = 10; return r }, "nil Body"},
		{"bad trailer", func() *http.Request {
			r := base()
			r.Trailer = http.Header{"X-T": {"a\nb"}}
			return r
		}, "invalid trailer field value"},
		{"nil header", func() *http.Request { r := base(); r.Header = nil; return r }, "nil Header"},
	}
	for _, tt := range tests {
		for i := 0; i < 3; i++ {
			_, err := tr.RoundTrip(tt.give())
			require.Error(t, err, tt.name)
			assert.ErrorIs(t, err, lb.ErrInvalidRequest, tt.name)
			assert.ErrorIs(t, err, lb.ErrNotSent, tt.name)
			assert.NotErrorIs(t, err, lb.ErrMaybeExecuted, tt.name)
			assert.Contains(t, err.Error(), tt.want, tt.name)
		}
	}
	_, err := tr.RoundTrip(nil)
	assert.ErrorIs(t, err, lb.ErrInvalidRequest)
	for _, s := range bal.Stats() {
		assert.Zero(t, s.Picks, "%s: no pick for a refused request", s.Endpoint.Addr)
		assert.Zero(t, s.Failures)
		assert.False(t, s.Ejected)
	}
	for _, b := range backs {
		assert.Zero(t, b.executed.Load())
	}
	// The same Transport still serves valid requests.
	code, _, err := trGet(t, &http.Client{Transport: tr}, "http://svc.internal/")
	require.NoError(t, err)
	assert.Equal(t, 200, code)
}

// errReader fails after giving some bytes.
type errReader struct {
	data []byte
	err  error
}

func (r *errReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, r.err
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

// A body that fails on the caller's side (a read error, fewer or more
// bytes than ContentLength) is the caller's failure: not retried, not the
// backend's failure, and the error says so.
func TestTransportCallerBodyFailures(t *testing.T) {
	t.Parallel()
	errDisk := errors.New("disk on fire")
	tests := []struct {
		name   string
		give   func() *http.Request
		wantIs error
	}{
		{"read error, no GetBody", func() *http.Request {
			r, _ := http.NewRequest(http.MethodPut, "http://svc.internal/", io.NopCloser(&errReader{data: []byte("part"), err: errDisk}))
			return r
		}, errDisk},
		{"read error, with GetBody", func() *http.Request {
			r, _ := http.NewRequest(http.MethodPut, "http://svc.internal/", bytes.NewReader([]byte("x")))
			mk := func() (io.ReadCloser, error) {
				return io.NopCloser(&errReader{data: []byte("part"), err: errDisk}), nil
			}
			r.Body, _ = mk()
			r.GetBody = mk
			r.ContentLength = -1
			return r
		}, errDisk},
		{"shorter than ContentLength", func() *http.Request {
			r, _ := http.NewRequest(http.MethodPut, "http://svc.internal/", strings.NewReader("abc"))
			r.ContentLength = 10
			return r
		}, lb.ErrInvalidRequest},
		{"longer than ContentLength", func() *http.Request {
			r, _ := http.NewRequest(http.MethodPut, "http://svc.internal/", strings.NewReader("abcdefghijkl"))
			r.ContentLength = 4
			r.GetBody = nil
			r.Body = io.NopCloser(strings.NewReader("abcdefghijkl"))
			return r
		}, nil}, // net/http notices the extra bytes only if the response has not come first
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, eps := startTBackends(t, 3)
			od := lb.OutlierDetection{ConsecutiveFailures: 1, BaseEjectionTime: time.Hour, MaxEjectionPercent: 100}
			tr, bal := newTestTransport(t, lb.RoundRobin{}, eps, []lb.Option{lb.WithOutlierDetection(od)})
			for i := 0; i < 3; i++ {
				resp, err := tr.RoundTrip(tt.give())
				if tt.wantIs == nil && err == nil {
					resp.Body.Close()
					continue
				}
				require.Error(t, err)
				if tt.wantIs != nil {
					assert.ErrorIs(t, err, tt.wantIs)
				}
				assert.ErrorIs(t, err, lb.ErrInvalidRequest)
				var le *lb.Error
				require.ErrorAs(t, err, &le)
				assert.Len(t, le.Attempts, 1, "not retried")
			}
			for _, s := range bal.Stats() {
				assert.Zero(t, s.Failures, "%s is not blamed", s.Endpoint.Addr)
				assert.False(t, s.Ejected)
				assert.Zero(t, s.InFlight)
			}
			assert.Zero(t, tr.Stats().Retries)
		})
	}
}

// WithHosts pins a Transport to its service: a redirect to another site,
// or a call to another host through the same client, is not sent to the
// backends; it goes to the fallback, or is refused.
func TestTransportHosts(t *testing.T) {
	t.Parallel()
	backs, eps := startTBackends(t, 2)
	other := startTBackend(t, "elsewhere")

	t.Run("refused without a fallback", func(t *testing.T) {
		tr, bal := newTestTransport(t, lb.RoundRobin{}, eps, nil, lb.WithHosts("users.internal", "api.internal:8443"))
		c := &http.Client{Transport: tr}
		for _, u := range []string{"https://api.github.com/repos", "http://api.internal/", "http://users.internal.evil.com/"} {
			_, err := c.Get(u)
			require.Error(t, err, u)
			assert.ErrorIs(t, err, lb.ErrUnknownHost, u)
			assert.ErrorIs(t, err, lb.ErrNotSent, u)
		}
		for _, s := range bal.Stats() {
			assert.Zero(t, s.Picks)
		}
		for _, b := range backs {
			assert.Zero(t, b.executed.Load())
		}
		for _, u := range []string{"http://users.internal/", "http://USERS.internal:9999/x", "https://api.internal:8443/", "https://api.internal.:8443/"} {
			req, _ := http.NewRequest(http.MethodGet, u, nil)
			assert.True(t, servedHost(tr, req), u)
		}
	})

	t.Run("a redirect to another host", func(t *testing.T) {
		for _, b := range backs {
			b.mu.Lock()
			b.handler = func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, "http://"+other.addr+"/landing", http.StatusFound)
			}
			b.mu.Unlock()
		}
		defer func() {
			for _, b := range backs {
				b.mu.Lock()
				b.handler = nil
				b.mu.Unlock()
			}
		}()
		tr, _ := newTestTransport(t, lb.RoundRobin{}, eps, nil, lb.WithHosts("users.internal"))
		_, err := (&http.Client{Transport: tr}).Get("http://users.internal/login")
		assert.ErrorIs(t, err, lb.ErrUnknownHost, "the redirect is refused, not sent to the pool")

		tr2, _ := newTestTransport(t, lb.RoundRobin{}, eps, nil, lb.WithHosts("users.internal"), lb.WithFallback(http.DefaultTransport))
		resp, err := (&http.Client{Transport: tr2}).Get("http://users.internal/login")
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		assert.Equal(t, "elsewhere", string(body), "the fallback followed the redirect to its own host")
	})

	t.Run("bad options", func(t *testing.T) {
		bal, err := lb.NewBalancer(lb.RoundRobin{}, lb.WithEndpoints(eps))
		require.NoError(t, err)
		defer bal.Close()
		for _, opts := range [][]lb.TransportOption{
			{lb.WithHosts()},
			{lb.WithHosts("")},
			{lb.WithHosts("http://users.internal")},
			{lb.WithHosts("users.internal:0")},
			{lb.WithHosts("users internal")},
			{lb.WithFallback(http.DefaultTransport)},
		} {
			_, err := lb.NewTransport(bal, opts...)
			assert.ErrorIs(t, err, lb.ErrInvalidConfig)
		}
	})
}

// servedHost reports whether tr sends req to its backends (a request
// whose context is done fails after the host check, before any backend is
// tried).
func servedHost(tr *lb.Transport, req *http.Request) bool {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := tr.RoundTrip(req.WithContext(ctx))
	return !errors.Is(err, lb.ErrUnknownHost)
}

// Byte for byte, the Transport refuses the header names, header values and
// methods that net/http's own Transport refuses to send, and no others:
// each of the 256 bytes in each place, sent through a plain
// http.Transport to a loopback server and through lb's. A Host header
// net/http would not send as given (it blanks an invalid one, and refuses
// it through a proxy) lb refuses, saying so, and it refuses no other.
func TestTransportRefusesByteForByteAsNetHTTP(t *testing.T) {
	t.Parallel()
	var received atomic.Int64
	var seenHost atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seenHost.Store(r.Host)
		received.Add(1)
	}))
	defer srv.Close()
	plain := &http.Transport{}
	defer plain.CloseIdleConnections()
	bal, err := lb.NewBalancer(lb.RoundRobin{}, lb.WithEndpoints(lb.Addrs(srv.Listener.Addr().String())))
	require.NoError(t, err)
	defer bal.Close()
	tr, err := lb.NewTransport(bal)
	require.NoError(t, err)
	defer tr.CloseIdleConnections()
	send := func(rt http.RoundTripper, r *http.Request) error {
		resp, err := rt.RoundTrip(r)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		return err
	}

	places := []struct {
		name string
		set  func(r *http.Request, b byte)
	}{
		{"header name", func(r *http.Request, b byte) { r.Header["X-"+string([]byte{b})+"y"] = []string{"v"} }},
		{"header value", func(r *http.Request, b byte) { r.Header["X-V"] = []string{"a" + string([]byte{b}) + "b"} }},
		{"Host", func(r *http.Request, b byte) { r.Host = "svc" + string([]byte{b}) + "internal" }},
		{"method", func(r *http.Request, b byte) { r.Method = "GE" + string([]byte{b}) + "T" }},
	}
	for _, pl := range places {
		for c := 0; c < 256; c++ {
			b := byte(c)
			// net/http's verdict: it refused when the server saw nothing.
			r, err := http.NewRequest(http.MethodGet, srv.URL+"/", nil)
			require.NoError(t, err)
			pl.set(r, b)
			before := received.Load()
			err = send(plain, r)
			netRefused := err != nil && received.Load() == before
			if pl.name == "Host" {
				// Not sent as given: refused, or sent blank.
				netRefused = received.Load() == before || seenHost.Load() != r.Host
			}

			r, err = http.NewRequest(http.MethodGet, "http://svc.internal/", nil)
			require.NoError(t, err)
			pl.set(r, b)
			err = send(tr, r)
			lbRefused := errors.Is(err, lb.ErrInvalidRequest)
			assert.Equal(t, netRefused, lbRefused, "%s with byte %#02x: net/http refused %v, lb refused %v (%v)", pl.name, b, netRefused, lbRefused, err)
		}
	}
	// Hosts beyond ASCII: net/http converts UTF-8 to punycode, and blanks
	// a host whose port is not ASCII. Bytes that are not UTF-8 it sends
	// as U+FFFD, losing them: lb refuses those.
	for _, h := range []string{"svcé.internal", "é:80", "[é]:80", "é:é", "é:é:é", "svc é", "é/x", "a.é.", "ß.de", "svc💥x", "\xc3", "svc\xff\xfe", "é\x80", "é:8\x80"} {
		r, err := http.NewRequest(http.MethodGet, srv.URL+"/", nil)
		require.NoError(t, err)
		r.Host = h
		before := received.Load()
		err = send(plain, r)
		sentAsGiven := received.Load() != before && seenHost.Load() != "" && utf8.ValidString(h)
		r, err = http.NewRequest(http.MethodGet, "http://svc.internal/", nil)
		require.NoError(t, err)
		r.Host = h
		err = send(tr, r)
		assert.Equal(t, !sentAsGiven, errors.Is(err, lb.ErrInvalidRequest), "Host %q: net/http sent it %v; lb: %v", h, sentAsGiven, err)
	}
	for _, s := range bal.Stats() {
		assert.Zero(t, s.Failures, "a refused request is never the backend's failure")
	}
}
