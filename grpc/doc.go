// Package lbgrpc runs lb's strategies as a grpc-go load-balancing policy:
// a gRPC client picks its backend with lb's round robin, smooth weighted
// round robin, random, weighted random, power of two choices, consistent
// hash ring or Maglev, with lb's passive outlier ejection, selected
// through the service config.
//
// # Use
//
// Register the policy once at start-up, then name it in the service
// config:
//
//	lbgrpc.Register() // in main, before any grpc.NewClient
//
//	cc, err := grpc.NewClient("dns:///cache.internal:50051",
//		grpc.WithTransportCredentials(creds),
//		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig": [
//			{"go_lb": {"strategy": "ring", "requestHashHeader": "x-user-id",
//			           "outlierDetection": {"consecutiveFailures": 5}}}]}`))
//
// The package registers nothing by itself (no init function): the policy
// exists for gRPC once Register, or balancer.Register(NewBuilder(opts)),
// has run. A service config that names only go_lb before that is refused
// by grpc.NewClient.
//
// # Config
//
// The policy's entry in "loadBalancingConfig" is a JSON object; every field
// is optional, unknown fields are ignored (as gRPC asks of every policy),
// and a bad value is refused with an error that names the field and wraps
// lb.ErrInvalidConfig.
//
//	field              value
//	strategy           "round_robin" (default), "weighted_round_robin", "random",
//	                   "weighted_random", "p2c", "ring", "maglev"
//	ring               {"replicas": 1024, "loadFactor": 1.25}: lb.Ring's Replicas
//	                   and LoadFactor (bounded loads); only with "ring"
//	maglev             {"tableSize": 65537}: lb.Maglev's TableSize (a prime);
//	                   only with "maglev"
//	outlierDetection   {"consecutiveFailures": 5, "baseEjectionTime": "30s",
//	                   "maxEjectionTime": "300s", "maxEjectionPercent": 50,
//	                   "interval": "10s", "successRateStdevFactor": 1.9,
//	                   "successRateMinHosts": 5, "successRateRequestVolume": 100,
//	                   "failurePercentageThreshold": 50,
//	                   "failurePercentageMinHosts": 2,
//	                   "failurePercentageRequestVolume": 20, "latencyFactor": 0}:
//	                   lb.OutlierDetection, on when the object is present; zero
//	                   or absent fields take lb's defaults, negative ones turn
//	                   that rule off
//	slowStart          {"window": "30s", "aggression": 1, "minWeight": 0.1}:
//	                   lb.SlowStart, on when the object is present; window is
//	                   required
//	subset             {"size": 20, "clientIndex": 3, "clientCount": 0,
//	                   "clientId": "", "byHash": false}: lb.Subset, on when the
//	                   object is present: the ClientConn connects to size of the
//	                   endpoints only (see below); size is required
//	requestHashHeader  the call metadata whose values are the hash key (gRFC A76)
//	failureCodes       the status codes charged to a backend, by name or number;
//	                   default ["UNAVAILABLE", "DEADLINE_EXCEEDED"]
//
// A config change that keeps strategy, ring, maglev, outlierDetection,
// subset and slowStart keeps the ClientConn's lb.Balancer and its
// counters; a change to one of them starts a new one.
//
// # Endpoints and connections
//
// Each ClientConn has one lb.Balancer over the resolver's endpoints. An
// endpoint's lb address is its first address (as for gRPC's ring_hash),
// its weight is the weight attribute of
// google.golang.org/grpc/experimental/balancer/weight (set by xDS; 1 when
// unset), and its hash key, when set, is the one of
// google.golang.org/grpc/resolver/ringhash (gRFC A76): the ring and Maglev
// then place it by that name rather than by its address. Endpoints lb
// refuses (an address that is not host:port, a repeated address or hash
// key) are skipped and logged.
//
// Every address gets a SubConn, connected at once and reconnected when it
// goes idle; with "subset", only the addresses of the client's subset do
// (lb.Subset: deterministic subsetting, so that thousands of clients do not
// each connect to thousands of backends). gRPC endpoints carry no labels,
// so the subset places backends by their hash names: spread by rank
// (clients per backend within a few percent of the mean; a change moves
// more connections than it must), or with "byHash" by their hashes (few
// connections move; clients per backend less even). Give each client its
// own "clientIndex" (a pod ordinal), or a "clientId" to be hashed. lb's picker holds the endpoints that are READY (for ring and
// Maglev, also those connecting: a keyed call waits for its own backend
// rather than moving, and moves only when its backend fails to connect,
// as in gRPC's ring_hash); the others are marked down with
// lb.Balancer.SetHealthy. The ClientConn is READY when an endpoint is,
// CONNECTING while none is but one is connecting (calls wait), and
// TRANSIENT_FAILURE when all failed to connect: calls then fail with
// UNAVAILABLE and the last connection error, and wait-for-ready calls
// wait. gRPC's client-side health checking (the service config's
// healthCheckConfig, with google.golang.org/grpc/health imported) drives
// the SubConns' states too.
//
// # Hash key
//
// The ring and Maglev send every call with the same key to the same
// backend. A call's key is the one WithHashKey put in its context, else
// the values of the metadata named by requestHashHeader, joined by ","
// (gRFC A76's request_hash_header), else none: such calls are spread at
// random.
//
// # Whose failure
//
// Each call ends its lb pick: Pick.Done with the call's latency for a
// success or a failure of the backend, Pick.Cancel (no success, no failure)
// for the rest, so only the backend's own failures build its streak
// towards ejection and its score:
//
//	call's end                                          reported to lb
//	OK                                                  success
//	not sent (gRPC found the SubConn not ready)         neither (Cancel)
//	the caller's context cancelled or past its deadline neither, whatever the code
//	CANCELLED (the ClientConn closing, the server)      neither
//	UNAVAILABLE: refused, reset, GOAWAY, overloaded     failure
//	DEADLINE_EXCEEDED while the caller's context lives  failure (the server's or
//	                                                    a downstream deadline)
//	any other code: INVALID_ARGUMENT, NOT_FOUND,        success: the backend answered,
//	PERMISSION_DENIED, INTERNAL, UNKNOWN, ...           with the application's error
//
// failureCodes replaces the codes that count as failures (the first rows
// stay as they are): ["UNAVAILABLE", "DEADLINE_EXCEEDED", "INTERNAL"] also
// charges INTERNAL.
//
// # Retries
//
// gRPC's retryPolicy (the service config's methodConfig) retries a call;
// each attempt is a new pick. Round robin, random and P2C go to another
// backend; a keyed call on the ring or Maglev goes to the same one until it
// is ejected or stops being READY. Mark idempotent methods retryable on
// UNAVAILABLE, and a backend that is killed costs no failed calls (the
// package's fault test counts them).
package lbgrpc
