package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const sample = `goos: linux
goarch: amd64
pkg: github.com/go-lb/lb/benchmarks
cpu: AMD EPYC
BenchmarkLb/hash/lb-ring/N=100/serial-2         	 7439102	        20.48 ns/op	       0 B/op	       0 allocs/op
BenchmarkLb/hash/lb-ring/N=100/serial-2         	 7439102	        22.00 ns/op	       0 B/op	       0 allocs/op
BenchmarkLb/hash/lb-ring/N=100/serial-2         	 7439102	        19.00 ns/op	       0 B/op	       0 allocs/op
BenchmarkHTTP/http/lb/c=32-2                    	   10000	     32861 ns/op	         0.6000 conns/1k-req	    5585 B/op	      61 allocs/op
BenchmarkSomething
some log line
PASS
`

func TestParse(t *testing.T) {
	t.Parallel()
	run, err := Parse(strings.NewReader(sample))
	require.NoError(t, err)
	assert.Equal(t, "AMD EPYC", run.Header["cpu"])
	assert.Equal(t, "linux", run.Header["goos"])
	assert.Equal(t, []string{"BenchmarkLb/hash/lb-ring/N=100/serial", "BenchmarkHTTP/http/lb/c=32"}, run.Order)

	r := run.Results["BenchmarkLb/hash/lb-ring/N=100/serial"]
	require.NotNil(t, r)
	assert.Equal(t, []float64{20.48, 22, 19}, r.Samples["ns/op"])
	m, ok := r.Median("ns/op")
	assert.True(t, ok)
	assert.Equal(t, 20.48, m)
	_, ok = r.Median("conns/1k-req")
	assert.False(t, ok)

	h := run.Results["BenchmarkHTTP/http/lb/c=32"]
	require.NotNil(t, h)
	c, _ := h.Median("conns/1k-req")
	assert.Equal(t, 0.6, c)
	a, _ := h.Median("allocs/op")
	assert.Equal(t, 61.0, a)
	assert.Equal(t, "2", procs([]byte(sample)))
}

func TestParseBadValue(t *testing.T) {
	t.Parallel()
	_, err := Parse(strings.NewReader("BenchmarkX-2 10 abc ns/op\n"))
	assert.ErrorContains(t, err, `value "abc"`)
}

func TestMedian(t *testing.T) {
	t.Parallel()
	tests := []struct {
		give []float64
		want float64
	}{
		{give: []float64{3}, want: 3},
		{give: []float64{5, 1, 3}, want: 3},
		{give: []float64{4, 1, 3, 2}, want: 2.5},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, median(tt.give), "%v", tt.give)
	}
}

func TestParseNames(t *testing.T) {
	t.Parallel()
	pn, ok := ParsePickName("BenchmarkGroupcache/hash/groupcache-r50/N=1000/parallel")
	assert.True(t, ok)
	assert.Equal(t, PickName{Workload: "hash", ID: "groupcache-r50", N: 1000, Parallel: true}, pn)
	for _, bad := range []string{"BenchmarkX", "BenchmarkX/hash/a/N=x/serial", "BenchmarkX/hash/a/N=10/sideways", "BenchmarkHTTP/http/lb/c=1"} {
		_, ok := ParsePickName(bad)
		assert.False(t, ok, bad)
	}
	hn, ok := ParseHTTPName("BenchmarkHTTP/http/httplb-idle256/c=32")
	assert.True(t, ok)
	assert.Equal(t, HTTPName{ID: "httplb-idle256", Concurrency: 32}, hn)
	_, ok = ParseHTTPName("BenchmarkLb/hash/lb-ring/N=100/serial")
	assert.False(t, ok)
}

func TestFormat(t *testing.T) {
	t.Parallel()
	assert.Equal(t, "1,234,567", thousands(1234567))
	assert.Equal(t, "999", thousands(999))
	assert.Equal(t, "-1,000", thousands(-1000))
	assert.Equal(t, "3.14", fmtNs(3.14159))
	assert.Equal(t, "31.4", fmtNs(31.4159))
	assert.Equal(t, "3,142", fmtNs(3141.59))
	assert.Equal(t, "0", pct(0))
	assert.Equal(t, "1.23%", pct(0.01234))
	assert.Equal(t, "0.0050%", pct(0.00005))
}
