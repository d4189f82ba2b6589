package lbgrpc_test

import (
	"testing"

	lbgrpc "github.com/go-lb/lb/grpc"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"google.golang.org/grpc/balancer"
)

func TestMain(m *testing.M) {
	// gRPC's registry is for start-up, before any ClientConn.
	lbgrpc.Register()
	balancer.Register(lbgrpc.NewBuilder(lbgrpc.Options{Name: testPolicy, OnBalancer: onBalancer}))
	goleak.VerifyTestMain(m)
}

func TestRegister(t *testing.T) {
	lbgrpc.Register() // a second call does nothing
	b := balancer.Get(lbgrpc.Name)
	require.NotNil(t, b, "Register registers the policy under Name")
	assert.Equal(t, "go_lb", b.Name())
	_, ok := b.(balancer.ConfigParser)
	assert.True(t, ok, "the builder parses its service-config entry")
	assert.Equal(t, testPolicy, balancer.Get(testPolicy).Name(), "NewBuilder answers to Options.Name")
}
