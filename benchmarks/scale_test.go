package benchmarks

import (
	"fmt"
	"testing"

	"github.com/go-lb/lb"
)

// BenchmarkScale puts lb's hash pickers at scale next to go-maglev and
// go-jump, and next to the configurations that were lb's defaults before
// they scaled with N: Ring{Replicas: 1024} (the exact ring of 1,024 points
// per backend at any N) and Maglev{TableSize: 65537}. Serial lookups over
// the 65,536-key pool, every row through a function value; compare ratios
// within one run:
//
//	go test -run '^$' -bench Scale -count 10 -benchtime 200ms . | tee scale.txt
//	go run golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da -col /row scale.txt
func BenchmarkScale(b *testing.B) {
	for _, n := range []int{100, 1000, 10000} {
		names := Names(n)
		eps := Endpoints(names, nil)
		rows := []struct {
			row string
			get func() (func(string) *lb.Backend, error)
		}{
			{"lb-ring", func() (func(string) *lb.Backend, error) { return pick(LbRing.New(eps)) }},
			{"lb-ring-exact1024", func() (func(string) *lb.Backend, error) { return pick(lb.Ring{Replicas: 1024}.New(eps)) }},
			{"lb-maglev", func() (func(string) *lb.Backend, error) { return pick(LbMaglev.New(eps)) }},
			{"lb-maglev-65537", func() (func(string) *lb.Backend, error) { return pick(lb.Maglev{TableSize: 65537}.New(eps)) }},
			{"lb-anchor", func() (func(string) *lb.Backend, error) { return pick(NewLbAnchor().New(eps)) }},
		}
		for _, r := range rows {
			if r.row == "lb-ring-exact1024" && n*1024 > lb.MaxRingPoints {
				continue
			}
			b.Run(fmt.Sprintf("row=%s/N=%d", r.row, n), func(b *testing.B) {
				get := fixture(b, "scale/"+r.row+"/"+itoa(n), r.get)
				var be *lb.Backend
				for i := 0; i < b.N; i++ {
					be = get(benchKeys[i&keyMask])
				}
				sinkAny = be
			})
		}
		// The peers through a function value too, so that every row pays
		// the same call.
		for _, r := range []struct {
			row string
			get func() (func(string) string, error)
		}{
			{"go-maglev", func() (func(string) string, error) { return NewGoMaglev(names).Get, nil }},
			{"go-jump", func() (func(string) string, error) { return NewJump(names).Get, nil }},
		} {
			b.Run(fmt.Sprintf("row=%s/N=%d", r.row, n), func(b *testing.B) {
				get := fixture(b, "scale/"+r.row+"/"+itoa(n), r.get)
				var s string
				for i := 0; i < b.N; i++ {
					s = get(benchKeys[i&keyMask])
				}
				sinkString = s
			})
		}
	}
}

// pick turns a picker into its Pick function (a method value: one
// indirect call, the same for every lb row here).
func pick[P interface {
	Pick(string) (*lb.Backend, error)
}](p P, err error) (func(string) *lb.Backend, error) {
	if err != nil {
		return nil, err
	}
	return func(k string) *lb.Backend { b, _ := p.Pick(k); return b }, nil
}
