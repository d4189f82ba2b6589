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

func TestGateway(t *testing.T) {
	for _, strategy := range []string{"round-robin", "p2c", "ring", "maglev"} {
		t.Run(strategy, func(t *testing.T) {
			var out strings.Builder
			res, err := run(context.Background(), config{strategy: strategy, requests: 30, listen: "127.0.0.1:0"}, &out)
			require.NoError(t, err)
			assert.Equal(t, 30, res.ok, out.String())
			assert.Zero(t, res.badGateway, "the dead backend costs retries, not errors")
			if strategy == "round-robin" || strategy == "p2c" {
				assert.Len(t, res.byBackend, 3, "spread over the live backends")
			}
			assert.Contains(t, out.String(), "Host api.internal", "the backends see the logical host")
			assert.Contains(t, out.String(), `msg=upstream`, "the access log middleware ran")
			assert.Regexp(t, `msg=upstream .*backend=127\.0\.0\.1:[0-9]+ status=200`, out.String(), "the access log names the backend that answered")
			assert.Regexp(t, `request [0-9a-f]{16}`, out.String(), "the request ID middleware ran")
		})
	}
}

// Serving mode stops with its context.
func TestGatewayServe(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := run(ctx, config{strategy: "p2c", listen: "127.0.0.1:0", serve: true, quiet: true}, io.Discard)
		done <- err
	}()
	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after its context ended")
	}
}

func TestRequestIDDoesNotModifyTheRequest(t *testing.T) {
	var seen string
	rt := withRequestID(roundTripperFunc(func(r *http.Request) (*http.Response, error) {
		seen = r.Header.Get("X-Request-Id")
		return httptest.NewRecorder().Result(), nil
	}))
	req := httptest.NewRequest(http.MethodGet, "http://x/", nil)
	resp, err := rt.RoundTrip(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Len(t, seen, 16)
	assert.Empty(t, req.Header.Get("X-Request-Id"), "the caller's request is untouched")
}

func TestGatewayBadFlags(t *testing.T) {
	_, err := run(context.Background(), config{strategy: "nope"}, io.Discard)
	assert.Error(t, err)
}
