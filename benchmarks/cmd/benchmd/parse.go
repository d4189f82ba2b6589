package main

import (
	"bufio"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Result is the samples of one benchmark over its -count runs, by unit
// ("ns/op", "allocs/op", "B/op", "conns/1k-req").
type Result struct {
	Name    string
	Samples map[string][]float64
}

// Median returns the median of the samples of unit, and whether there
// were any.
func (r *Result) Median(unit string) (float64, bool) {
	s := r.Samples[unit]
	if len(s) == 0 {
		return 0, false
	}
	return median(s), true
}

func median(s []float64) float64 {
	c := slices.Clone(s)
	slices.Sort(c)
	n := len(c)
	if n%2 == 1 {
		return c[n/2]
	}
	return (c[n/2-1] + c[n/2]) / 2
}

// Run is a parsed `go test -bench` output.
type Run struct {
	Header  map[string]string // goos, goarch, pkg, cpu
	Results map[string]*Result
	Order   []string // benchmark names in first-seen order
}

// procsSuffix is the -GOMAXPROCS suffix go test adds to benchmark names.
var procsSuffix = regexp.MustCompile(`-\d+$`)

// Parse reads `go test -bench` output. Lines that are not results or
// header lines are ignored.
func Parse(r io.Reader) (*Run, error) {
	run := &Run{Header: map[string]string{}, Results: map[string]*Result{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		for _, h := range []string{"goos", "goarch", "pkg", "cpu"} {
			if v, ok := strings.CutPrefix(line, h+": "); ok {
				run.Header[h] = strings.TrimSpace(v)
			}
		}
		if !strings.HasPrefix(line, "Benchmark") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 4 || len(f)%2 != 0 {
			continue // a benchmark's name alone (its output follows), or noise
		}
		if _, err := strconv.Atoi(f[1]); err != nil {
			continue
		}
		name := procsSuffix.ReplaceAllString(f[0], "")
		res := run.Results[name]
		if res == nil {
			res = &Result{Name: name, Samples: map[string][]float64{}}
			run.Results[name] = res
			run.Order = append(run.Order, name)
		}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				return nil, fmt.Errorf("benchmark line %q: value %q: %v", line, f[i], err)
			}
			res.Samples[f[i+1]] = append(res.Samples[f[i+1]], v)
		}
	}
	return run, sc.Err()
}

// PickName is a parsed picker benchmark name:
// Benchmark<Peer>/<workload>/<row>/N=<n>/<serial|parallel>.
type PickName struct {
	Workload string
	ID       string
	N        int
	Parallel bool
}

// ParsePickName parses a picker benchmark name.
func ParsePickName(name string) (PickName, bool) {
	p := strings.Split(name, "/")
	if len(p) != 5 || !strings.HasPrefix(p[3], "N=") {
		return PickName{}, false
	}
	n, err := strconv.Atoi(strings.TrimPrefix(p[3], "N="))
	if err != nil || (p[4] != "serial" && p[4] != "parallel") {
		return PickName{}, false
	}
	return PickName{Workload: p[1], ID: p[2], N: n, Parallel: p[4] == "parallel"}, true
}

// HTTPName is a parsed HTTP benchmark name: BenchmarkHTTP/http/<row>/c=<c>.
type HTTPName struct {
	ID          string
	Concurrency int
}

// ParseHTTPName parses an HTTP benchmark name.
func ParseHTTPName(name string) (HTTPName, bool) { return parseHTTPName(name, "http") }

// ParseHTTPPairedName parses a paired HTTP benchmark name:
// BenchmarkHTTPPaired/paired/<row>/c=<c>.
func ParseHTTPPairedName(name string) (HTTPName, bool) { return parseHTTPName(name, "paired") }

func parseHTTPName(name, kind string) (HTTPName, bool) {
	p := strings.Split(name, "/")
	if len(p) != 4 || p[1] != kind || !strings.HasPrefix(p[3], "c=") {
		return HTTPName{}, false
	}
	c, err := strconv.Atoi(strings.TrimPrefix(p[3], "c="))
	if err != nil {
		return HTTPName{}, false
	}
	return HTTPName{ID: p[2], Concurrency: c}, true
}
