package lb

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The tests that run a DNS server are in the nested module internal/dnstest,
// so that its DNS library (miekg/dns) stays out of this module's graph.

func TestDNSConfigErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		give DNS
		want string
	}{
		{"nothing", DNS{}, "both empty"},
		{"both", DNS{Addr: "a:1", SRV: "_x._tcp.a."}, "both set"},
		{"no port", DNS{Addr: "a"}, "host:port"},
		{"empty host", DNS{Addr: ":80"}, "no host"},
		{"network", DNS{Addr: "a:1", Network: "tcp"}, "Network"},
		{"refresh", DNS{Addr: "a:1", Refresh: -1}, "Refresh"},
		{"jitter high", DNS{Addr: "a:1", Jitter: 1}, "Jitter"},
		{"jitter negative", DNS{Addr: "a:1", Jitter: -0.1}, "Jitter"},
		{"timeout", DNS{Addr: "a:1", Timeout: -1}, "Timeout"},
		{"max", DNS{Addr: "a:1", MaxEndpoints: -1}, "MaxEndpoints"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.give.Watch(context.Background(), func([]Endpoint) error {
				t.Error("update called")
				return nil
			})
			require.ErrorIs(t, err, ErrInvalidConfig)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}
