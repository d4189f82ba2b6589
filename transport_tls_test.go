package lb_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-lb/lb"
)

// testCA is a certificate authority made in the test, and a certificate it
// signed for the given DNS names (and no IP address: a check against the
// backend's address must fail).
func testCA(t *testing.T, names ...string) (*x509.CertPool, tls.Certificate) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	ca := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "lb test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	require.NoError(t, err)
	caCert, err := x509.ParseCertificate(caDER)
	require.NoError(t, err)

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: names[0]},
		DNSNames:     names,
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	return pool, tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// TestTransportTLS: backends with a certificate for the logical host are
// verified against it; the Host header and SNI are the logical name; each
// backend has its own connection pool; HTTP/2 works when offered.
func TestTransportTLS(t *testing.T) {
	t.Parallel()
	pool, cert := testCA(t, "api.internal")
	for _, h2 := range []bool{false, true} {
		name := "HTTP/1.1"
		if h2 {
			name = "HTTP/2"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var conns atomic.Int64
			var eps []lb.Endpoint
			for i := 0; i < 2; i++ {
				srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("X-Seen-Host", r.Host)
					w.Header().Set("X-SNI", r.TLS.ServerName)
					w.Header().Set("X-Proto", r.Proto)
					_, _ = io.WriteString(w, "ok")
				}))
				srv.EnableHTTP2 = h2
				srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
				srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes below
				srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
					if s == http.StateNew {
						conns.Add(1)
					}
				}
				srv.StartTLS()
				t.Cleanup(srv.Close)
				eps = append(eps, lb.Endpoint{Addr: srv.Listener.Addr().String()})
			}
			tr, bal := newTestTransport(t, lb.RoundRobin{Stripes: 1}, eps, nil,
				lb.WithTLSClientConfig(&tls.Config{RootCAs: pool}))
			c := &http.Client{Transport: tr}
			for i := 0; i < 20; i++ {
				resp, err := c.Get("https://api.internal/v1")
				require.NoError(t, err)
				_, _ = io.Copy(io.Discard, resp.Body)
				require.NoError(t, resp.Body.Close())
				assert.Equal(t, http.StatusOK, resp.StatusCode)
				assert.Equal(t, "api.internal", resp.Header.Get("X-Seen-Host"))
				assert.Equal(t, "api.internal", resp.Header.Get("X-SNI"))
				if h2 {
					assert.Equal(t, "HTTP/2.0", resp.Header.Get("X-Proto"))
				}
			}
			assert.EqualValues(t, 2, conns.Load(), "one connection per backend, reused")
			for _, s := range bal.Stats() {
				assert.EqualValues(t, 10, s.Successes)
			}

			// A name the certificate does not cover fails verification:
			// the request was never sent, and no backend counts it.
			before := conns.Load()
			_, err := c.Get("https://other.internal/v1")
			require.Error(t, err)
			assert.ErrorIs(t, err, lb.ErrNotSent)
			var verr *tls.CertificateVerificationError
			assert.ErrorAs(t, err, &verr)
			assert.Greater(t, conns.Load(), before, "the handshakes were attempted")
		})
	}
}

// A base transport of one's own is used as given: the default TLS
// handling is not applied, so with the server name left empty the check is
// against the backend's address, and fails.
func TestTransportCustomBaseTLS(t *testing.T) {
	t.Parallel()
	pool, cert := testCA(t, "api.internal")
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	base := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	t.Cleanup(base.CloseIdleConnections)
	eps := lb.Addrs(srv.Listener.Addr().String())
	tr, _ := newTestTransport(t, lb.RoundRobin{}, eps, nil, lb.WithBase(base))
	assert.Same(t, base, tr.Base())
	_, err := (&http.Client{Transport: tr}).Get("https://api.internal/")
	var verr *tls.CertificateVerificationError
	assert.ErrorAs(t, err, &verr)
	// A base of one's own proves "not sent" only by a dial error or an
	// error wrapping ErrNotSent: a certificate error is not proof (with
	// renegotiation it can come after the request was written).
	assert.ErrorIs(t, err, lb.ErrMaybeExecuted)

	base2 := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "api.internal"}}
	t.Cleanup(base2.CloseIdleConnections)
	tr2, _ := newTestTransport(t, lb.RoundRobin{}, eps, nil, lb.WithBase(base2))
	resp, err := (&http.Client{Transport: tr2}).Get("https://api.internal/")
	require.NoError(t, err, "with the server name set, it verifies")
	require.NoError(t, resp.Body.Close())
}
