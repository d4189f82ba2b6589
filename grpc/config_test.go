package lbgrpc_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/go-lb/lb"
	lbgrpc "github.com/go-lb/lb/grpc"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/credentials/insecure"
)

func TestParseConfig(t *testing.T) {
	t.Parallel()
	parser := lbgrpc.NewBuilder(lbgrpc.Options{}).(balancer.ConfigParser)
	tests := []struct {
		name string
		give string
		want string // "" for a valid config, else a part of the error
	}{
		{name: "empty", give: `{}`},
		{name: "round robin", give: `{"strategy": "round_robin"}`},
		{name: "weighted round robin", give: `{"strategy": "weighted_round_robin"}`},
		{name: "random", give: `{"strategy": "random"}`},
		{name: "weighted random", give: `{"strategy": "weighted_random"}`},
		{name: "p2c", give: `{"strategy": "p2c"}`},
		{name: "ring", give: `{"strategy": "ring", "ring": {"replicas": 256, "loadFactor": 1.25}, "requestHashHeader": "X-User"}`},
		{name: "maglev", give: `{"strategy": "maglev", "maglev": {"tableSize": 65537}}`},
		{name: "outlier defaults", give: `{"outlierDetection": {}}`},
		{name: "outlier", give: `{"outlierDetection": {"consecutiveFailures": 3, "baseEjectionTime": "1.5s", "maxEjectionTime": "300s", "maxEjectionPercent": 100}}`},
		{name: "failure codes", give: `{"failureCodes": ["UNAVAILABLE", "INTERNAL", 4]}`},
		{name: "unknown fields are ignored", give: `{"strategy": "p2c", "slowStart": {"window": "30s"}}`},
		{name: "subset", give: `{"subset": {"size": 20, "clientIndex": 3, "clientCount": 100}}`},
		{name: "subset by id", give: `{"strategy": "ring", "subset": {"size": 20, "clientId": "pod-7f9c", "byHash": true}}`},
		{name: "slow start", give: `{"strategy": "p2c", "slowStart": {"window": "30s", "aggression": 2, "minWeight": 0.05}}`},
		{name: "interval rules", give: `{"outlierDetection": {"interval": "5s", "successRateStdevFactor": -1, "failurePercentageThreshold": 60, "latencyFactor": 4}}`},

		{name: "not an object", give: `[]`, want: "not a JSON object"},
		{name: "strategy", give: `{"strategy": "least_request"}`, want: `strategy is "least_request"; it must be one of round_robin, weighted_round_robin, random, weighted_random, p2c, ring, maglev`},
		{name: "strategy type", give: `{"strategy": 1}`, want: "go_lb: strategy is a JSON number; it must be a string"},
		{name: "ring replicas", give: `{"strategy": "ring", "ring": {"replicas": -1}}`, want: "go_lb: ring: Ring.Replicas is -1; it must be 0 (default 1024) to 8388608"},
		{name: "ring load factor", give: `{"strategy": "ring", "ring": {"loadFactor": 0.5}}`, want: "go_lb: ring: Ring.LoadFactor is 0.5"},
		{name: "ring replicas type", give: `{"strategy": "ring", "ring": {"replicas": "many"}}`, want: "ring.replicas is a JSON string; it must be a number"},
		{name: "ring without ring", give: `{"strategy": "maglev", "ring": {"replicas": 10}}`, want: `ring is set but strategy is "maglev"`},
		{name: "maglev table size", give: `{"strategy": "maglev", "maglev": {"tableSize": 1000}}`, want: "maglev.tableSize is 1000; it must be a prime"},
		{name: "maglev table too big", give: `{"strategy": "maglev", "maglev": {"tableSize": 16777259}}`, want: "maglev.tableSize is 16777259"},
		{name: "maglev without maglev", give: `{"maglev": {"tableSize": 13}}`, want: `maglev is set but strategy is "round_robin"`},
		{name: "consecutive failures", give: `{"outlierDetection": {"consecutiveFailures": -2}}`, want: "go_lb: outlierDetection: OutlierDetection.ConsecutiveFailures is -2"},
		{name: "ejection percent", give: `{"outlierDetection": {"maxEjectionPercent": 101}}`, want: "OutlierDetection.MaxEjectionPercent is 101"},
		{name: "ejection time", give: `{"outlierDetection": {"baseEjectionTime": "soon"}}`, want: `outlierDetection.baseEjectionTime is "soon"; it must be a duration`},
		{name: "ejection time type", give: `{"outlierDetection": {"maxEjectionTime": 30}}`, want: "outlierDetection.maxEjectionTime is a JSON number; it must be a string"},
		{name: "ejection times order", give: `{"outlierDetection": {"baseEjectionTime": "10m", "maxEjectionTime": "1m"}}`, want: "MaxEjectionTime 1m0s is shorter than BaseEjectionTime 10m0s"},
		{name: "negative ejection time", give: `{"outlierDetection": {"baseEjectionTime": "-1s"}}`, want: "must not be negative"},
		{name: "header characters", give: `{"requestHashHeader": "x user"}`, want: `requestHashHeader "x user" has the character ' '`},
		{name: "binary header", give: `{"requestHashHeader": "x-user-bin"}`, want: `requestHashHeader "x-user-bin" ends in "-bin"`},
		{name: "pseudo header", give: `{"requestHashHeader": ":authority"}`, want: `requestHashHeader ":authority" has the character ':'`},
		{name: "failure code name", give: `{"failureCodes": ["UNAVAILABLE", "BROKEN"]}`, want: `failureCodes[1] is "BROKEN"; it must be a status code name`},
		{name: "failure code number", give: `{"failureCodes": [99]}`, want: "failureCodes[0] is 99"},
		{name: "failure code OK", give: `{"failureCodes": ["OK"]}`, want: "failureCodes[0] is OK; a success cannot be a failure"},
		{name: "subset size", give: `{"subset": {}}`, want: "go_lb: subset: Subset.Size is 0; it must be at least 1"},
		{name: "slow start window", give: `{"slowStart": {}}`, want: "go_lb: slowStart: SlowStart.Window is 0s"},
		{name: "slow start duration", give: `{"slowStart": {"window": "soon"}}`, want: "slowStart.window is \"soon\""},
		{name: "outlier interval", give: `{"outlierDetection": {"interval": "1us"}}`, want: "OutlierDetection.Interval"},
		{name: "outlier latency factor", give: `{"outlierDetection": {"latencyFactor": 0.5}}`, want: "OutlierDetection.LatencyFactor"},
		{name: "subset index", give: `{"subset": {"size": 5, "clientIndex": 100, "clientCount": 100}}`, want: "subset: Subset.ClientIndex is 100; it must be below ClientCount (100)"},
		{name: "subset index and id", give: `{"subset": {"size": 5, "clientIndex": 1, "clientId": "a"}}`, want: "subset: Subset.ClientID"},
		{name: "subset size type", give: `{"subset": {"size": "20"}}`, want: "subset.size is a JSON string; it must be a number"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := parser.ParseConfig(json.RawMessage(tt.give))
			if tt.want == "" {
				require.NoError(t, err)
				assert.NotNil(t, cfg)
				return
			}
			require.Error(t, err)
			assert.ErrorIs(t, err, lb.ErrInvalidConfig)
			assert.Contains(t, err.Error(), tt.want)
			assert.True(t, strings.HasPrefix(err.Error(), "lb: invalid configuration: go_lb: "), "the error says whose config it is: %v", err)
		})
	}
}

// TestNewClientRejectsBadConfig: gRPC refuses a service config whose go_lb
// entry is bad, with the policy's error.
func TestNewClientRejectsBadConfig(t *testing.T) {
	t.Parallel()
	_, err := grpc.NewClient("passthrough:///127.0.0.1:1",
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig": [{"go_lb": {"strategy": "ring", "ring": {"replicas": -5}}}]}`))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "Ring.Replicas is -5")

	// A policy name nothing registered (as go_lb is before Register) is
	// refused too: the package does not register itself on import.
	_, err = grpc.NewClient("passthrough:///127.0.0.1:1",
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig": [{"go_lb_never_registered": {}}]}`))
	assert.ErrorContains(t, err, "no supported policies")
}
