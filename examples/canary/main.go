// Command canary shows a weighted canary rollout: three stable backends
// (v1) and one canary (v2), weighted so that the canary gets 10% of the
// traffic, then 50%, then all of it; Update changes the weights in place,
// keeping each backend's counters. With -bad the canary answers 500: it is
// ejected after a few failures, the requests it failed are retried on v1,
// no request fails, and the rollout is rolled back.
//
//	go run ./examples/canary
//	go run ./examples/canary -bad
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/go-lb/lb"
)

type config struct {
	requests int  // per phase
	bad      bool // the canary answers 500
	random   bool // weighted random instead of smooth weighted round robin
}

func main() {
	var cfg config
	flag.IntVar(&cfg.requests, "n", 2000, "requests per phase")
	flag.BoolVar(&cfg.bad, "bad", false, "make the canary answer 500")
	flag.BoolVar(&cfg.random, "random", false, "weighted random instead of weighted round robin")
	flag.Parse()
	phases, err := run(context.Background(), cfg, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "canary:", err)
		os.Exit(2)
	}
	for _, p := range phases {
		if p.failed > 0 {
			os.Exit(1)
		}
	}
}

// phase is one step of the rollout and what it measured.
type phase struct {
	name         string
	canaryWeight int // of 10
	v1, v2       int // responses served by each version
	failed       int
	retries      uint64
	ejected      bool // the canary was ejected during the phase
}

func run(ctx context.Context, cfg config, w io.Writer) ([]phase, error) {
	if cfg.requests < 1 {
		return nil, fmt.Errorf("-n must be at least 1")
	}
	start := func(version string, status int) *httptest.Server {
		return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Version", version)
			w.WriteHeader(status)
			fmt.Fprintf(w, "hello from %s\n", version)
		}))
	}
	var stable []*httptest.Server
	for i := 0; i < 3; i++ {
		s := start("v1", http.StatusOK)
		defer s.Close()
		stable = append(stable, s)
	}
	canaryStatus := http.StatusOK
	if cfg.bad {
		canaryStatus = http.StatusInternalServerError
	}
	canary := start("v2", canaryStatus)
	defer canary.Close()
	canaryAddr := canary.Listener.Addr().String()

	// endpoints gives the three stable backends stableWeight each and the
	// canary canaryWeight: canary share = canaryWeight / total.
	endpoints := func(stableWeight, canaryWeight int) []lb.Endpoint {
		var eps []lb.Endpoint
		if stableWeight > 0 {
			for _, s := range stable {
				eps = append(eps, lb.Endpoint{Addr: s.Listener.Addr().String(), Weight: stableWeight, Labels: map[string]string{"version": "v1"}})
			}
		}
		if canaryWeight > 0 {
			eps = append(eps, lb.Endpoint{Addr: canaryAddr, Weight: canaryWeight, Labels: map[string]string{"version": "v2"}})
		}
		return eps
	}

	var builder lb.Builder = lb.WeightedRoundRobin{}
	if cfg.random {
		builder = lb.WeightedRandom{}
	}
	bal, err := lb.NewBalancer(builder,
		lb.WithEndpoints(endpoints(3, 1)), // 1 of 10
		lb.WithOutlierDetection(lb.OutlierDetection{ConsecutiveFailures: 3, BaseEjectionTime: time.Minute}))
	if err != nil {
		return nil, err
	}
	defer bal.Close()
	tr, err := lb.NewTransport(bal, lb.WithFailureStatus(lb.Is5xx))
	if err != nil {
		return nil, err
	}
	client := &http.Client{Transport: tr}
	defer client.CloseIdleConnections()

	send := func(p *phase) error {
		before := tr.Stats().Retries
		for i := 0; i < cfg.requests; i++ {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://shop.internal/", nil)
			if err != nil {
				return err
			}
			resp, err := client.Do(req)
			if err != nil {
				p.failed++
				continue
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			switch {
			case resp.StatusCode != http.StatusOK:
				p.failed++
			case resp.Header.Get("X-Version") == "v2":
				p.v2++
			default:
				p.v1++
			}
		}
		p.retries = tr.Stats().Retries - before
		for _, s := range bal.Stats() {
			if s.Endpoint.Addr == canaryAddr && s.Ejections > 0 {
				p.ejected = true
			}
		}
		return nil
	}

	var phases []phase
	steps := []struct {
		name                 string
		stableW, canaryW, of int
	}{
		{"canary 10%", 3, 1, 10},
		{"canary 50%", 5, 15, 50}, // 3x5 = 15 vs 15
		{"v2 only", 0, 1, 100},
	}
	for i, st := range steps {
		if i > 0 {
			if cfg.bad {
				// The canary failed: roll back to v1 only.
				if err := bal.Update(endpoints(1, 0)); err != nil {
					return nil, err
				}
				p := phase{name: "rolled back"}
				if err := send(&p); err != nil {
					return nil, err
				}
				phases = append(phases, p)
				break
			}
			if err := bal.Update(endpoints(st.stableW, st.canaryW)); err != nil {
				return nil, err
			}
		}
		p := phase{name: st.name, canaryWeight: st.of}
		if err := send(&p); err != nil {
			return nil, err
		}
		phases = append(phases, p)
	}

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "phase\tv1\tv2\tv2 share\tfailed\tretries\tcanary ejected\t")
	for _, p := range phases {
		share := 100 * float64(p.v2) / float64(max(1, p.v1+p.v2))
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.1f%%\t%d\t%d\t%v\t\n", p.name, p.v1, p.v2, share, p.failed, p.retries, p.ejected)
	}
	tw.Flush()
	if cfg.bad {
		fmt.Fprintln(w, strings.TrimSpace(`
the canary answered 500: it was ejected after 3 failures, the requests it
failed were retried on v1, and the rollout was rolled back.`))
	}
	return phases, nil
}
