package lb

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestEndpointValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		give    Endpoint
		wantErr string
	}{
		{give: Endpoint{Addr: "10.0.0.1:80"}},
		{give: Endpoint{Addr: "[::1]:8080", Weight: 3}},
		{give: Endpoint{Addr: "svc.local:http"}},
		{give: Endpoint{Addr: ""}, wantErr: "empty address"},
		{give: Endpoint{Addr: "10.0.0.1"}, wantErr: "not host:port"},
		{give: Endpoint{Addr: ":80"}, wantErr: "has no host"},
		{give: Endpoint{Addr: "10.0.0.1:"}, wantErr: "has no port"},
		{give: Endpoint{Addr: "10.0.0.1:0"}, wantErr: "ports must be 1-65535"},
		{give: Endpoint{Addr: "10.0.0.1:70000"}, wantErr: "ports must be 1-65535"},
		{give: Endpoint{Addr: "10.0.0.1 :80"}, wantErr: "whitespace"},
		{give: Endpoint{Addr: "a\x00b:80"}, wantErr: "control character"},
		{give: Endpoint{Addr: "10.0.0.1:80", Weight: -1}, wantErr: `weight of "10.0.0.1:80" is -1; weights must be >= 1`},
		{give: Endpoint{Addr: "10.0.0.1:80", Weight: MaxWeight + 1}, wantErr: "weights must be"},
	}
	for _, tt := range tests {
		err := tt.give.Validate()
		if tt.wantErr == "" {
			assert.NoError(t, err, "%+v", tt.give)
			continue
		}
		require.Error(t, err, "%+v", tt.give)
		assert.ErrorIs(t, err, ErrInvalidEndpoint)
		assert.Contains(t, err.Error(), tt.wantErr)
	}
}

func TestNewBackendsBadInput(t *testing.T) {
	t.Parallel()
	_, err := NewBackends(nil)
	assert.ErrorIs(t, err, ErrNoEndpoints)
	_, err = NewBackends(Addrs("a:1", "b:1", "a:1"))
	assert.ErrorIs(t, err, ErrDuplicateEndpoint)
	assert.Contains(t, err.Error(), `"a:1" appears twice`)
	_, err = NewBackends([]Endpoint{{Addr: "a:1", Weight: -2}})
	assert.True(t, errors.Is(err, ErrInvalidEndpoint))
	bs, err := NewBackends([]Endpoint{{Addr: "a:1"}, {Addr: "b:1", Weight: 4, Labels: map[string]string{"zone": "z1"}}})
	require.NoError(t, err)
	assert.Equal(t, 1, bs[0].Weight(), "weight 0 means 1")
	assert.Equal(t, 4, bs[1].Weight())
	zone, ok := bs[1].Label("zone")
	assert.True(t, ok)
	assert.Equal(t, "z1", zone)
}
