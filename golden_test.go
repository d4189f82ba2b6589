package lb

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite the golden placement files in testdata/")

// The golden files pin where 1,000 keys go with each hash strategy's
// defaults. A key must map to the same backend in every process and every
// release: if this test fails, placement changed, which breaks every
// deployment that shares a ring across versions. Regenerate with
// `go test -run Golden -update` only for a deliberate, announced change.

func goldenEndpoints() []Endpoint {
	eps := make([]Endpoint, 10)
	for i := range eps {
		eps[i] = Endpoint{Addr: fmt.Sprintf("10.0.0.%d:8080", i+1), Weight: 1 + i%3}
	}
	return eps
}

func TestGoldenPlacements(t *testing.T) {
	t.Parallel()
	// 300 backends of weights 1 to 3: 600 units, past RingExactWeight.
	scaled := make([]Endpoint, 300)
	for i := range scaled {
		scaled[i] = Endpoint{Addr: fmt.Sprintf("10.0.%d.%d:8080", i/250, i%250+1), Weight: 1 + i%3}
	}
	for _, tt := range []struct {
		file    string
		builder Builder
		eps     []Endpoint // nil: goldenEndpoints
	}{
		{file: "golden_ring.txt", builder: Ring{}},
		{file: "golden_ring_crc32.txt", builder: Ring{Hash: CRC32}},
		{file: "golden_maglev.txt", builder: Maglev{}},
		{file: "golden_groupcache.txt", builder: Ring{Compat: CompatGroupcache}},
		{file: "golden_stathat.txt", builder: Ring{Compat: CompatStathat}},
		{file: "golden_nginx.txt", builder: Ring{Compat: CompatNginx}},
		{file: "golden_ringhash.txt", builder: Ring{Compat: CompatRingHash}},
		{file: "golden_ring_scaled.txt", builder: Ring{}, eps: scaled},
		{file: "golden_maglev_large.txt", builder: Maglev{}, eps: scaled},
		{file: "golden_anchor.txt", builder: &Anchor{}},
		{file: "golden_anchor_history.txt", builder: anchorWithHistory(t), eps: anchorHistoryEnd()},
	} {
		eps := tt.eps
		if eps == nil {
			eps = goldenEndpoints()
		}
		bs, err := NewBackends(eps)
		require.NoError(t, err)
		p, err := tt.builder.Build(bs)
		require.NoError(t, err)
		var sb strings.Builder
		for i := 0; i < 1000; i++ {
			key := fmt.Sprintf("user-%d", i)
			b, err := p.Pick(key)
			require.NoError(t, err)
			fmt.Fprintf(&sb, "%s %s\n", key, b.Addr())
		}
		path := filepath.Join("testdata", tt.file)
		if *update {
			require.NoError(t, os.WriteFile(path, []byte(sb.String()), 0o644))
			continue
		}
		want, err := os.ReadFile(path)
		require.NoError(t, err)
		got := bufio.NewScanner(strings.NewReader(sb.String()))
		exp := bufio.NewScanner(strings.NewReader(string(want)))
		line := 0
		for exp.Scan() {
			line++
			require.True(t, got.Scan(), "%s: fewer lines than the golden file", tt.file)
			require.Equal(t, exp.Text(), got.Text(), "%s line %d: placement changed", tt.file, line)
		}
		require.Equal(t, 1000, line, "%s: the golden file has %d lines", tt.file, line)
	}
}

// anchorWithHistory is an Anchor that has seen the golden set, then lost
// two backends, then gained one: the golden file pins where its history
// leads (its next Build is over anchorHistoryEnd).
func anchorWithHistory(t *testing.T) *Anchor {
	var a Anchor
	eps := goldenEndpoints()
	for _, set := range [][]Endpoint{eps, append(append([]Endpoint{}, eps[:3]...), eps[4:9]...)} {
		_, err := a.New(set)
		require.NoError(t, err)
	}
	return &a
}

func anchorHistoryEnd() []Endpoint {
	eps := goldenEndpoints()
	return append(append(append([]Endpoint{}, eps[:3]...), eps[4:9]...), Endpoint{Addr: "10.0.0.11:8080", Weight: 2})
}
