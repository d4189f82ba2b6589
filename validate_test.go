package lb

import (
	"math"
	"net/http"
	"reflect"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// configs lists every configuration type with a validating function, from
// a valid base value: TestConfigFloatsRejectNaNAndInf sets each of their
// float fields to NaN and ±Inf in turn. A config type with a float field
// must be listed here (the test finds the exported config types of the
// package's options by their validation functions).
func configs() []struct {
	name     string
	base     any
	validate func(v any) error
} {
	return []struct {
		name     string
		base     any
		validate func(v any) error
	}{
		{"DNS", DNS{Addr: "api.internal.:80"}, func(v any) error { _, err := v.(DNS).withDefaults(); return err }},
		{"RetryBudget", RetryBudget{}, func(v any) error { _, err := v.(RetryBudget).withDefaults(); return err }},
		{"Ring", Ring{}, func(v any) error { return v.(Ring).validate() }},
		{"OutlierDetection", OutlierDetection{}, func(v any) error { _, err := v.(OutlierDetection).withDefaults(); return err }},
		{"HealthCheck", HealthCheck{}, func(v any) error { _, err := v.(HealthCheck).withDefaults(); return err }},
	}
}

// NaN and infinities are rejected for every float setting, with an error
// naming the field (a NaN jitter used to turn DNS lookups into a busy loop).
func TestConfigFloatsRejectNaNAndInf(t *testing.T) {
	t.Parallel()
	floats := 0
	for _, c := range configs() {
		require.NoError(t, c.validate(c.base), "%s: the base is valid", c.name)
		typ := reflect.TypeOf(c.base)
		for i := 0; i < typ.NumField(); i++ {
			f := typ.Field(i)
			if !f.IsExported() || f.Type.Kind() != reflect.Float64 {
				continue
			}
			floats++
			for _, bad := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
				v := reflect.New(typ).Elem()
				v.Set(reflect.ValueOf(c.base))
				v.Field(i).SetFloat(bad)
				err := c.validate(v.Interface())
				require.ErrorIs(t, err, ErrInvalidConfig, "%s.%s = %v", c.name, f.Name, bad)
				assert.Contains(t, err.Error(), f.Name, "the error names the field")
			}
		}
	}
	assert.GreaterOrEqual(t, floats, 3, "DNS.Jitter, RetryBudget.Ratio, Ring.LoadFactor at least")
}

// Endpoint addresses: ports are numbers from 1 to 65535 or known service
// names, hosts are IP addresses or DNS names.
func TestEndpointValidateAddresses(t *testing.T) {
	t.Parallel()
	good := []string{
		"10.0.0.1:80", "10.0.0.1:080", "[::1]:443", "[fe80::1%eth0]:80", "api.internal:8080",
		"api.internal.:8080", "a-b.c_d.example:1", "host:http", "host:https", "x:65535", "[::ffff:10.0.0.1]:80",
		"_grpc._tcp.example.com:50051", "localhost:1",
	}
	for _, a := range good {
		assert.NoError(t, Endpoint{Addr: a}.Validate(), a)
	}
	bad := []struct{ give, want string }{
		{"h:99999999999999999999", "ports must be 1-65535"},
		{"h:65536", "ports must be 1-65535"},
		{"h:0", "ports must be 1-65535"},
		{"h:000", "ports must be 1-65535"},
		{"h:+80", "neither a number"},
		{"h:-80", "neither a number"},
		{"h:1e3", "not a service this system knows"},
		{"h:0x50", "not a service this system knows"},
		{"h:no-such-service-x", "neither a number"},
		{"h:8 0", "whitespace"},
		{"h:", "no port"},
		{":80", "no host"},
		{"h", "not host:port"},
		{"::1:80", "not host:port"},
		{"[h]:80", "neither an IPv6 address nor a name"},
		{"[1.2.3.4]:80", "neither an IPv6 address nor a name"},
		{"a..b:80", "empty label"},
		{"-a.b:80", "starts or ends with '-'"},
		{"a/b:80", "holds"},
		{"a%b:80", "holds"},
		{"10.0.0.256:80", "not a valid IP address"},
		{"010.0.0.1:80", "not a valid IP address"},
		{"1.2.3:80", "not a valid IP address"},
		{"bücher.example:80", "holds"},
		{"a\x00b:80", "control character"},
	}
	for _, tt := range bad {
		err := Endpoint{Addr: tt.give}.Validate()
		require.ErrorIs(t, err, ErrInvalidEndpoint, tt.give)
		assert.Contains(t, err.Error(), tt.want, tt.give)
	}
}

// The same destination spelled differently is one endpoint: duplicates are
// found whatever the spelling, and the caller's spelling is kept.
func TestEndpointCanonicalDuplicates(t *testing.T) {
	t.Parallel()
	same := [][2]string{
		{"Host:80", "host:80"},
		{"API.Internal:80", "api.internal:80"},
		{"[::1]:80", "[0:0:0:0:0:0:0:1]:80"},
		{"[2001:DB8::1]:443", "[2001:db8::1]:443"},
		{"[2001:db8:0:0::1]:443", "[2001:db8::1]:443"},
		{"h:080", "h:80"},
		{"10.0.0.1:00080", "10.0.0.1:80"},
		{"[::ffff:10.0.0.1]:80", "10.0.0.1:80"},
		{"h:HTTP", "h:http"},
	}
	for _, p := range same {
		_, err := NewBackends(Addrs(p[0], p[1]))
		require.ErrorIs(t, err, ErrDuplicateEndpoint, "%v", p)
		assert.Contains(t, err.Error(), p[0])
		bal, err := NewBalancer(RoundRobin{})
		require.NoError(t, err)
		assert.ErrorIs(t, bal.Update(Addrs(p[0], p[1])), ErrDuplicateEndpoint)
		require.NoError(t, bal.Update(Addrs(p[0])))
		assert.Equal(t, p[0], bal.Backends()[0].Addr(), "the caller's spelling is kept")
		require.NoError(t, bal.SetHealthy(p[1], false), "found by another spelling")
		bal.Close()
	}
	distinct := [][2]string{{"h:80", "h:81"}, {"h:80", "h.:80"}, {"[fe80::1%eth0]:80", "[fe80::1%eth1]:80"}, {"10.0.0.1:80", "10.0.0.2:80"}}
	for _, p := range distinct {
		_, err := NewBackends(Addrs(p[0], p[1]))
		assert.NoError(t, err, "%v", p)
	}
	// A respelled endpoint is a new backend (its spelling is what it is
	// dialled and hashed by); the set stays valid.
	bal, err := NewBalancer(RoundRobin{}, WithEndpoints(Addrs("Host:80")))
	require.NoError(t, err)
	defer bal.Close()
	first := bal.Backends()[0]
	require.NoError(t, bal.Update(Addrs("host:80")))
	assert.NotSame(t, first, bal.Backends()[0])
	assert.Equal(t, "host:80", bal.Backends()[0].Addr())
}

// Settings that used to pass validation and then misbehaved.
func TestConfigValidationEdges(t *testing.T) {
	t.Parallel()
	dnsBad := []DNS{
		{Addr: "api.internal:0"},
		{Addr: "api.internal:99999"},
		{Addr: "api.internal:+53"},
		{Addr: "api internal:80"},
		{SRV: "_api._tcp.\x00internal."},
		{SRV: "two words"},
		{Addr: "a:80", Jitter: math.NaN()},
		{Addr: "a:80", Jitter: 1},
	}
	for _, d := range dnsBad {
		_, err := d.withDefaults()
		assert.ErrorIs(t, err, ErrInvalidConfig, "%+v", d)
	}
	hcBad := []HealthCheck{
		{Path: "/health\x00z"},
		{Path: "/a b"},
		{Path: "/x#frag"},
		{Path: "/x\r\nHost: evil"},
		{Host: "svc\x00internal"},
		{Host: "svc internal"},
		{Host: " svc"},
	}
	for _, hc := range hcBad {
		_, err := hc.withDefaults()
		assert.ErrorIs(t, err, ErrInvalidConfig, "%+v", hc)
	}
	_, err := HealthCheck{Path: "/healthz?deep=1", Host: "svc.internal:8080"}.withDefaults()
	assert.NoError(t, err)

	for _, rb := range []RetryBudget{{MinPerSecond: math.MaxInt}, {MinPerSecond: maxRetryFloor + 1}, {Window: 1 << 62}, {Ratio: math.Inf(-1)}} {
		_, err := rb.withDefaults()
		assert.ErrorIs(t, err, ErrInvalidConfig, "%+v", rb)
	}

	bal, err := NewBalancer(RoundRobin{}, WithEndpoints(Addrs("a:1")))
	require.NoError(t, err)
	defer bal.Close()
	for _, n := range []int{1, 2, DefaultMaxIdleConnsPerBackend, 1000} {
		_, err := NewTransport(bal, WithBase(http.DefaultTransport), WithMaxIdleConnsPerBackend(n))
		assert.ErrorIs(t, err, ErrInvalidConfig, "WithBase with WithMaxIdleConnsPerBackend(%d)", n)
	}
	_, err = NewTransport(bal, WithMaxIdleConnsPerBackend(DefaultMaxIdleConnsPerBackend))
	assert.NoError(t, err)
}
