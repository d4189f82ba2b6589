// Package lb is a client-side load balancer: an application wraps its
// http.Client (or any client) with it, and every call goes to a backend
// chosen by a pluggable strategy. No proxy, no sidecar.
//
// # Pieces
//
//   - A Picker chooses a backend for one call, by the call's key (empty
//     when there is none). It is an immutable snapshot over a fixed set of
//     backends; Pick takes no lock and allocates nothing.
//   - A Builder (each strategy below) turns a set of backends into a Picker.
//     Each strategy is a small config struct whose zero value means the
//     defaults, with New for use alone and Build for a Balancer.
//   - A Balancer owns the live set of backends and their counters (calls in
//     flight, failures, latency EWMA), swaps pickers atomically when the set
//     changes, and ejects failing backends (OutlierDetection) or those a
//     health check marks down (SetHealthy). In large fleets it keeps only
//     the client's deterministic subset of the set (Subset), and prefers
//     the client's own zone, spilling over by priority and proximity as it
//     loses healthy capacity (Locality).
//
// # Which strategy for which job
//
//	Strategy            Pick cost           Use it for
//	RoundRobin          O(1), ~3 ns         equal backends, equal calls: the simple default
//	WeightedRoundRobin  O(1), ~3 ns         backends of different sizes; nginx's smooth order
//	Random              O(1)                many independent clients; no coordination at all
//	WeightedRandom      O(1) (alias table)  canaries and traffic splits (90/10)
//	P2C                 O(1)                calls of uneven cost or backends of uneven speed:
//	                                        the cheaper of two random backends wins ((calls
//	                                        in flight + 1) × latency, raised by failures)
//	Ring                O(1) expected       stickiness: sessions, caches, shards; adding a
//	                                        backend moves only ~1/(N+1) of keys, none between
//	                                        others; LoadFactor bounds hot keys' damage; any N
//	                                        (past 256 units of weight it scales to ~1.5M points)
//	Ring{Compat: ...}   O(1) expected       the same keys on the same nodes as groupcache,
//	                                        stathat/consistent, nginx "hash consistent", or
//	                                        gRPC/Envoy ring_hash: migrate without a miss storm
//	Maglev              O(1), one read      stickiness with the best balance (max/mean ~1.02);
//	                                        keys move a little more than on a ring
//	Anchor              O(1) expected       stickiness with exact balance and the least
//	                                        movement, in a few bytes per backend; placement
//	                                        follows the set's history (see Anchor)
//
// Ring, Maglev and Anchor also give a key's ordered list of distinct
// backends (PreferenceLister), for placing replicas and for retrying a
// keyed call on its next backend.
//
// # Placement is a promise
//
// The hash strategies place a key the same way in every process and every
// release (xxhash64 by default, collision-free virtual-node names, ties
// ordered by hash name, independent of input order); golden files in the
// tests pin it. A backend is placed by its hash name (Endpoint.HashKey, or
// its address), so re-addressing it moves no key. cmd/lbplace prints where
// keys land under each scheme, and what moves between two.
//
// # Concurrency
//
// Every type here is safe for concurrent use. The rotating strategies
// (RoundRobin, WeightedRoundRobin) keep per-goroutine-striped counters so
// that parallel picks do not contend on one cache line; each stripe keeps
// the strategy's exact order, and Stripes: 1 keeps one global order.
package lb
