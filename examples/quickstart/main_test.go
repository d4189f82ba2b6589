package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// Every strategy, with a backend killed and restarted part-way: no request
// fails, and every request is counted on a backend.
func TestQuickstart(t *testing.T) {
	for _, s := range strategies {
		t.Run(s.name, func(t *testing.T) {
			var out strings.Builder
			cfg := config{strategy: s.name, requests: 600, concurrency: 8, url: "http://quickstart.internal/",
				work: 200 * time.Microsecond, slow: time.Millisecond}
			res, err := runQuickstart(context.Background(), cfg, &out)
			require.NoError(t, err)
			assert.Zero(t, res.failed, out.String())
			served := 0
			for _, r := range res.rows {
				served += r.served
			}
			assert.Equal(t, cfg.requests, served)
			require.Len(t, res.rows, 4)
			assert.Contains(t, out.String(), "600 requests, 0 failed")
			assert.Contains(t, out.String(), "killed after 180 requests, restarted after 420")
		})
	}
}

func TestQuickstartTargets(t *testing.T) {
	var srvs []string
	for i := 0; i < 2; i++ {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, r.Host)
		}))
		defer srv.Close()
		srvs = append(srvs, srv.Listener.Addr().String())
	}
	var out strings.Builder
	cfg := config{strategy: "round-robin", requests: 100, concurrency: 4, url: "http://api.internal/", targets: srvs}
	res, err := runQuickstart(context.Background(), cfg, &out)
	require.NoError(t, err)
	assert.Zero(t, res.failed)
	for _, r := range res.rows {
		// Striped round robin: counts differ by at most the stripe count.
		assert.InDelta(t, 50, r.served, 5, r.addr)
	}
	assert.NotContains(t, out.String(), "killed")
}

func TestQuickstartBadFlags(t *testing.T) {
	for _, cfg := range []config{
		{strategy: "fastest", requests: 1, concurrency: 1},
		{strategy: "p2c", requests: 0, concurrency: 1},
	} {
		_, err := runQuickstart(context.Background(), cfg, io.Discard)
		assert.Error(t, err, cfg.strategy)
	}
}
