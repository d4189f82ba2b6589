package lbgrpc_test

import (
	"context"
	"testing"
	"time"

	"github.com/go-lb/lb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// TestCallerEndsNotCharged: calls the caller cancels, or whose deadline
// passes, while the server works on them, count as neither success nor
// failure: with outlier detection ejecting on a single failure, the
// backend stays in, and its counters show nothing but the end of the
// picks.
func TestCallerEndsNotCharged(t *testing.T) {
	t.Parallel()
	s := startServer(t, "s")
	c := newClient(t, serviceConfig(`{"outlierDetection": {"consecutiveFailures": 1}}`), endpointsOf(s))
	c.warm(s)
	base := c.stats()["s"]
	hang := metadata.Pairs(hangHeader, "1")

	const rounds = 5
	for i := 0; i < rounds; i++ {
		ctx, cancel := context.WithCancel(metadata.NewOutgoingContext(context.Background(), hang))
		errc := make(chan error, 1)
		go func() {
			_, err := c.call(ctx)
			errc <- err
		}()
		<-s.hanging // the server has the call
		cancel()
		assert.Equal(t, codes.Canceled, status.Code(<-errc))

		// The deadline passes while the server works (or, on a machine
		// so slow that it passes before, while the call is on its way).
		ctx, cancel = context.WithTimeout(metadata.NewOutgoingContext(context.Background(), hang), 50*time.Millisecond)
		_, err := c.call(ctx)
		cancel()
		assert.Equal(t, codes.DeadlineExceeded, status.Code(err))
	}
	require.Eventually(t, func() bool { return c.stats()["s"].InFlight == 0 }, 5*time.Second, time.Millisecond)
	got := c.stats()["s"]
	assert.Equal(t, base.Failures, got.Failures, "failures charged for the caller's ends")
	assert.Equal(t, base.Successes, got.Successes, "successes counted for the caller's ends")
	assert.False(t, got.Ejected)
	assert.Zero(t, got.Ejections)
	assert.GreaterOrEqual(t, s.calls.Load()-int64(base.Successes), int64(rounds), "the server had the calls")
}

// TestStatusCodesCharged: the status a real server answers with decides
// whether lb counts a failure (the package documentation's table), and
// failureCodes changes which codes do.
func TestStatusCodesCharged(t *testing.T) {
	t.Parallel()
	tests := []struct {
		config string
		give   codes.Code
		want   string // "failure", "success" or "uncharged"
	}{
		{`{}`, codes.Unavailable, "failure"},
		{`{}`, codes.DeadlineExceeded, "failure"}, // the server's, while the caller waits
		{`{}`, codes.InvalidArgument, "success"},
		{`{}`, codes.NotFound, "success"},
		{`{}`, codes.PermissionDenied, "success"},
		{`{}`, codes.ResourceExhausted, "success"},
		{`{}`, codes.Internal, "success"},
		{`{}`, codes.Unknown, "success"},
		{`{}`, codes.Canceled, "uncharged"},
		{`{"failureCodes": ["INTERNAL", "RESOURCE_EXHAUSTED"]}`, codes.Internal, "failure"},
		{`{"failureCodes": ["INTERNAL", "RESOURCE_EXHAUSTED"]}`, codes.ResourceExhausted, "failure"},
		{`{"failureCodes": ["INTERNAL", "RESOURCE_EXHAUSTED"]}`, codes.Unavailable, "success"},
	}
	s := startServer(t, "s")
	clients := map[string]*testClient{}
	for _, tt := range tests {
		if clients[tt.config] == nil {
			clients[tt.config] = newClient(t, serviceConfig(tt.config), endpointsOf(s))
			clients[tt.config].warm(s)
		}
	}
	for _, tt := range tests {
		t.Run(tt.config+" "+tt.give.String(), func(t *testing.T) {
			c := clients[tt.config]
			before := c.stats()["s"]
			_, err := c.tc.UnaryCall(context.Background(), &testgrpc.SimpleRequest{
				ResponseStatus: &testgrpc.EchoStatus{Code: int32(tt.give), Message: "as asked"}})
			require.Equal(t, tt.give, status.Code(err))
			var after lb.Stats
			require.Eventually(t, func() bool { after = c.stats()["s"]; return after.InFlight == 0 }, 5*time.Second, time.Millisecond)
			got := "uncharged"
			switch {
			case after.Failures == before.Failures+1 && after.Successes == before.Successes:
				got = "failure"
			case after.Successes == before.Successes+1 && after.Failures == before.Failures:
				got = "success"
			case after.Successes != before.Successes || after.Failures != before.Failures:
				got = "more than one outcome"
			}
			assert.Equal(t, tt.want, got)
		})
	}
}
