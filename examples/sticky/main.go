// Command sticky shows sticky sessions with a hash strategy: each user's
// requests carry a session key (a cookie or a header), the Transport hashes
// it onto the ring, and every request of a session reaches the backend that
// holds its state. When a backend leaves, its sessions move (on the ring,
// only its sessions; Maglev may move a few others too, its price for better
// balance); when it comes back, every session is back where it started.
//
//	go run ./examples/sticky
//	go run ./examples/sticky -by header -strategy maglev
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/go-lb/lb"
)

type config struct {
	by       string // "cookie" or "header"
	strategy string // "ring" or "maglev"
	users    int
	requests int // per user
	backends int
}

func main() {
	var cfg config
	flag.StringVar(&cfg.by, "by", "cookie", `where the session key is: "cookie" (session=...) or "header" (X-Session-Id)`)
	flag.StringVar(&cfg.strategy, "strategy", "ring", `hash strategy: "ring" or "maglev"`)
	flag.IntVar(&cfg.users, "users", 20, "users (sessions)")
	flag.IntVar(&cfg.requests, "requests", 10, "requests per user")
	flag.IntVar(&cfg.backends, "backends", 4, "backends")
	flag.Parse()
	res, err := run(context.Background(), cfg, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "sticky:", err)
		os.Exit(2)
	}
	if !res.sticky || !res.restored || (cfg.strategy == "ring" && res.strayMoves > 0) {
		os.Exit(1)
	}
}

type result struct {
	sticky     bool // every user stayed on one backend in every phase
	moved      int  // users that moved when a backend left
	strayMoves int  // users that moved although their backend stayed
	returned   int  // of the moved users, those back on their first backend once it returned
	restored   bool // once it returned, every user was back on its first backend
}

// sessionServer is a backend that keeps per-session state in memory: the
// number of requests each session made to it.
type sessionServer struct {
	name string
	srv  *httptest.Server
	mu   sync.Mutex
	hits map[string]int
}

func (s *sessionServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id := r.Header.Get("X-Session-Id")
	if c, err := r.Cookie("session"); err == nil {
		id = c.Value
	}
	s.mu.Lock()
	s.hits[id]++
	n := s.hits[id]
	s.mu.Unlock()
	fmt.Fprintf(w, "%s %d", s.name, n)
}

func run(ctx context.Context, cfg config, w io.Writer) (*result, error) {
	var builder lb.Builder
	switch cfg.strategy {
	case "ring":
		builder = lb.Ring{}
	case "maglev":
		builder = lb.Maglev{}
	default:
		return nil, fmt.Errorf("unknown strategy %q (ring or maglev)", cfg.strategy)
	}
	var key lb.KeyFunc
	switch cfg.by {
	case "cookie":
		key = lb.CookieKey("session")
	case "header":
		key = lb.HeaderKey("X-Session-Id")
	default:
		return nil, fmt.Errorf("unknown -by %q (cookie or header)", cfg.by)
	}
	if cfg.backends < 2 || cfg.users < 1 || cfg.requests < 1 {
		return nil, fmt.Errorf("need at least 2 backends, 1 user and 1 request")
	}

	var servers []*sessionServer
	var eps []lb.Endpoint
	names := map[string]string{} // addr -> name
	for i := 0; i < cfg.backends; i++ {
		s := &sessionServer{name: "backend-" + string(rune('a'+i)), hits: map[string]int{}}
		s.srv = httptest.NewServer(s)
		defer s.srv.Close()
		servers = append(servers, s)
		addr := s.srv.Listener.Addr().String()
		eps = append(eps, lb.Endpoint{Addr: addr})
		names[addr] = s.name
	}
	bal, err := lb.NewBalancer(builder, lb.WithEndpoints(eps))
	if err != nil {
		return nil, err
	}
	defer bal.Close()
	tr, err := lb.NewTransport(bal, lb.WithKey(key))
	if err != nil {
		return nil, err
	}
	client := &http.Client{Transport: tr}
	defer client.CloseIdleConnections()

	// phase sends every user's requests and returns the backend each user
	// was on, and whether each stayed on one.
	phase := func() (map[string]string, bool, error) {
		placed := map[string]string{}
		sticky := true
		for u := 0; u < cfg.users; u++ {
			session := "session-" + strconv.Itoa(u)
			for i := 0; i < cfg.requests; i++ {
				req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://app.internal/cart", nil)
				if err != nil {
					return nil, false, err
				}
				if cfg.by == "cookie" {
					req.AddCookie(&http.Cookie{Name: "session", Value: session})
				} else {
					req.Header.Set("X-Session-Id", session)
				}
				resp, err := client.Do(req)
				if err != nil {
					return nil, false, err
				}
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil {
					return nil, false, err
				}
				name, _, _ := strings.Cut(string(body), " ")
				if prev, ok := placed[session]; ok && prev != name {
					sticky = false
				}
				placed[session] = name
			}
		}
		return placed, sticky, nil
	}
	res := &result{sticky: true}

	fmt.Fprintf(w, "sticky sessions by %s on %s over %d backends\n", cfg.by, cfg.strategy, cfg.backends)
	before, ok, err := phase()
	if err != nil {
		return nil, err
	}
	res.sticky = res.sticky && ok
	fmt.Fprintf(w, "%d users x %d requests: each user on one backend: %v (%s)\n", cfg.users, cfg.requests, ok, usersPer(before))

	// One backend leaves.
	gone := servers[len(servers)-1].name
	if err := bal.Update(eps[:len(eps)-1]); err != nil {
		return nil, err
	}
	during, ok, err := phase()
	if err != nil {
		return nil, err
	}
	res.sticky = res.sticky && ok
	for session, name := range before {
		if during[session] != name {
			if name == gone {
				res.moved++
			} else {
				res.strayMoves++
			}
		}
	}
	fmt.Fprintf(w, "%s removed: %d users moved, %d of them from %s, %d from backends that stayed; %d stayed\n",
		gone, res.moved+res.strayMoves, res.moved, gone, res.strayMoves, cfg.users-res.moved-res.strayMoves)

	// It comes back.
	if err := bal.Update(eps); err != nil {
		return nil, err
	}
	after, ok, err := phase()
	if err != nil {
		return nil, err
	}
	res.sticky = res.sticky && ok
	res.restored = len(after) == len(before)
	for session, name := range before {
		if name == gone && after[session] == gone {
			res.returned++
		}
		if after[session] != name {
			res.restored = false
		}
	}
	fmt.Fprintf(w, "%s back: %d of its %d users returned to it; every user on its first backend: %v (%s)\n",
		gone, res.returned, res.moved, res.restored, usersPer(after))
	return res, nil
}

// usersPer formats how many users each backend holds.
func usersPer(placed map[string]string) string {
	count := map[string]int{}
	for _, name := range placed {
		count[name]++
	}
	names := make([]string, 0, len(count))
	for n := range count {
		names = append(names, n)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = n + ": " + strconv.Itoa(count[n])
	}
	return strings.Join(parts, ", ")
}
