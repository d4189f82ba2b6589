package lb

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"
)

// DNS is a Resolver that looks a name up on an interval, through a
// net.Resolver. Set exactly one of Addr (A and AAAA records) and SRV:
//
//	lb.DNS{Addr: "api.internal.:8080"}        // every A/AAAA address, port 8080
//	lb.DNS{SRV: "_api._tcp.internal."}         // SRV targets, ports and weights
//
// Names ending in a dot are absolute: they skip the search domains of
// resolv.conf, which is both faster and safer (see below).
//
// SRV records: only the lowest priority present is used (the others are
// fallbacks for when that whole priority is gone from DNS). The record
// weight becomes the endpoint weight, divided by the weights' greatest
// common divisor (weights 60 and 40 give 3 and 2: the same shares, and
// smaller rings and schedules). Weight 0 counts as 1, the smallest share a
// Balancer can give: RFC 2782 gives weight-0 records a very small chance
// next to heavier ones, and equal chances when all are 0. Records whose
// target is "." (service not available) are dropped; two records for the
// same target and port add their weights. The endpoint address is the
// target name as DNS gives it, with its trailing dot, and the port; it is
// resolved when a connection is dialled.
//
// What is an error and what is an empty set: a lookup that fails (a
// timeout, SERVFAIL, a refused or broken connection) is transient: it is
// logged, retried with backoff (from 1 s up to Refresh), and the last set
// stays. Only an answer that the name does not exist (NXDOMAIN) or has no
// records of the type asked (NODATA) empties the set, since that is DNS
// saying there are no endpoints. For A/AAAA, each family is looked up on
// its own, and a failure of either keeps the last set, so a lost AAAA
// answer never turns a dual-stack service IPv4-only. With a relative name
// and search domains, Go's resolver can report a failure on one candidate
// name as "not found" on the next unless the net.Resolver has
// StrictErrors set: the default resolver used here sets it, and a
// Resolver of your own should too (or use absolute names).
//
// net.Resolver does not expose record TTLs, so the set is refreshed every
// Refresh, spread by Jitter so that a fleet of clients does not query in
// step. Answers larger than MaxEndpoints are capped: each DNS resolver
// keeps a stable subset (chosen by a hash of the address under a seed of
// its own), the same across refreshes and different between clients, so a
// fleet of clients still covers every backend.
type DNS struct {
	// Addr is "host:port": every A and AAAA address of host, each with
	// port. An IP literal host gives that one address and no lookup.
	Addr string
	// SRV is a name whose SRV records give the endpoints, such as
	// "_http._tcp.example.com.".
	SRV string
	// Network is "ip" (A and AAAA, the default), "ip4" (A only) or "ip6"
	// (AAAA only). SRV lookups ignore it.
	Network string
	// Resolver does the lookups; nil means a net.Resolver with
	// StrictErrors set and the system's configuration. Pass one of your own
	// for split-horizon setups or to point at a given server (its Dial).
	Resolver *net.Resolver
	// Refresh is the time between lookups; 0 means 30 s.
	Refresh time.Duration
	// Jitter spreads each wait uniformly over Refresh × (1 ± Jitter); 0
	// means 0.1. It must be less than 1.
	Jitter float64
	// Timeout bounds each lookup; 0 means 5 s.
	Timeout time.Duration
	// MaxEndpoints caps the endpoints taken from one answer; 0 means 1000.
	MaxEndpoints int
	// Logger receives lookup failures (Warn) and capped answers (Warn);
	// nil logs nothing.
	Logger *slog.Logger
}

// Defaults of DNS.
const (
	// defaultDNSRefresh is the default time between lookups.
	defaultDNSRefresh = 30 * time.Second
	// defaultDNSJitter is the default spread of the refresh interval.
	defaultDNSJitter = 0.1
	// defaultDNSTimeout is the default bound of one lookup.
	defaultDNSTimeout = 5 * time.Second
	// defaultDNSMaxEndpoints is the default cap on the endpoints taken
	// from one answer.
	defaultDNSMaxEndpoints = 1000
)

// dnsMinBackoff is the first wait after a failed lookup.
const dnsMinBackoff = time.Second

// withDefaults validates d and fills in its defaults. Errors wrap
// ErrInvalidConfig.
func (d DNS) withDefaults() (DNS, error) {
	bad := func(format string, args ...any) (DNS, error) {
		return DNS{}, fmt.Errorf("%w: DNS."+format, append([]any{ErrInvalidConfig}, args...)...)
	}
	switch {
	case d.Addr == "" && d.SRV == "":
		return bad("Addr and DNS.SRV are both empty; set one")
	case d.Addr != "" && d.SRV != "":
		return bad("Addr (%q) and DNS.SRV (%q) are both set; set one", d.Addr, d.SRV)
	case d.Addr != "":
		if why := checkAddr(d.Addr); why != "" {
			return bad("Addr is %q, which %s", d.Addr, why)
		}
	case d.SRV != "":
		if strings.IndexFunc(d.SRV, func(r rune) bool { return r <= ' ' || r == 0x7f }) >= 0 || checkHost(d.SRV) != "" {
			return bad("SRV is %q; it must be a DNS name such as _http._tcp.example.com.", d.SRV)
		}
	}
	switch d.Network {
	case "":
		d.Network = "ip"
	case "ip", "ip4", "ip6":
	default:
		return bad("Network is %q; it must be ip, ip4 or ip6", d.Network)
	}
	switch {
	case d.Refresh < 0:
		return bad("Refresh is %v; it must be >= 0 (0 means %v)", d.Refresh, defaultDNSRefresh)
	case d.Refresh == 0:
		d.Refresh = defaultDNSRefresh
	}
	switch {
	case !(d.Jitter >= 0 && d.Jitter < 1): // NaN too
		return bad("Jitter is %v; it must be in [0, 1) (0 means %v)", d.Jitter, defaultDNSJitter)
	case d.Jitter == 0:
		d.Jitter = defaultDNSJitter
	}
	switch {
	case d.Timeout < 0:
		return bad("Timeout is %v; it must be >= 0 (0 means %v)", d.Timeout, defaultDNSTimeout)
	case d.Timeout == 0:
		d.Timeout = defaultDNSTimeout
	}
	switch {
	case d.MaxEndpoints < 0:
		return bad("MaxEndpoints is %d; it must be >= 0 (0 means %d)", d.MaxEndpoints, defaultDNSMaxEndpoints)
	case d.MaxEndpoints == 0:
		d.MaxEndpoints = defaultDNSMaxEndpoints
	}
	if d.Resolver == nil {
		d.Resolver = &net.Resolver{StrictErrors: true}
	}
	if d.Logger == nil {
		d.Logger = slog.New(discardHandler{})
	}
	return d, nil
}

// Watch implements Resolver. It returns an error wrapping ErrInvalidConfig
// at once when d is invalid. When ctx ends during a lookup, Watch returns
// once that lookup is done (at most Timeout later), so that no goroutine of
// Go's resolver outlives it.
func (d DNS) Watch(ctx context.Context, update func([]Endpoint) error) error {
	d, err := d.withDefaults()
	if err != nil {
		return err
	}
	w := dnsWatch{DNS: d, seed: maphash.MakeSeed()}
	var last []Endpoint
	sent := false
	failures := 0
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		eps, err := w.resolve(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		wait := jittered(d.Refresh, d.Jitter)
		if err != nil {
			failures++
			wait = jittered(backoff(failures, dnsMinBackoff, d.Refresh), d.Jitter)
			d.Logger.Warn("lb: DNS lookup failed; keeping the last set", "name", w.name(),
				"err", err, "failures", failures, "retry_in", wait)
		} else {
			failures = 0
			if !sent || !EqualEndpoints(last, eps) {
				if err := update(CloneEndpoints(eps)); err != nil {
					return err
				}
				last, sent = eps, true
			}
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
		}
	}
}

// jittered spreads d uniformly over d × (1 ± j).
func jittered(d time.Duration, j float64) time.Duration {
	return time.Duration(float64(d) * (1 + j*(2*rand.Float64()-1)))
}

// backoff is lo · 2^(n-1), at most hi (and hi when hi <= lo).
func backoff(n int, lo, hi time.Duration) time.Duration {
	if hi <= lo {
		return hi
	}
	d := lo
	for i := 1; i < n && d < hi; i++ {
		d *= 2
	}
	return min(d, hi)
}

type dnsWatch struct {
	DNS
	seed     maphash.Seed
	lastSeen int // answer size last warned about, to warn once per change
}

func (w *dnsWatch) name() string {
	if w.SRV != "" {
		return w.SRV
	}
	return w.Addr
}

// resolve does one lookup and returns the sorted, deduplicated, capped
// set. A nil error with an empty set means DNS says there are none.
func (w *dnsWatch) resolve(ctx context.Context) ([]Endpoint, error) {
	// The lookup is not cut short when ctx ends: Go's resolver would leave
	// its query goroutines running until their deadline. Watch returns
	// once the lookup in flight is done, at most Timeout later.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), w.Timeout)
	defer cancel()
	var eps []Endpoint
	var err error
	if w.SRV != "" {
		eps, err = w.lookupSRV(ctx)
	} else {
		eps, err = w.lookupAddr(ctx)
	}
	if err != nil {
		return nil, err
	}
	return w.capped(eps), nil
}

func isNotFound(err error) bool {
	var de *net.DNSError
	return errors.As(err, &de) && de.IsNotFound
}

func (w *dnsWatch) lookupAddr(ctx context.Context) ([]Endpoint, error) {
	host, port, _ := net.SplitHostPort(w.Addr)
	if ip, err := netip.ParseAddr(host); err == nil {
		return []Endpoint{{Addr: net.JoinHostPort(ip.Unmap().String(), port)}}, nil
	}
	families := []string{"ip4", "ip6"}
	if w.Network != "ip" {
		families = []string{w.Network}
	}
	seen := map[netip.Addr]struct{}{}
	var eps []Endpoint
	for _, fam := range families {
		ips, err := w.Resolver.LookupNetIP(ctx, fam, host)
		if err != nil {
			if isNotFound(err) {
				continue // this family has no records: authoritative
			}
			return nil, err
		}
		for _, ip := range ips {
			ip = ip.Unmap()
			if _, dup := seen[ip]; dup || !ip.IsValid() {
				continue
			}
			seen[ip] = struct{}{}
			eps = append(eps, Endpoint{Addr: net.JoinHostPort(ip.String(), port)})
		}
	}
	return eps, nil
}

func (w *dnsWatch) lookupSRV(ctx context.Context) ([]Endpoint, error) {
	_, srvs, err := w.Resolver.LookupSRV(ctx, "", "", w.SRV)
	if err != nil {
		if isNotFound(err) {
			return nil, nil
		}
		if len(srvs) == 0 {
			return nil, err
		}
		// Go drops records with invalid target names and reports it
		// along with the valid ones: use those.
		w.Logger.Warn("lb: DNS SRV answer had invalid records; using the others", "name", w.SRV, "err", err)
	}
	return srvEndpoints(srvs), nil
}

// srvEndpoints turns SRV records into endpoints as the DNS resolver does:
// only the lowest priority present, weights divided by their greatest
// common divisor (0 counts as 1), records with target "." or port 0
// dropped, records for the same target and port merged (weights added),
// sorted by address. Nil records are ignored.
func srvEndpoints(srvs []*net.SRV) []Endpoint {
	best := -1
	for _, s := range srvs {
		if s != nil && usableSRV(s) && (best < 0 || int(s.Priority) < best) {
			best = int(s.Priority)
		}
	}
	if best < 0 {
		return nil
	}
	idx := map[string]int{}
	var eps []Endpoint
	for _, s := range srvs {
		if s == nil || !usableSRV(s) || int(s.Priority) != best {
			continue
		}
		addr := net.JoinHostPort(s.Target, strconv.Itoa(int(s.Port)))
		w := max(int(s.Weight), 1)
		if i, ok := idx[addr]; ok {
			eps[i].Weight = min(eps[i].Weight+w, MaxWeight)
			continue
		}
		idx[addr] = len(eps)
		eps = append(eps, Endpoint{Addr: addr, Weight: w})
	}
	g := 0
	for _, e := range eps {
		g = gcdInt(g, e.Weight)
	}
	for i := range eps {
		eps[i].Weight /= g
	}
	sortEndpoints(eps)
	return eps
}

func usableSRV(s *net.SRV) bool {
	t := strings.TrimSuffix(s.Target, ".")
	return t != "" && s.Port != 0 && Endpoint{Addr: net.JoinHostPort(s.Target, strconv.Itoa(int(s.Port)))}.Validate() == nil
}

func gcdInt(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// capped sorts eps and, past MaxEndpoints, keeps the MaxEndpoints whose
// address hashes lowest under the watch's seed: a subset that is stable
// across refreshes and differs between resolvers.
func (w *dnsWatch) capped(eps []Endpoint) []Endpoint {
	if len(eps) > w.MaxEndpoints {
		if len(eps) != w.lastSeen {
			w.Logger.Warn("lb: DNS answer exceeds MaxEndpoints; keeping a stable subset",
				"name", w.name(), "records", len(eps), "max", w.MaxEndpoints)
		}
		w.lastSeen = len(eps)
		h := make(map[string]uint64, len(eps))
		for _, e := range eps {
			h[e.Addr] = maphash.String(w.seed, e.Addr)
		}
		sort.Slice(eps, func(i, j int) bool {
			hi, hj := h[eps[i].Addr], h[eps[j].Addr]
			if hi != hj {
				return hi < hj
			}
			return eps[i].Addr < eps[j].Addr
		})
		eps = eps[:w.MaxEndpoints]
	} else {
		w.lastSeen = 0
	}
	sortEndpoints(eps)
	return eps
}
