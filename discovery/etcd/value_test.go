package etcd_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-lb/lb"
	"github.com/go-lb/lb/discovery/etcd"
)

func TestParseEndpoint(t *testing.T) {
	t.Parallel()
	tests := []struct {
		give string
		want lb.Endpoint
	}{
		{"10.0.0.1:8080", lb.Endpoint{Addr: "10.0.0.1:8080"}},
		{" \t10.0.0.1:8080\n", lb.Endpoint{Addr: "10.0.0.1:8080"}},
		{"[2001:db8::1]:443", lb.Endpoint{Addr: "[2001:db8::1]:443"}},
		{"api.internal:http", lb.Endpoint{Addr: "api.internal:http"}},
		{`{"addr":"10.0.0.1:8080"}`, lb.Endpoint{Addr: "10.0.0.1:8080"}},
		{`{"addr":"10.0.0.1:8080","weight":2}`, lb.Endpoint{Addr: "10.0.0.1:8080", Weight: 2}},
		{`{"addr":"10.0.0.1:8080","weight":0}`, lb.Endpoint{Addr: "10.0.0.1:8080"}},
		{`{"addr":"10.0.0.1:8080","weight":"3"}`, lb.Endpoint{Addr: "10.0.0.1:8080", Weight: 3}},
		{`{"addr":"10.0.0.1:8080","weight":1048576}`, lb.Endpoint{Addr: "10.0.0.1:8080", Weight: lb.MaxWeight}},
		{`{"addr":"a:1","labels":{"zone":"eu-1","canary":""}}`, lb.Endpoint{Addr: "a:1", Labels: map[string]string{"zone": "eu-1", "canary": ""}}},
		{`{"addr":"a:1","labels":null,"weight":null}`, lb.Endpoint{Addr: "a:1"}},
		{`{"addr":"a:1","version":"v2","meta":{"x":[1]}}`, lb.Endpoint{Addr: "a:1"}}, // unknown fields are ignored
		{"  {\"addr\":\"a:1\"}  \n", lb.Endpoint{Addr: "a:1"}},
	}
	for _, tt := range tests {
		t.Run(tt.give, func(t *testing.T) {
			t.Parallel()
			got, err := etcd.ParseEndpoint([]byte(tt.give))
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestParseEndpointRejects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, give, want string
	}{
		{"empty", "", "empty address"},
		{"spaces", "   ", "empty address"},
		{"no port", "10.0.0.1", "host:port"},
		{"no host", ":80", "no host"},
		{"port 0", "a:0", "ports must be"},
		{"space inside", "a b:80", "whitespace"},
		{"two values", "a:1 b:2", "whitespace"},
		{"json without addr", `{"weight":2}`, `no "addr"`},
		{"json bad addr", `{"addr":"nope"}`, "host:port"},
		{"negative weight", `{"addr":"a:1","weight":-1}`, "weight -1"},
		{"fractional weight", `{"addr":"a:1","weight":1.5}`, "weight 1.5"},
		{"huge weight", `{"addr":"a:1","weight":1e30}`, "weight 1e30"},
		{"weight too big", `{"addr":"a:1","weight":1048577}`, "weight 1048577"},
		{"weight not a number", `{"addr":"a:1","weight":"x"}`, "invalid"},
		{"labels not strings", `{"addr":"a:1","labels":{"z":1}}`, "cannot unmarshal"},
		{"truncated json", `{"addr":"a:1"`, "unexpected end"},
		{"trailing data", `{"addr":"a:1"} {"addr":"b:1"}`, "invalid character"},
		{"json array", `["a:1"]`, "not host:port"},
		{"not utf-8", "a\xff:1", "UTF-8"},
		{"too big", strings.Repeat("a", etcd.MaxValueSize+1), "bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := etcd.ParseEndpoint([]byte(tt.give))
			require.ErrorIs(t, err, etcd.ErrMalformedValue)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

func TestEncodeEndpoint(t *testing.T) {
	t.Parallel()
	tests := []struct {
		give lb.Endpoint
		want string
	}{
		{lb.Endpoint{Addr: "a:1"}, `{"addr":"a:1"}`},
		{lb.Endpoint{Addr: "a:1", Weight: 4}, `{"addr":"a:1","weight":4}`},
		{lb.Endpoint{Addr: "a:1", Labels: map[string]string{"z": "1"}}, `{"addr":"a:1","labels":{"z":"1"}}`},
	}
	for _, tt := range tests {
		got, err := etcd.EncodeEndpoint(tt.give)
		require.NoError(t, err)
		assert.Equal(t, tt.want, string(got))
		back, err := etcd.ParseEndpoint(got)
		require.NoError(t, err)
		assert.Equal(t, tt.give, back)
	}
	_, err := etcd.EncodeEndpoint(lb.Endpoint{Addr: "no-port"})
	require.ErrorIs(t, err, lb.ErrInvalidEndpoint)
}

// FuzzParseEndpoint feeds arbitrary values to the parser: it must never
// panic, and whatever it accepts must be a valid endpoint that encodes and
// parses back to itself.
func FuzzParseEndpoint(f *testing.F) {
	for _, seed := range []string{
		"10.0.0.1:8080",
		"[::1]:80",
		`{"addr":"10.0.0.1:8080","weight":2,"labels":{"zone":"eu-1"}}`,
		`{"addr":"a:1","weight":1e3}`,
		`{"addr":"a:1","weight":-0}`,
		`{"addr":"a:1","labels":{"":""}}`,
		`{"addr":"\u0000:1"}`,
		`{"addr":"a:1"}garbage`,
		"{",
		"",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, v []byte) {
		ep, err := etcd.ParseEndpoint(v)
		if err != nil {
			require.ErrorIs(t, err, etcd.ErrMalformedValue)
			return
		}
		require.NoError(t, ep.Validate())
		enc, err := etcd.EncodeEndpoint(ep)
		require.NoError(t, err)
		back, err := etcd.ParseEndpoint(enc)
		require.NoError(t, err)
		require.True(t, lb.EqualEndpoints([]lb.Endpoint{ep}, []lb.Endpoint{back}), "%+v round-tripped to %+v", ep, back)
	})
}
