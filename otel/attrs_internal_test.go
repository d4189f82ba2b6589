package lbotel

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"syscall"
	"testing"

	"github.com/go-lb/lb"
	"github.com/stretchr/testify/assert"
	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
)

func TestErrorType(t *testing.T) {
	t.Parallel()
	dial := func(errno syscall.Errno) error {
		return &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", errno)}
	}
	tests := []struct {
		give error
		want string
	}{
		{fmt.Errorf("attempt: %w", lb.ErrPerTryTimeout), "per_try_timeout"},
		{fmt.Errorf("read: %w", lb.ErrBodyStalled), "body_stalled"},
		{lb.ErrHedgeLost, "hedge_lost"},
		{context.Canceled, "canceled"},
		{context.DeadlineExceeded, "timeout"},
		{fmt.Errorf("pick: %w", lb.ErrNoEndpoints), "no_endpoints"},
		{lb.ErrClosed, "balancer_closed"},
		{fmt.Errorf("%w: bad header", lb.ErrInvalidRequest), "invalid_request"},
		{lb.ErrUnknownHost, "unknown_host"},
		{dial(syscall.ECONNREFUSED), "connection_refused"},
		{&net.OpError{Op: "read", Err: os.NewSyscallError("read", syscall.ECONNRESET)}, "connection_reset"},
		{&net.OpError{Op: "write", Err: os.NewSyscallError("write", syscall.EPIPE)}, "connection_reset"},
		{io.ErrUnexpectedEOF, "connection_closed"},
		{fmt.Errorf("http: %w", io.EOF), "connection_closed"},
		{&net.OpError{Op: "dial", Err: &net.DNSError{Err: "no such host", Name: "x.invalid", IsNotFound: true}}, "name_resolution_error"},
		{fmt.Errorf("tls: %w", x509.UnknownAuthorityError{}), "tls_error"},
		{&net.OpError{Op: "read", Err: os.ErrDeadlineExceeded}, "timeout"},
		{errors.New("boom"), "*errors.errorString"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, errorType(tt.give), "%v", tt.give)
	}
}

func TestMethod(t *testing.T) {
	t.Parallel()
	tests := []struct{ give, want string }{
		{"", "GET"},
		{"GET", "GET"},
		{"POST", "POST"},
		{"QUERY", "QUERY"},
		{"PATCH", "PATCH"},
		{"get", "_OTHER"},
		{"PURGE", "_OTHER"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, method(tt.give), tt.give)
	}
}

func TestSplitAddr(t *testing.T) {
	t.Parallel()
	tests := []struct {
		give string
		want []attribute.KeyValue
	}{
		{"10.0.0.1:8080", []attribute.KeyValue{semconv.ServerAddress("10.0.0.1"), semconv.ServerPort(8080)}},
		{"[::1]:443", []attribute.KeyValue{semconv.ServerAddress("::1"), semconv.ServerPort(443)}},
		{"users.internal:http", []attribute.KeyValue{semconv.ServerAddress("users.internal"), semconv.ServerPort(80)}},
		{"users.internal:no-such-service-here", []attribute.KeyValue{semconv.ServerAddress("users.internal")}},
		{"no-port", []attribute.KeyValue{semconv.ServerAddress("no-port")}},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, serverAttrs(splitAddr(tt.give)), tt.give)
	}
}

func TestOutcomeAttrs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		give    int
		giveErr string
		want    []attribute.KeyValue
	}{
		{200, "", []attribute.KeyValue{semconv.HTTPResponseStatusCode(200)}},
		{302, "", []attribute.KeyValue{semconv.HTTPResponseStatusCode(302)}},
		{404, "", []attribute.KeyValue{semconv.HTTPResponseStatusCode(404), semconv.ErrorTypeKey.String("404")}},
		{503, "", []attribute.KeyValue{semconv.HTTPResponseStatusCode(503), semconv.ErrorTypeKey.String("503")}},
		{200, "body_stalled", []attribute.KeyValue{semconv.HTTPResponseStatusCode(200), semconv.ErrorTypeKey.String("body_stalled")}},
		{0, "connection_refused", []attribute.KeyValue{semconv.ErrorTypeKey.String("connection_refused")}},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, outcomeAttrs(tt.give, tt.giveErr), "%d %s", tt.give, tt.giveErr)
	}
}

// TestSetCacheStartsOver checks that the cache of attribute sets is
// bounded: past maxCached entries it starts over.
func TestSetCacheStartsOver(t *testing.T) {
	t.Parallel()
	var c setCache[int, int]
	made := 0
	mk := func(k int) int { made++; return k * 2 }
	for k := range maxCached {
		assert.Equal(t, 2*k, c.get(k, mk))
	}
	assert.Equal(t, 2, c.get(1, mk), "a hit")
	assert.Equal(t, maxCached, made)
	c.get(maxCached, mk)
	assert.Len(t, c.m, 1, "full: started over")
	c.get(1, mk)
	assert.Equal(t, maxCached+2, made, "an old entry is made again")
}

// TestDocumented checks that the package documentation's tables name
// every instrument with its unit.
func TestDocumented(t *testing.T) {
	t.Parallel()
	src, err := os.ReadFile("doc.go")
	if !assert.NoError(t, err) {
		return
	}
	for _, s := range append(append([]instSpec(nil), backendSpecs...), transportSpecs...) {
		assert.Regexp(t, `(?m)^//\t`+regexp.QuoteMeta(s.name)+` +\S+ +`+regexp.QuoteMeta(s.unit)+` `, string(src), s.name)
	}
	assert.Contains(t, string(src), "http.client.request.duration  AttemptObserver")
	assert.Contains(t, string(src), RequestDurationName+"    RoundTripper")
}
