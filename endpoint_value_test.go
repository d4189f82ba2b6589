package lb

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseEndpointValue(t *testing.T) {
	t.Parallel()
	tests := []struct {
		give string
		want Endpoint
	}{
		{"10.0.0.1:8080", Endpoint{Addr: "10.0.0.1:8080"}},
		{" 10.0.0.1:8080\n", Endpoint{Addr: "10.0.0.1:8080"}},
		{`{"addr":"a:1","weight":3,"hash_key":"cache-1","labels":{"zone":"z"}}`,
			Endpoint{Addr: "a:1", Weight: 3, HashKey: "cache-1", Labels: map[string]string{"zone": "z"}}},
		{`{"addr":"a:1","weight":"2"}`, Endpoint{Addr: "a:1", Weight: 2}},
	}
	for _, tt := range tests {
		got, err := ParseEndpoint([]byte(tt.give))
		require.NoError(t, err, tt.give)
		assert.Equal(t, tt.want, got, tt.give)
		enc, err := EncodeEndpoint(got)
		require.NoError(t, err)
		back, err := ParseEndpoint(enc)
		require.NoError(t, err)
		assert.Equal(t, got, back, "round trip of %s", enc)
	}
	for _, give := range []string{"", "nope", `{"weight":1}`, `{"addr":"a:1","weight":-1}`, `{"addr":"a:1","weight":1.5}`,
		`{"addr":"a:1","hash_key":"x\u0000y"}`, "a\xff:1", strings.Repeat("a", MaxEndpointValueSize+1)} {
		_, err := ParseEndpoint([]byte(give))
		assert.ErrorIs(t, err, ErrInvalidEndpoint, "%.40q", give)
	}
}

// FuzzParseEndpoint: whatever a registry holds, ParseEndpoint never panics,
// and what it accepts validates and survives an encode and parse.
func FuzzParseEndpoint(f *testing.F) {
	for _, s := range []string{"a:1", `{"addr":"[::1]:80","weight":7,"hash_key":"k","labels":{"a":"b"}}`, `{"addr":1}`, "{"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, v []byte) {
		ep, err := ParseEndpoint(v)
		if err != nil {
			return
		}
		require.NoError(t, ep.Validate())
		enc, err := EncodeEndpoint(ep)
		require.NoError(t, err)
		back, err := ParseEndpoint(enc)
		require.NoError(t, err)
		require.True(t, EqualEndpoints([]Endpoint{ep}, []Endpoint{back}), "%+v != %+v", ep, back)
	})
}
