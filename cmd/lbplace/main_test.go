package main

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/go-lb/lb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func lbplace(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(args, strings.NewReader(stdin), &out, &errOut)
	return out.String(), err
}

func someKeys(n int) string {
	var sb strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&sb, "user-%d\n", i)
	}
	return sb.String()
}

// Each scheme prints, key for key, what the library's picker of that
// scheme picks.
func TestPlacementMatchesTheLibrary(t *testing.T) {
	t.Parallel()
	nodes := []string{"http://10.0.0.1:8080", "http://10.0.0.2:8080", "http://10.0.0.3:8080", "http://10.0.0.4:8080"}
	tests := []struct {
		scheme  string
		args    []string
		builder lb.Builder
		weights []int
	}{
		{scheme: "lb", builder: lb.Ring{}},
		{scheme: "lb", args: []string{"-replicas", "10"}, builder: lb.Ring{Replicas: 10}},
		{scheme: "lb-crc32", builder: lb.Ring{Hash: lb.CRC32}},
		{scheme: "maglev", builder: lb.Maglev{}},
		{scheme: "anchor", builder: &lb.Anchor{}},
		{scheme: "groupcache", builder: lb.Ring{Compat: lb.CompatGroupcache}},
		{scheme: "groupcache", args: []string{"-replicas", "3"}, builder: lb.Ring{Compat: lb.CompatGroupcache, Replicas: 3}},
		{scheme: "stathat", builder: lb.Ring{Compat: lb.CompatStathat}},
		{scheme: "nginx", args: []string{"-weights", "1,2,1,3"}, builder: lb.Ring{Compat: lb.CompatNginx}, weights: []int{1, 2, 1, 3}},
		{scheme: "envoy", builder: lb.Ring{Compat: lb.CompatRingHash, MaxRingSize: lb.MaxRingHashSize}},
		{scheme: "grpc", args: []string{"-weights", "5,1,1,1"}, builder: lb.Ring{Compat: lb.CompatRingHash}, weights: []int{5, 1, 1, 1}},
	}
	in := someKeys(2000)
	for _, tt := range tests {
		args := append([]string{"-scheme", tt.scheme, "-nodes", strings.Join(nodes, ",")}, tt.args...)
		out, err := lbplace(t, in, args...)
		require.NoError(t, err, "%v", args)
		eps := make([]lb.Endpoint, len(nodes))
		for i, n := range nodes {
			eps[i] = lb.Endpoint{Addr: fmt.Sprintf("b%d:1", i), HashKey: n}
			if tt.weights != nil {
				eps[i].Weight = tt.weights[i]
			}
		}
		bs, err := lb.NewBackends(eps)
		require.NoError(t, err)
		p, err := tt.builder.Build(bs)
		require.NoError(t, err)
		lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
		require.Len(t, lines, 2000, "%v: one line per key", args)
		for i, got := range lines {
			b, err := p.Pick(fmt.Sprintf("user-%d", i))
			require.NoError(t, err)
			require.Equal(t, b.HashName(), got, "%v: key user-%d", args, i)
		}
	}
}

func TestMovement(t *testing.T) {
	t.Parallel()
	in := someKeys(20000)
	tests := []struct {
		name      string
		args      []string
		wantMoved float64 // percent
		delta     float64
		wantStray float64
	}{
		{name: "the same", args: []string{"-scheme", "lb", "-nodes", "a,b,c", "-to", "lb"}, wantMoved: 0},
		{name: "lb adds a fourth", args: []string{"-scheme", "lb", "-nodes", "a,b,c", "-to-nodes", "a,b,c,d"}, wantMoved: 25, delta: 2},
		{name: "anchor removes one", args: []string{"-scheme", "anchor", "-nodes", "a,b,c,d", "-to-nodes", "a,b,d"}, wantMoved: 25, delta: 2},
		{name: "groupcache to lb", args: []string{"-scheme", "groupcache", "-nodes", "a,b,c,d", "-to", "lb"}, wantMoved: 75, delta: 5, wantStray: 75},
		{name: "groupcache to stathat", args: []string{"-scheme", "groupcache", "-replicas", "20", "-nodes", "a,b,c,d", "-to", "stathat"}, wantMoved: 0},
	}
	for _, tt := range tests {
		out, err := lbplace(t, in, tt.args...)
		require.NoError(t, err, tt.name)
		var keys, moved, stray int
		var pm, ps float64
		_, err = fmt.Sscanf(out, "keys: %d\nmoved: %d (%f%%)\nmoved between nodes in both sets: %d (%f%%)\n", &keys, &moved, &pm, &stray, &ps)
		require.NoError(t, err, "%s: %q", tt.name, out)
		assert.Equal(t, 20000, keys, tt.name)
		assert.InDelta(t, tt.wantMoved, pm, tt.delta+0.01, tt.name)
		assert.InDelta(t, tt.wantStray, ps, tt.delta+0.01, tt.name)
	}
}

func TestBadInput(t *testing.T) {
	t.Parallel()
	tests := []struct {
		stdin string
		args  []string
		want  string
	}{
		{args: []string{"-scheme", "ketama", "-nodes", "a"}, want: `-scheme: unknown scheme "ketama"`},
		{args: []string{"-scheme", "lb"}, want: "-nodes: no nodes given"},
		{args: []string{"-nodes", "a,,b"}, want: "-nodes: an empty node name"},
		{args: []string{"-nodes", "a,b,a"}, want: `-nodes: node "a" appears twice`},
		{args: []string{"-nodes", "a,b", "-weights", "1"}, want: "-weights: 1 weights for 2 nodes"},
		{args: []string{"-nodes", "a,b", "-weights", "1,x"}, want: `-weights: weight "x" of node "b"`},
		{args: []string{"-nodes", "a,b", "-weights", "1,0"}, want: `-weights: weight "0" of node "b"`},
		{args: []string{"-scheme", "nginx", "-replicas", "5", "-nodes", "a"}, want: "-replicas: scheme nginx has no replica count"},
		{args: []string{"-nodes", "a", "-to", "nope"}, want: `-scheme: unknown scheme "nope"`},
		{args: []string{"-nodes", "a", "-to-nodes", "a,a"}, want: `-to-nodes: node "a" appears twice`},
		{args: []string{"-nodes", "a", "extra"}, want: `unexpected argument "extra"`},
		{args: []string{"-scheme", "lb", "-replicas", "-3", "-nodes", "a"}, want: "Ring.Replicas is -3"},
		{args: []string{"-scheme", "anchor", "-weights", "1048576,1", "-nodes", "a,b"}, want: "MaxAnchorBuckets"},
		{stdin: "a\n\nb\n", args: []string{"-nodes", "a"}, want: "stdin line 2: empty key"},
		{args: []string{"-bogus"}, want: "flag provided but not defined"},
	}
	for _, tt := range tests {
		_, err := lbplace(t, tt.stdin, tt.args...)
		require.Error(t, err, "%v", tt.args)
		assert.Contains(t, err.Error(), tt.want, "%v", tt.args)
	}
	// CRLF input reads as the same keys.
	a, err := lbplace(t, "k1\nk2\n", "-nodes", "a,b,c")
	require.NoError(t, err)
	b, err := lbplace(t, "k1\r\nk2\r\n", "-nodes", "a,b,c")
	require.NoError(t, err)
	assert.Equal(t, a, b)
}
