package dnstest_test

import (
	"context"
	"fmt"
	"net"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-lb/lb"
	"github.com/go-lb/lb/internal/resolvertest"
)

// dnsServer is a real lb.DNS server on loopback (UDP and TCP), answering from
// a zone the test changes as it goes. The stdlib resolver reaches it
// through net.Resolver.Dial.
type dnsServer struct {
	udp, tcp *dns.Server
	udpAddr  string
	tcpAddr  string

	mu      sync.Mutex
	records map[string][]dns.RR // by lower-case name + "/" + type
	names   map[string]bool     // names that exist (NODATA, not NXDOMAIN, when no record of a type)
	rcode   map[string]int      // names answered with this rcode (SERVFAIL)
	slow    map[string]bool     // names answered late, after the resolver's timeout
	late    sync.WaitGroup      // late answers not sent yet
	qfail   map[string]uint16   // names answered SERVFAIL for one query type
	queries atomic.Int64
	tcpSeen atomic.Int64
}

func startDNSServer(t *testing.T) *dnsServer {
	t.Helper()
	s := &dnsServer{records: map[string][]dns.RR{}, names: map[string]bool{}, rcode: map[string]int{}, slow: map[string]bool{}, qfail: map[string]uint16{}}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	s.udpAddr, s.tcpAddr = pc.LocalAddr().String(), ln.Addr().String()
	var started sync.WaitGroup
	started.Add(2)
	s.udp = &dns.Server{PacketConn: pc, Handler: s, NotifyStartedFunc: started.Done}
	s.tcp = &dns.Server{Listener: ln, Handler: s, NotifyStartedFunc: started.Done}
	var served sync.WaitGroup
	for _, srv := range []*dns.Server{s.udp, s.tcp} {
		served.Add(1)
		go func(srv *dns.Server) {
			defer served.Done()
			_ = srv.ActivateAndServe()
		}(srv)
	}
	started.Wait()
	t.Cleanup(func() {
		// Late answers go out first: Go's resolver keeps waiting for an
		// abandoned query (up to resolv.conf's timeout) in a goroutine.
		s.late.Wait()
		_ = s.udp.Shutdown()
		_ = s.tcp.Shutdown()
		served.Wait()
	})
	return s
}

// resolver returns a stdlib resolver that sends every query to s.
func (s *dnsServer) resolver() *net.Resolver {
	return &net.Resolver{
		PreferGo:     true,
		StrictErrors: true,
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			if strings.HasPrefix(network, "tcp") {
				return d.DialContext(ctx, "tcp", s.tcpAddr)
			}
			return d.DialContext(ctx, "udp", s.udpAddr)
		},
	}
}

// set replaces the records of name (any types); no records at all makes
// the name not exist (NXDOMAIN). It also clears a forced rcode or slowness.
func (s *dnsServer) set(name string, rrs ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	name = strings.ToLower(dns.Fqdn(name))
	for k := range s.records {
		if strings.HasPrefix(k, name+"/") {
			delete(s.records, k)
		}
	}
	delete(s.rcode, name)
	delete(s.slow, name)
	delete(s.qfail, name)
	s.names[name] = len(rrs) > 0
	for _, text := range rrs {
		rr, err := dns.NewRR(text)
		if err != nil {
			panic(err)
		}
		k := name + "/" + dns.TypeToString[rr.Header().Rrtype]
		s.records[k] = append(s.records[k], rr)
	}
}

func (s *dnsServer) fail(name string, rcode int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rcode[strings.ToLower(dns.Fqdn(name))] = rcode
}

// slowDown makes the server answer name only after lateAnswer, past the
// resolver's timeout in the tests that use it.
func (s *dnsServer) slowDown(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.slow[strings.ToLower(dns.Fqdn(name))] = true
}

const lateAnswer = 300 * time.Millisecond

// ServeDNS implements dns.Handler.
func (s *dnsServer) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	s.queries.Add(1)
	if w.RemoteAddr().Network() == "tcp" {
		s.tcpSeen.Add(1)
	}
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	if len(req.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		_ = w.WriteMsg(m)
		return
	}
	q := req.Question[0]
	name := strings.ToLower(q.Name)
	s.mu.Lock()
	slow := s.slow[name]
	if slow {
		s.late.Add(1) // under mu: Cleanup's Wait cannot have started yet
	}
	rcode, forced := s.rcode[name]
	if qt, ok := s.qfail[name]; ok && qt == q.Qtype {
		rcode, forced = dns.RcodeServerFailure, true
	}
	exists := s.names[name]
	m.Answer = append(m.Answer, s.records[name+"/"+dns.TypeToString[q.Qtype]]...)
	s.mu.Unlock()
	if slow {
		defer s.late.Done()
		time.Sleep(lateAnswer) // a slow server, not a wait for a condition
	}
	switch {
	case forced:
		m.Answer = nil
		m.Rcode = rcode
	case !exists:
		m.Rcode = dns.RcodeNameError
	}
	if w.RemoteAddr().Network() == "udp" {
		size := dns.MinMsgSize
		if opt := req.IsEdns0(); opt != nil {
			size = int(opt.UDPSize())
		}
		m.Truncate(size) // sets TC: the stdlib resolver retries over TCP
	}
	_ = w.WriteMsg(m)
}

// waitQueries waits until the server has answered n more queries.
func (s *dnsServer) waitQueries(t *testing.T, n int64) {
	t.Helper()
	target := s.queries.Load() + n
	resolvertest.WaitFor(t, fmt.Sprintf("%d more DNS queries", n), func() bool { return s.queries.Load() >= target })
}

const fastRefresh = 20 * time.Millisecond

func TestDNSAddrRecords(t *testing.T) {
	t.Parallel()
	srv := startDNSServer(t)
	srv.set("api.test.",
		"api.test. 60 IN A 10.0.0.2",
		"api.test. 60 IN A 10.0.0.1",
		"api.test. 60 IN A 10.0.0.1", // duplicate record
		"api.test. 60 IN AAAA 2001:db8::1")
	srv.set("v4only.test.", "v4only.test. 60 IN A 10.0.0.9")
	tests := []struct {
		name string
		give lb.DNS
		want []string
	}{
		{"A and AAAA", lb.DNS{Addr: "api.test.:8080"}, []string{"10.0.0.1:8080", "10.0.0.2:8080", "[2001:db8::1]:8080"}},
		{"A only", lb.DNS{Addr: "api.test.:8080", Network: "ip4"}, []string{"10.0.0.1:8080", "10.0.0.2:8080"}},
		{"AAAA only", lb.DNS{Addr: "api.test.:80", Network: "ip6"}, []string{"[2001:db8::1]:80"}},
		{"no AAAA records is not an error", lb.DNS{Addr: "v4only.test.:1"}, []string{"10.0.0.9:1"}},
		{"IP literal needs no lookup", lb.DNS{Addr: "[::ffff:10.1.2.3]:9"}, []string{"10.1.2.3:9"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.give.Resolver = srv.resolver()
			rec := resolvertest.Watch(t, tt.give)
			resolvertest.WaitFor(t, "a set", func() bool { return rec.Count() > 0 })
			assert.Equal(t, tt.want, rec.Addrs())
			require.ErrorIs(t, rec.Stop(), context.Canceled)
			assert.Equal(t, 1, rec.Count())
		})
	}
}

func TestDNSSRVWeightsAndPriorities(t *testing.T) {
	t.Parallel()
	srv := startDNSServer(t)
	srv.set("_api._tcp.svc.test.",
		"_api._tcp.svc.test. 60 IN SRV 10 60 8080 a.svc.test.",
		"_api._tcp.svc.test. 60 IN SRV 10 40 8081 b.svc.test.",
		"_api._tcp.svc.test. 60 IN SRV 20 10 8080 backup.svc.test.")
	rec := resolvertest.Watch(t, lb.DNS{SRV: "_api._tcp.svc.test.", Resolver: srv.resolver(), Refresh: fastRefresh})
	resolvertest.WaitFor(t, "a set", func() bool { return rec.Count() > 0 })
	assert.Equal(t, []lb.Endpoint{{Addr: "a.svc.test.:8080", Weight: 3}, {Addr: "b.svc.test.:8081", Weight: 2}}, rec.Last())

	// The whole first priority goes: the fallback takes over.
	srv.set("_api._tcp.svc.test.",
		"_api._tcp.svc.test. 60 IN SRV 20 10 8080 backup.svc.test.",
		"_api._tcp.svc.test. 60 IN SRV 30 0 8080 last.svc.test.")
	rec.WaitCount(t, 2, "the fallback priority")
	assert.Equal(t, []lb.Endpoint{{Addr: "backup.svc.test.:8080", Weight: 1}}, rec.Last())

	// A balancer over these weights splits traffic 3:2.
	srv.set("_api._tcp.svc.test.",
		"_api._tcp.svc.test. 60 IN SRV 0 300 1 a.svc.test.",
		"_api._tcp.svc.test. 60 IN SRV 0 200 1 b.svc.test.")
	rec.WaitCount(t, 3, "new weights")
	p, err := lb.WeightedRoundRobin{Stripes: 1}.New(rec.Last())
	require.NoError(t, err)
	counts := map[string]int{}
	for i := 0; i < 500; i++ {
		b, err := p.Pick("")
		require.NoError(t, err)
		counts[b.Addr()]++
	}
	assert.Equal(t, map[string]int{"a.svc.test.:1": 300, "b.svc.test.:1": 200}, counts)
}

func TestDNSRecordsChangeBetweenRefreshes(t *testing.T) {
	t.Parallel()
	srv := startDNSServer(t)
	srv.set("web.test.", "web.test. 1 IN A 10.0.0.1")
	rec := resolvertest.Watch(t, lb.DNS{Addr: "web.test.:80", Network: "ip4", Resolver: srv.resolver(), Refresh: fastRefresh})
	rec.WaitCount(t, 1, "a set")
	assert.Equal(t, []string{"10.0.0.1:80"}, rec.Addrs())

	// Unchanged answers are not reported again.
	srv.waitQueries(t, 5)
	assert.Equal(t, 1, rec.Count())

	srv.set("web.test.", "web.test. 1 IN A 10.0.0.1", "web.test. 1 IN A 10.0.0.3")
	rec.WaitCount(t, 2, "a grown set")
	assert.Equal(t, []string{"10.0.0.1:80", "10.0.0.3:80"}, rec.Addrs())

	srv.set("web.test.", "web.test. 1 IN A 10.0.0.3")
	rec.WaitCount(t, 3, "a shrunk set")
	assert.Equal(t, []string{"10.0.0.3:80"}, rec.Addrs())
	srv.waitQueries(t, 5)
	assert.Equal(t, 3, rec.Count())
}

// Failures keep the last set: SERVFAIL, REFUSED, a server that answers
// too late. NXDOMAIN and NODATA are lb.DNS saying there is nothing: the set
// empties, and fills again when records come back.
func TestDNSFailuresKeepTheLastSet(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		breakIt func(s *dnsServer, name string)
	}{
		{"SERVFAIL", func(s *dnsServer, name string) { s.fail(name, dns.RcodeServerFailure) }},
		{"REFUSED", func(s *dnsServer, name string) { s.fail(name, dns.RcodeRefused) }},
		{"timeout", func(s *dnsServer, name string) { s.slowDown(name) }},
	}
	for _, tt := range tests {
		for _, srvMode := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/srv=%v", tt.name, srvMode), func(t *testing.T) {
				t.Parallel()
				s := startDNSServer(t)
				d := lb.DNS{Resolver: s.resolver(), Refresh: fastRefresh, Timeout: 100 * time.Millisecond}
				name := "db.test."
				if srvMode {
					name = "_db._tcp.test."
					d.SRV = name
					s.set(name, name+" 1 IN SRV 0 1 5432 db1.test.")
				} else {
					d.Addr = name + ":5432"
					s.set(name, name+" 1 IN A 10.0.0.1", name+" 1 IN AAAA 2001:db8::1")
				}
				rec := resolvertest.Watch(t, d)
				rec.WaitCount(t, 1, "a set")
				want := rec.Last()
				require.Len(t, want, map[bool]int{false: 2, true: 1}[srvMode])

				tt.breakIt(s, name)
				s.waitQueries(t, 6) // three failed refreshes at least
				assert.Equal(t, 1, rec.Count(), "a failure changed the set")
				assert.Equal(t, want, rec.Last())

				// Recovery: the next good answer is taken.
				if srvMode {
					s.set(name, name+" 1 IN SRV 0 1 5432 db2.test.")
				} else {
					s.set(name, name+" 1 IN A 10.0.0.2")
				}
				rec.WaitCount(t, 2, "the recovered set")
				assert.Len(t, rec.Last(), 1)

				// NXDOMAIN is authoritative: the set empties.
				s.set(name)
				rec.WaitCount(t, 3, "the empty set")
				assert.Empty(t, rec.Last())
				assert.NotNil(t, rec.Last(), "an empty set is reported as an empty slice")
			})
		}
	}
}

// Only the AAAA lookup fails: the set is kept whole, not turned IPv4-only.
func TestDNSOneFamilyFailingKeepsTheSet(t *testing.T) {
	t.Parallel()
	s := startDNSServer(t)
	s.set("dual.test.", "dual.test. 1 IN A 10.0.0.1", "dual.test. 1 IN AAAA 2001:db8::1")
	rec := resolvertest.Watch(t, lb.DNS{Addr: "dual.test.:80", Resolver: s.resolver(), Refresh: fastRefresh, Timeout: 100 * time.Millisecond})
	rec.WaitCount(t, 1, "a set")
	require.Len(t, rec.Last(), 2)

	s.mu.Lock()
	s.qfail["dual.test."] = dns.TypeAAAA
	s.mu.Unlock()
	s.waitQueries(t, 6)
	assert.Equal(t, 1, rec.Count())
	assert.Len(t, rec.Last(), 2)
}

func TestDNSNoDataEmptiesTheSet(t *testing.T) {
	t.Parallel()
	s := startDNSServer(t)
	s.set("x.test.", "x.test. 1 IN A 10.0.0.1")
	rec := resolvertest.Watch(t, lb.DNS{Addr: "x.test.:80", Resolver: s.resolver(), Refresh: fastRefresh})
	rec.WaitCount(t, 1, "a set")
	s.set("x.test.", "x.test. 1 IN TXT \"no addresses\"") // the name exists, with no A/AAAA
	rec.WaitCount(t, 2, "the empty set")
	assert.Empty(t, rec.Last())
}

func TestDNSOversizedAnswerIsCapped(t *testing.T) {
	t.Parallel()
	s := startDNSServer(t)
	const n, limit = 1500, 100
	rrs := make([]string, n)
	all := map[string]bool{}
	for i := range rrs {
		ip := fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255)
		rrs[i] = "big.test. 60 IN A " + ip
		all[ip+":80"] = true
	}
	s.set("big.test.", rrs...)
	d := lb.DNS{Addr: "big.test.:80", Network: "ip4", Resolver: s.resolver(), Refresh: fastRefresh, MaxEndpoints: limit}
	rec1, rec2 := resolvertest.Watch(t, d), resolvertest.Watch(t, d)
	resolvertest.WaitFor(t, "capped sets", func() bool { return rec1.Count() > 0 && rec2.Count() > 0 })
	assert.Positive(t, s.tcpSeen.Load(), "the answer should have been too big for UDP")
	got := rec1.Addrs()
	require.Len(t, got, limit)
	for _, a := range got {
		require.True(t, all[a], "%s is not in the answer", a)
	}
	_, err := lb.NewBackends(rec1.Last())
	require.NoError(t, err)
	// The subset is stable across refreshes: nothing new is reported.
	s.waitQueries(t, 8)
	assert.Equal(t, 1, rec1.Count())
	// Two resolvers keep different subsets (the chance that two random
	// seeds choose the same 100 of 1500 is nil for any purpose).
	assert.NotEqual(t, got, rec2.Addrs())

	// The default cap is 1000; under the cap, everything is kept.
	d.MaxEndpoints = 0
	rec3 := resolvertest.Watch(t, d)
	d.MaxEndpoints = n
	rec4 := resolvertest.Watch(t, d)
	resolvertest.WaitFor(t, "the full sets", func() bool { return rec3.Count() > 0 && rec4.Count() > 0 })
	assert.Equal(t, 1000, len(rec3.Last()))
	assert.Equal(t, n, len(rec4.Last()))
}

// The whole path: lb.DNS -> lb.Follow -> Balancer, with a record set changing and
// a SERVFAIL in between; the balancer never empties.
func TestDNSFollowIntoBalancer(t *testing.T) {
	t.Parallel()
	s := startDNSServer(t)
	s.set("svc.test.", "svc.test. 1 IN A 10.0.0.1", "svc.test. 1 IN A 10.0.0.2")
	builds := &countingBuilder{Builder: lb.RoundRobin{}}
	bal, err := lb.NewBalancer(builds)
	require.NoError(t, err)
	defer bal.Close()
	f := lb.StartFollower(context.Background(), lb.DNS{Addr: "svc.test.:80", Network: "ip4", Resolver: s.resolver(), Refresh: fastRefresh}, bal)
	<-f.Ready()
	assert.Equal(t, []string{"10.0.0.1:80", "10.0.0.2:80"}, rsvAddrs(bal.Backends()))
	n := builds.n.Load()
	s.waitQueries(t, 4)
	assert.Equal(t, n, builds.n.Load(), "unchanged answers rebuilt the picker")

	s.fail("svc.test.", dns.RcodeServerFailure)
	s.waitQueries(t, 4)
	assert.Equal(t, n, builds.n.Load(), "SERVFAIL changed the picker")
	pk, err := bal.Pick("")
	require.NoError(t, err)
	pk.Done(nil, 0)

	s.set("svc.test.", "svc.test. 1 IN A 10.0.0.3")
	resolvertest.WaitFor(t, "the new set", func() bool { return len(bal.Backends()) == 1 })
	assert.Equal(t, []string{"10.0.0.3:80"}, rsvAddrs(bal.Backends()))
	require.NoError(t, f.Stop())
}

// countingBuilder counts the pickers built.
type countingBuilder struct {
	lb.Builder
	n atomic.Int64
}

func (c *countingBuilder) Build(bs []*lb.Backend) (lb.Picker, error) {
	c.n.Add(1)
	return c.Builder.Build(bs)
}

func rsvAddrs(bs []*lb.Backend) []string {
	out := make([]string, len(bs))
	for i, b := range bs {
		out[i] = b.Addr()
	}
	sort.Strings(out)
	return out
}
