// Command gateway is a small API gateway: one process that takes incoming
// HTTP traffic and spreads it over a pool of backends, with
// httputil.ReverseProxy in front and lb.Transport behind it. Middleware
// (request IDs, access logs) are RoundTripper wrappers around the
// Transport, so they see each request as it leaves for its backend.
//
// By default it starts 3 backends on loopback plus an address where
// nothing listens (requests picked there are retried on a live backend),
// serves the gateway on loopback, sends it some requests and prints what
// came back; with -serve it keeps serving until interrupted.
//
//	go run ./examples/gateway
//	go run ./examples/gateway -strategy ring -n 20
//	go run ./examples/gateway -serve -listen 127.0.0.1:8080
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-lb/lb"
)

type config struct {
	strategy string
	requests int
	listen   string
	serve    bool
	quiet    bool
}

func main() {
	var cfg config
	flag.StringVar(&cfg.strategy, "strategy", "round-robin", "round-robin, p2c, ring (by X-User-Id) or maglev (by X-User-Id)")
	flag.IntVar(&cfg.requests, "n", 12, "requests to send through the gateway (when not -serve)")
	flag.StringVar(&cfg.listen, "listen", "127.0.0.1:0", "gateway address")
	flag.BoolVar(&cfg.serve, "serve", false, "keep serving until interrupted instead of sending requests")
	flag.BoolVar(&cfg.quiet, "q", false, "no access log")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	res, err := run(ctx, cfg, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gateway:", err)
		os.Exit(2)
	}
	if res.badGateway > 0 {
		os.Exit(1)
	}
}

// roundTripperFunc makes a function a RoundTripper, the way
// http.HandlerFunc makes one a Handler.
type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// withRequestID gives each request an X-Request-Id, unless it has one. A
// RoundTripper must not modify its request: it sends a copy.
func withRequestID(next http.RoundTripper) http.RoundTripper {
	return roundTripperFunc(func(r *http.Request) (*http.Response, error) {
		if r.Header.Get("X-Request-Id") == "" {
			var b [8]byte
			_, _ = rand.Read(b[:])
			r = r.Clone(r.Context())
			r.Header.Set("X-Request-Id", hex.EncodeToString(b[:]))
		}
		return next.RoundTrip(r)
	})
}

// withAccessLog logs each request: which backend answered (lb.ServedBy
// learns it from the Transport), the status and the time taken.
func withAccessLog(log *slog.Logger, next http.RoundTripper) http.RoundTripper {
	return roundTripperFunc(func(r *http.Request) (*http.Response, error) {
		start := time.Now()
		ctx, servedBy := lb.ServedBy(r.Context())
		resp, err := next.RoundTrip(r.WithContext(ctx))
		attrs := []any{"id", r.Header.Get("X-Request-Id"), "method", r.Method, "path", r.URL.Path, "took", time.Since(start).Round(time.Microsecond)}
		if err != nil {
			log.Warn("upstream failed", append(attrs, "err", err)...)
			return nil, err
		}
		log.Info("upstream", append(attrs, "backend", servedBy(), "status", resp.StatusCode)...)
		return resp, nil
	})
}

// newGateway returns the gateway's handler: a reverse proxy to the
// logical upstream "api.internal", whose requests the Transport sends to
// the pool's backends.
func newGateway(tr *lb.Transport, log *slog.Logger) http.Handler {
	upstream := &url.URL{Scheme: "http", Host: "api.internal"}
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(upstream)
			pr.SetXForwarded()
		},
		Transport: withRequestID(withAccessLog(log, tr)),
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			status := http.StatusBadGateway
			if errors.Is(err, context.DeadlineExceeded) {
				status = http.StatusGatewayTimeout
			}
			http.Error(w, http.StatusText(status), status)
		},
	}
}

type result struct {
	ok, badGateway int
	byBackend      map[string]int // backend name -> responses
	retries        uint64
}

func run(ctx context.Context, cfg config, w io.Writer) (*result, error) {
	builders := map[string]lb.Builder{"round-robin": lb.RoundRobin{}, "p2c": lb.P2C{}, "ring": lb.Ring{}, "maglev": lb.Maglev{}}
	builder := builders[cfg.strategy]
	if builder == nil {
		return nil, fmt.Errorf("unknown strategy %q", cfg.strategy)
	}

	// The pool: 3 backends, and an address where nothing listens.
	var eps []lb.Endpoint
	for i := 0; i < 3; i++ {
		name := "backend-" + string(rune('a'+i))
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Backend", name)
			fmt.Fprintf(w, "%s served %s %s for %s (request %s, Host %s)\n",
				name, r.Method, r.URL.Path, r.Header.Get("X-Forwarded-For"), r.Header.Get("X-Request-Id"), r.Host)
		})}
		go srv.Serve(ln)
		defer srv.Close()
		eps = append(eps, lb.Endpoint{Addr: ln.Addr().String()})
	}
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	eps = append(eps, lb.Endpoint{Addr: dead.Addr().String()})
	dead.Close()

	logOut := w
	if cfg.quiet {
		logOut = io.Discard
	}
	log := slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{} // shorter lines
			}
			return a
		},
	}))
	bal, err := lb.NewBalancer(builder, lb.WithEndpoints(eps), lb.WithLogger(log),
		lb.WithOutlierDetection(lb.OutlierDetection{ConsecutiveFailures: 2, BaseEjectionTime: 10 * time.Second}))
	if err != nil {
		return nil, err
	}
	defer bal.Close()
	tr, err := lb.NewTransport(bal, lb.WithKey(lb.HeaderKey("X-User-Id")))
	if err != nil {
		return nil, err
	}
	defer tr.CloseIdleConnections()

	ln, err := net.Listen("tcp", cfg.listen)
	if err != nil {
		return nil, err
	}
	gw := &http.Server{Handler: newGateway(tr, log), ReadHeaderTimeout: 5 * time.Second}
	go gw.Serve(ln)
	defer gw.Close()
	fmt.Fprintf(w, "gateway on http://%s, strategy %s, pool of %d (one dead)\n", ln.Addr(), cfg.strategy, len(eps))

	res := &result{byBackend: map[string]int{}}
	if cfg.serve {
		<-ctx.Done()
		return res, nil
	}

	// Clients of the gateway: a plain http.Client.
	client := &http.Client{Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	var seq atomic.Int64
	for i := 0; i < cfg.requests; i++ {
		// Every third request is a POST: its body reaches the Transport
		// as a stream (no GetBody), which is resent only if no backend
		// read it, as when the dead backend refused the connection.
		method, payload := http.MethodGet, io.Reader(nil)
		if i%3 == 2 {
			method, payload = http.MethodPost, strings.NewReader(`{"qty":1}`)
		}
		req, err := http.NewRequestWithContext(ctx, method, "http://"+ln.Addr().String()+"/v1/items/"+fmt.Sprint(seq.Add(1)), payload)
		if err != nil {
			return nil, err
		}
		req.Header.Set("X-User-Id", fmt.Sprintf("user-%d", i%3))
		resp, err := client.Do(req)
		if err != nil {
			return nil, err
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			res.badGateway++
			continue
		}
		res.ok++
		res.byBackend[resp.Header.Get("X-Backend")]++
		if i < 3 {
			fmt.Fprint(w, "  ", string(body))
		}
	}
	res.retries = tr.Stats().Retries
	names := make([]string, 0, len(res.byBackend))
	for n := range res.byBackend {
		names = append(names, n)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = fmt.Sprintf("%s %d", n, res.byBackend[n])
	}
	fmt.Fprintf(w, "%d requests: %d ok, %d bad gateway, %d retried past the dead backend; served by %s\n",
		cfg.requests, res.ok, res.badGateway, res.retries, strings.Join(parts, ", "))
	return res, nil
}
