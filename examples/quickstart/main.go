// Command quickstart is lb's main job in one program: an http.Client whose
// Transport spreads requests over a pool of backends with a strategy of
// your choice, retries what failed on another backend, and ejects a
// backend that dies.
//
// By default it starts 4 backends on loopback (one slower, one weighted
// heavier), sends 4,000 requests at concurrency 8, kills one backend at 30%
// of the requests (listener and open connections closed) and restarts it at
// 70%, then prints what each backend served and the totals:
//
//	go run ./examples/quickstart
//	go run ./examples/quickstart -strategy ring
//	go run ./examples/quickstart -strategy all
//	go run ./examples/quickstart -targets 10.0.0.1:8080,10.0.0.2:8080 -url http://api.internal/healthz
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/go-lb/lb"
)

// strategies are the Builders the -strategy flag chooses from.
var strategies = []struct {
	name    string
	builder lb.Builder
}{
	{"round-robin", lb.RoundRobin{}},
	{"weighted-round-robin", lb.WeightedRoundRobin{}},
	{"random", lb.Random{}},
	{"weighted-random", lb.WeightedRandom{}},
	{"p2c", lb.P2C{}},
	{"ring", lb.Ring{}},
	{"maglev", lb.Maglev{}},
}

// config is what the flags set.
type config struct {
	strategy    string
	requests    int
	concurrency int
	targets     []string // real backends; empty: start local ones
	url         string   // what is requested; its host is the logical name
	work        time.Duration
	slow        time.Duration
	healthPath  string
	verbose     bool
}

func main() {
	var cfg config
	names := make([]string, len(strategies))
	for i, s := range strategies {
		names[i] = s.name
	}
	var targets string
	flag.StringVar(&cfg.strategy, "strategy", "p2c", "strategy: "+strings.Join(names, ", ")+", or all")
	flag.IntVar(&cfg.requests, "n", 4000, "requests to send")
	flag.IntVar(&cfg.concurrency, "c", 8, "requests in flight at once")
	flag.StringVar(&targets, "targets", "", "comma-separated host:port of real backends (default: start 4 on loopback)")
	flag.StringVar(&cfg.url, "url", "http://quickstart.internal/", "URL to request; its host is sent as the Host header")
	flag.DurationVar(&cfg.work, "work", 2*time.Millisecond, "time a local backend takes per request")
	flag.DurationVar(&cfg.slow, "slow", 8*time.Millisecond, "time the slower local backend takes per request")
	flag.StringVar(&cfg.healthPath, "health", "", `path for active health checks, e.g. "/healthz" (default: on for local backends, off for -targets)`)
	flag.BoolVar(&cfg.verbose, "v", false, "log ejections and readmissions")
	flag.Parse()
	if targets != "" {
		cfg.targets = strings.Split(targets, ",")
	}

	run := []string{cfg.strategy}
	if cfg.strategy == "all" {
		run = names
	}
	failed := 0
	for _, name := range run {
		cfg.strategy = name
		res, err := runQuickstart(context.Background(), cfg, os.Stdout)
		if err != nil {
			fmt.Fprintln(os.Stderr, "quickstart:", err)
			os.Exit(2)
		}
		failed += res.failed
		fmt.Println()
	}
	if failed > 0 {
		os.Exit(1)
	}
}

// result is what one run measured.
type result struct {
	requests, failed int
	stats            lb.TransportStats
	rows             []row
	elapsed          time.Duration
}

// row is one backend's line of the table.
type row struct {
	addr      string
	weight    int
	note      string
	served    int
	p50, p99  time.Duration
	ejections uint32
}

// runQuickstart starts the backends (unless cfg.targets names real ones),
// sends the requests and writes the report to w.
func runQuickstart(ctx context.Context, cfg config, w io.Writer) (*result, error) {
	var builder lb.Builder
	for _, s := range strategies {
		if s.name == cfg.strategy {
			builder = s.builder
		}
	}
	if builder == nil {
		return nil, fmt.Errorf("unknown strategy %q", cfg.strategy)
	}
	if cfg.requests < 1 || cfg.concurrency < 1 {
		return nil, errors.New("-n and -c must be at least 1")
	}

	// The pool: local backends, or the targets.
	var eps []lb.Endpoint
	notes := map[string]string{}
	var victim *backend
	if len(cfg.targets) == 0 {
		backends, err := startBackends(cfg.work, cfg.slow)
		if err != nil {
			return nil, err
		}
		defer func() {
			for _, b := range backends {
				b.stop()
			}
		}()
		for _, b := range backends {
			eps = append(eps, lb.Endpoint{Addr: b.addr, Weight: b.weight})
			notes[b.addr] = b.note
		}
		victim = backends[3]
		if cfg.healthPath == "" {
			cfg.healthPath = "/healthz"
		}
	} else {
		for _, t := range cfg.targets {
			eps = append(eps, lb.Endpoint{Addr: strings.TrimSpace(t)})
		}
	}

	logLevel := slog.LevelError
	if cfg.verbose {
		logLevel = slog.LevelInfo
	}
	logger := slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: logLevel}))
	bal, err := lb.NewBalancer(builder,
		lb.WithEndpoints(eps),
		lb.WithLogger(logger),
		lb.WithOutlierDetection(lb.OutlierDetection{
			ConsecutiveFailures: 3,
			BaseEjectionTime:    100 * time.Millisecond,
			MaxEjectionTime:     time.Second,
		}))
	if err != nil {
		return nil, err
	}
	defer bal.Close()
	// Hash strategies place each user on a backend; the others ignore the
	// key.
	tr, err := lb.NewTransport(bal, lb.WithKey(lb.HeaderKey("X-User")), lb.WithFailureStatus(lb.Is5xx))
	if err != nil {
		return nil, err
	}
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	if cfg.healthPath != "" {
		hc, err := lb.StartHealthChecks(ctx, bal, lb.HealthCheck{
			Path:      cfg.healthPath,
			Interval:  200 * time.Millisecond,
			Timeout:   time.Second,
			Transport: tr.Base(),
		})
		if err != nil {
			return nil, err
		}
		defer hc.Close()
	}

	killAt, restartAt := int64(cfg.requests*3/10), int64(cfg.requests*7/10)
	var (
		next    atomic.Int64
		failed  atomic.Int64
		mu      sync.Mutex
		latency = map[string][]time.Duration{}
		wg      sync.WaitGroup
		errOnce sync.Once
		runErr  error
	)
	start := time.Now()
	for i := 0; i < cfg.concurrency; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				n := next.Add(1)
				if n > int64(cfg.requests) || ctx.Err() != nil {
					return
				}
				if victim != nil && n == killAt {
					victim.kill()
				}
				if victim != nil && n == restartAt {
					if err := victim.restart(); err != nil {
						errOnce.Do(func() { runErr = err })
					}
				}
				addr, d, err := send(ctx, client, cfg.url, "user-"+strconv.Itoa(rand.IntN(1000)))
				if err != nil {
					failed.Add(1)
					if cfg.verbose {
						logger.Error("request failed", "err", err)
					}
					continue
				}
				mu.Lock()
				latency[addr] = append(latency[addr], d)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if runErr != nil {
		return nil, runErr
	}

	res := &result{requests: cfg.requests, failed: int(failed.Load()), stats: tr.Stats(), elapsed: time.Since(start)}
	for _, s := range bal.Stats() {
		ds := latency[s.Endpoint.Addr]
		slices.Sort(ds)
		res.rows = append(res.rows, row{
			addr: s.Endpoint.Addr, weight: s.Endpoint.Weight, note: notes[s.Endpoint.Addr],
			served: len(ds), p50: percentile(ds, 0.50), p99: percentile(ds, 0.99), ejections: s.Ejections,
		})
	}
	report(w, cfg, res, victim, killAt, restartAt)
	return res, nil
}

// send makes one request and returns the backend that answered and the
// time it took.
func send(ctx context.Context, client *http.Client, url, user string) (string, time.Duration, error) {
	ctx, servedBy := lb.ServedBy(ctx) // to learn which backend answered
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", 0, err
	}
	req.Header.Set("X-User", user)
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return "", 0, err
	}
	if resp.StatusCode >= 500 {
		return "", 0, fmt.Errorf("status %s", resp.Status)
	}
	return servedBy(), time.Since(start), nil
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[int(p*float64(len(sorted)-1))]
}

func report(w io.Writer, cfg config, res *result, victim *backend, killAt, restartAt int64) {
	fmt.Fprintf(w, "strategy %s: %d requests, concurrency %d, %d backends\n", cfg.strategy, cfg.requests, cfg.concurrency, len(res.rows))
	if victim != nil {
		fmt.Fprintf(w, "backend %s killed after %d requests, restarted after %d\n", victim.addr, killAt, restartAt)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "backend\tweight\t\trequests\tshare\tp50\tp99\tejections\t")
	rows := slices.Clone(res.rows)
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].addr < rows[j].addr })
	served := 0
	for _, r := range rows {
		served += r.served
	}
	for _, r := range rows {
		share := 0.0
		if served > 0 {
			share = 100 * float64(r.served) / float64(served)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%.1f%%\t%v\t%v\t%d\t\n", r.addr, r.weight, r.note, r.served, share,
			r.p50.Round(10*time.Microsecond), r.p99.Round(10*time.Microsecond), r.ejections)
	}
	tw.Flush()
	fmt.Fprintf(w, "\ntotal: %d requests, %d failed, %d retries (%d refused by the retry budget), %v\n",
		res.requests, res.failed, res.stats.Retries, res.stats.RetriesDenied, res.elapsed.Round(time.Millisecond))
}

// backend is a local server that can be killed and restarted on its
// address.
type backend struct {
	addr   string
	weight int
	note   string
	delay  time.Duration

	mu  sync.Mutex
	srv *http.Server
}

func startBackends(work, slow time.Duration) ([]*backend, error) {
	specs := []struct {
		weight int
		note   string
		delay  time.Duration
	}{
		{1, "", work},
		{3, "heavier", work},
		{1, "slower", slow},
		{1, "killed", work},
	}
	var bs []*backend
	for _, s := range specs {
		ln, err := listenLoopback()
		if err != nil {
			for _, b := range bs {
				b.stop()
			}
			return nil, err
		}
		b := &backend{addr: ln.Addr().String(), weight: s.weight, note: s.note, delay: s.delay}
		b.serve(ln)
		bs = append(bs, b)
	}
	return bs, nil
}

// listenLoopback listens on a loopback port below the usual ephemeral
// range (32768 and up on Linux), so that no outgoing connection takes the
// port while the backend is down and it can restart on the same address.
func listenLoopback() (net.Listener, error) {
	for try := 0; try < 100; try++ {
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(20000+rand.IntN(10000))))
		if err == nil {
			return ln, nil
		}
	}
	return net.Listen("tcp", "127.0.0.1:0")
}

func (b *backend) serve(ln net.Listener) {
	srv := &http.Server{
		ReadHeaderTimeout: 10 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/healthz" {
				io.WriteString(w, "ok")
				return
			}
			time.Sleep(b.delay) // the request's work
			fmt.Fprintf(w, "hello from %s\n", b.addr)
		}),
	}
	b.mu.Lock()
	b.srv = srv
	b.mu.Unlock()
	go srv.Serve(ln)
}

// kill closes the listener and every connection, as a crash would.
func (b *backend) kill() { b.stop() }

func (b *backend) stop() {
	b.mu.Lock()
	srv := b.srv
	b.srv = nil
	b.mu.Unlock()
	if srv != nil {
		srv.Close()
	}
}

// restart listens on the same address again.
func (b *backend) restart() error {
	var err error
	for try := 0; try < 50; try++ {
		var ln net.Listener
		if ln, err = net.Listen("tcp", b.addr); err == nil {
			b.serve(ln)
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("restarting %s: %w", b.addr, err)
}
