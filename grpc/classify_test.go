package lbgrpc

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestClassify is the package documentation's table of whose failure a
// call's end is.
func TestClassify(t *testing.T) {
	t.Parallel()
	live := context.Background()
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	expired, cancel2 := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	t.Cleanup(cancel2)
	// A deadline that has passed while the context's timer has not fired
	// yet: the caller's deadline all the same.
	passed := deadlineOnly{time.Now().Add(-time.Millisecond)}
	future, cancel3 := context.WithTimeout(context.Background(), time.Hour)
	t.Cleanup(cancel3)

	sent := func(err error) balancer.DoneInfo {
		return balancer.DoneInfo{Err: err, BytesSent: true, BytesReceived: true}
	}
	st := func(c codes.Code) error { return status.Error(c, "x") }
	internal := codeSet(1 << codes.Internal)

	tests := []struct {
		name  string
		ctx   context.Context
		give  balancer.DoneInfo
		fails codeSet
		want  outcome
	}{
		{"ok", live, sent(nil), defaultFailures, success},
		{"not sent (re-pick)", live, balancer.DoneInfo{}, defaultFailures, uncharged},
		{"unavailable", live, sent(st(codes.Unavailable)), defaultFailures, failure},
		{"unavailable before the stream", live, balancer.DoneInfo{Err: st(codes.Unavailable)}, defaultFailures, failure},
		{"server's deadline", future, sent(st(codes.DeadlineExceeded)), defaultFailures, failure},
		{"caller's deadline", expired, sent(st(codes.DeadlineExceeded)), defaultFailures, uncharged},
		{"caller's deadline passed, timer not fired", passed, sent(st(codes.DeadlineExceeded)), defaultFailures, uncharged},
		{"caller cancelled", cancelled, sent(st(codes.Canceled)), defaultFailures, uncharged},
		{"caller cancelled, unavailable", cancelled, sent(st(codes.Unavailable)), defaultFailures, uncharged},
		{"cancelled by the server or ClientConn", live, sent(st(codes.Canceled)), defaultFailures, uncharged},
		{"invalid argument", live, sent(st(codes.InvalidArgument)), defaultFailures, success},
		{"not found", live, sent(st(codes.NotFound)), defaultFailures, success},
		{"permission denied", live, sent(st(codes.PermissionDenied)), defaultFailures, success},
		{"resource exhausted", live, sent(st(codes.ResourceExhausted)), defaultFailures, success},
		{"internal", live, sent(st(codes.Internal)), defaultFailures, success},
		{"unknown", live, sent(st(codes.Unknown)), defaultFailures, success},
		{"not a status error", live, sent(io.ErrUnexpectedEOF), defaultFailures, success},
		{"internal, configured", live, sent(st(codes.Internal)), internal, failure},
		{"unavailable, not configured", live, sent(st(codes.Unavailable)), internal, success},
		{"caller cancelled, configured", cancelled, sent(st(codes.Internal)), internal, uncharged},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, tt.want, classify(tt.ctx, tt.give, tt.fails))
		})
	}
}

// deadlineOnly is a context with a deadline and no timer: its Err stays
// nil after the deadline.
type deadlineOnly struct{ d time.Time }

func (c deadlineOnly) Deadline() (time.Time, bool) { return c.d, true }
func (c deadlineOnly) Done() <-chan struct{}       { return nil }
func (c deadlineOnly) Err() error                  { return nil }
func (c deadlineOnly) Value(any) any               { return nil }
