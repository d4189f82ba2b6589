package zookeeper_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-lb/lb"
	"github.com/go-lb/lb/discovery/zookeeper"
	"github.com/go-lb/lb/internal/resolvertest"
)

// End to end: HTTP backends on loopback register themselves, each through
// a connection of its own (as separate processes would); a client follows
// the path into a Balancer and sends requests through lb's Transport. A
// backend that deregisters stops getting requests; one that registers
// starts getting them.
func TestEndToEnd(t *testing.T) {
	t.Parallel()
	p := resolvertest.Uniq("/e2e/api")
	type backend struct {
		srv *httptest.Server
		reg *zookeeper.Registration
	}
	start := func(name string) backend {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			_, _ = io.WriteString(w, name)
		}))
		t.Cleanup(srv.Close)
		reg, err := zookeeper.Register(context.Background(), connectShared(t), p,
			lb.Endpoint{Addr: srv.Listener.Addr().String()}, zookeeper.RegisterOptions{})
		require.NoError(t, err)
		t.Cleanup(func() { _ = reg.Close() })
		return backend{srv, reg}
	}
	b1 := start("b1")
	start("b2")

	bal, err := lb.NewBalancer(lb.RoundRobin{})
	require.NoError(t, err)
	defer bal.Close()
	f := lb.StartFollower(context.Background(), zookeeper.Resolver{Servers: []string{exampleZK}, Path: p}, bal)
	defer f.Stop()
	select {
	case <-f.Ready():
	case <-f.Done():
		t.Fatal(f.Err())
	}
	tr, err := lb.NewTransport(bal)
	require.NoError(t, err)
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	// served sends n requests and returns which backends served them.
	served := func(n int) []string {
		got := map[string]int{}
		for i := 0; i < n; i++ {
			resp, err := client.Get("http://api.internal/")
			require.NoError(t, err)
			body, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			resp.Body.Close()
			got[string(body)]++
		}
		names := make([]string, 0, len(got))
		for name := range got {
			names = append(names, name)
		}
		sort.Strings(names)
		return names
	}
	assert.Equal(t, []string{"b1", "b2"}, served(20))

	require.NoError(t, b1.reg.Close())
	resolvertest.WaitFor(t, "b1 to leave", func() bool { return len(bal.Backends()) == 1 })
	assert.Equal(t, []string{"b2"}, served(20))

	start("b3")
	resolvertest.WaitFor(t, "b3 to join", func() bool { return len(bal.Backends()) == 2 })
	assert.Equal(t, []string{"b2", "b3"}, served(20))
	require.NoError(t, f.Stop())
}
