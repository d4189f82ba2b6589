package zookeeper_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-lb/lb"
	"github.com/go-lb/lb/discovery/zookeeper"
)

func TestParseChild(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, data string
		want       lb.Endpoint
	}{
		{"a", `{"addr":"10.0.0.1:8080","weight":2,"hash_key":"k","labels":{"zone":"eu-1"}}`,
			lb.Endpoint{Addr: "10.0.0.1:8080", Weight: 2, HashKey: "k", Labels: map[string]string{"zone": "eu-1"}}},
		{"a", "10.0.0.1:8080", lb.Endpoint{Addr: "10.0.0.1:8080"}},
		{"10.0.0.9:1", "10.0.0.1:8080", lb.Endpoint{Addr: "10.0.0.1:8080"}}, // data wins over the name
		{"10.0.0.1:8080", "", lb.Endpoint{Addr: "10.0.0.1:8080"}},
		{"10.0.0.1:8080", " \n\t", lb.Endpoint{Addr: "10.0.0.1:8080"}},
		{"[2001:db8::1]:443", "", lb.Endpoint{Addr: "[2001:db8::1]:443"}},
		{"api.internal:http", "", lb.Endpoint{Addr: "api.internal:http"}},
	}
	for _, tt := range tests {
		t.Run(tt.name+"="+tt.data, func(t *testing.T) {
			t.Parallel()
			got, err := zookeeper.ParseChild(tt.name, []byte(tt.data))
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestParseChildRejects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, data, want string
	}{
		{"member-0000000001", "", "its name is not an endpoint"},
		{"10.0.0.1", "", "host:port"},
		{"\xff:1", "", "not valid UTF-8"},
		{":80", "", "no host"},
		{"a:0", "", "ports must be"},
		{"10.0.0.1:80", `{"weight":2}`, `no "addr"`},
		{"10.0.0.1:80", "not an endpoint", "whitespace"},
		{"10.0.0.1:80", `{"addr":"a:1","weight":-1}`, "weight -1"},
		{"10.0.0.1:80", "a\xff:1", "UTF-8"},
		{"10.0.0.1:80", strings.Repeat("a", lb.MaxEndpointValueSize+1), "bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name+"="+tt.data[:min(len(tt.data), 20)], func(t *testing.T) {
			t.Parallel()
			_, err := zookeeper.ParseChild(tt.name, []byte(tt.data))
			require.ErrorIs(t, err, lb.ErrInvalidEndpoint)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

// FuzzParseChild feeds arbitrary child names and data to the parser: it
// never panics; whatever it accepts is a valid endpoint, read from the
// data when there is any and from the name otherwise, and it encodes (as
// Register writes it) and parses back to itself.
func FuzzParseChild(f *testing.F) {
	for _, seed := range []struct{ name, data string }{
		{"10.0.0.1:8080", ""},
		{"a", "10.0.0.1:8080"},
		{"a", `{"addr":"10.0.0.1:8080","weight":2,"labels":{"zone":"eu-1"}}`},
		{"[::1]:80", " "},
		{"_c_0123456789abcdef0123456789abcdef-10.0.0.1:80-0000000001", ""},
		{"a:1", `{"addr":"a:1"}garbage`},
		{"\x00:1", ""},
		{"", ""},
	} {
		f.Add(seed.name, []byte(seed.data))
	}
	f.Fuzz(func(t *testing.T, name string, data []byte) {
		ep, err := zookeeper.ParseChild(name, data)
		if err != nil {
			require.ErrorIs(t, err, lb.ErrInvalidEndpoint)
			return
		}
		require.NoError(t, ep.Validate())
		if strings.TrimSpace(string(data)) == "" {
			require.Equal(t, lb.Endpoint{Addr: name}, ep)
		}
		enc, err := lb.EncodeEndpoint(ep)
		require.NoError(t, err)
		back, err := zookeeper.ParseChild(name, enc)
		require.NoError(t, err)
		require.True(t, lb.EqualEndpoints([]lb.Endpoint{ep}, []lb.Endpoint{back}), "%+v round-tripped to %+v", ep, back)
	})
}
