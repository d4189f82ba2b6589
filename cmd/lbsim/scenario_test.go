package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-lb/lb"
)

// minimal is a valid scenario; the bad-input cases below change one thing.
const minimal = `{
  "name": "t",
  "duration": "10s",
  "load": {"rate": 100},
  "backends": [{"count": 3, "median": "10ms"}]
}`

func TestParseScenarioDefaults(t *testing.T) {
	t.Parallel()
	sc, err := ParseScenario(strings.NewReader(minimal))
	require.NoError(t, err)
	assert.Equal(t, uint64(1), sc.Seed)
	assert.Equal(t, 10, sc.Clients)
	assert.Equal(t, "poisson", sc.Load.Arrivals)
	assert.Equal(t, "GET", sc.Load.Method)
	assert.Zero(t, sc.Load.Workers, "no worker cap")
	assert.Zero(t, sc.Load.Timeout, "no deadline")
	assert.Equal(t, 100_000, sc.Keys.Count)
	assert.Equal(t, "uniform", sc.Keys.Dist)
	g := sc.Backends[0]
	assert.Equal(t, []any{3, 1, 10 * time.Millisecond, 0.5, 8, -1, false}, []any{g.Count, g.Weight, g.Median.D(), g.Sigma, g.Slots, g.MaxQueue, g.Absent})
	assert.Equal(t, strategyNames, sc.Strategies)
	assert.Equal(t, 10*time.Second/120, sc.SampleInterval.D())
	assert.Equal(t, []string{"b00", "b01", "b02"}, sc.backendNames())
	assert.Empty(t, sc.Transport.options(), "no transport field: lb's defaults")
	assert.Empty(t, sc.balancerOptions(), "no outlier detection, no slow start")
	require.NoError(t, sc.withDefaults(), "the defaults can be applied again")
}

// A field that is written means what it says: zero included. A jitter
// (sigma) of 0 is no spread, a queue of 0 is no queue, a seed of 0 is the
// seed 0.
func TestWrittenZerosMeanZero(t *testing.T) {
	t.Parallel()
	sc, err := ParseScenario(strings.NewReader(`{
	  "name": "t", "seed": 0, "duration": "1s", "load": {"rate": 100},
	  "transport": {"max_attempts": 1, "per_try_timeout": "0s"},
	  "backends": [{"median": "10ms", "sigma": 0, "max_queue": 0}]
	}`))
	require.NoError(t, err)
	assert.Zero(t, sc.Seed)
	assert.Zero(t, sc.Backends[0].Sigma)
	assert.Zero(t, sc.Backends[0].MaxQueue)
	assert.Len(t, sc.Transport.options(), 2, "max_attempts and per_try_timeout are given to lb")
	r := run1(t, sc, "round-robin")
	assert.Equal(t, 10*time.Millisecond, r.Quantile(0))
	assert.Equal(t, 10*time.Millisecond, r.Quantile(1), "no spread: every call takes the median")
}

func TestParseScenarioBadInput(t *testing.T) {
	t.Parallel()
	// with adds fields to the minimal scenario.
	with := func(extra string) string {
		return strings.Replace(minimal, `"name": "t",`, `"name": "t", `+extra+`,`, 1)
	}
	backend := func(extra string) string {
		return strings.Replace(minimal, `"median": "10ms"`, `"median": "10ms", `+extra, 1)
	}
	load := func(l string) string {
		return strings.Replace(minimal, `"load": {"rate": 100}`, `"load": `+l, 1)
	}
	event := func(e string) string { return with(`"events": [` + e + `]`) }
	tests := []struct {
		name string
		give string
		want string // the error must contain this
	}{
		{"empty", ``, "empty scenario"},
		{"syntax", "{\n  \"name\": \"t\",\n  \"clients\": 1,,\n}", "line 3, column 16: invalid JSON"},
		{"type", with(`"clients": "ten"`), `clients: want int, got a JSON string`},
		{"unknown field", with(`"rates": 5`), `unknown field "rates"`},
		{"duration number", load(`{"rate": 100, "timeout": 5}`), `want a duration string such as "10ms", got 5`},
		{"duration string", load(`{"rate": 100, "timeout": "5 ms"}`), `"5 ms" is not a duration`},
		{"trailing data", minimal + ` {}`, "unexpected data after the scenario object"},
		{"no duration", strings.Replace(minimal, `"duration": "10s",`, ``, 1), "duration is 0s; it must be > 0"},
		{"no rate", load(`{}`), "load.rate is 0; an open loop (poisson) needs a rate > 0"},
		{"too many requests", load(`{"rate": 1e9}`), "at most 100000000"},
		{"arrivals", load(`{"arrivals": "bursty", "rate": 1}`), `load.arrivals is "bursty"`},
		{"closed with a rate", load(`{"arrivals": "closed", "rate": 100, "workers": 2}`), "a closed loop has no rate"},
		{"closed without workers", load(`{"arrivals": "closed"}`), "load.workers is 0"},
		{"zero workers", load(`{"rate": 10, "workers": 0}`), "load.workers is 0; it must be 1 to 100000 (for an open loop, omit it for no cap)"},
		{"think in an open loop", load(`{"rate": 10, "think": "1ms"}`), "load.think is 1ms; it is for a closed loop"},
		{"zero timeout", load(`{"rate": 10, "timeout": "0s"}`), "load.timeout is 0s; it must be > 0 (omit it for no deadline)"},
		{"method", load(`{"rate": 10, "method": "PATCH"}`), `load.method is "PATCH"`},
		{"zero clients", with(`"clients": 0`), "clients is 0; it must be 1 to 1000"},
		{"negative clients", with(`"clients": -1`), "clients is -1; it must be 1 to 1000"},
		{"keys count", with(`"keys": {"count": 0}`), "keys.count is 0"},
		{"keys dist", with(`"keys": {"dist": "pareto"}`), `keys.dist is "pareto"; it must be "uniform" or "zipf"`},
		{"zipf s", with(`"keys": {"dist": "zipf", "s": 0.5}`), "keys.s is 0.5; the Zipf exponent must be > 1"},
		{"s without zipf", with(`"keys": {"s": 1.5}`), `keys.s is 1.5; it is for "dist": "zipf"`},
		{"no backends", strings.Replace(minimal, `[{"count": 3, "median": "10ms"}]`, `[]`, 1), "backends is empty"},
		{"no median", strings.Replace(minimal, `"median": "10ms"`, `"slots": 2`, 1), `backends[0].median is 0s; it must be > 0`},
		{"sigma", backend(`"sigma": 4`), "backends[0].sigma is 4; it must be 0 to 3"},
		{"weight", backend(`"weight": 0`), "backends[0].weight is 0; it must be 1 to"},
		{"slots", backend(`"slots": 0`), "backends[0].slots is 0; it must be 1 to 1000000"},
		{"count", backend(`"count": 0`), "backends[0].count is 0; it must be >= 1"},
		{"max queue", backend(`"max_queue": -1`), "backends[0].max_queue is -1; it must be >= 0 (omit it for no bound)"},
		{"all absent", backend(`"absent": true`), "every group is absent"},
		{"strategy", with(`"strategies": ["ring", "least-conn"]`), `strategies[1]: unknown strategy "least-conn"`},
		{"no strategy", with(`"strategies": []`), "strategies is empty; omit it for all of them"},
		{"lb transport", with(`"transport": {"max_attempts": 0}`), "transport: lb: invalid configuration: WithMaxAttempts(0)"},
		{"lb budget", with(`"transport": {"retry_budget": {"ratio": 2000}}`), "transport: lb: invalid configuration: RetryBudget.Ratio is 2000"},
		{"lb hedging", with(`"transport": {"hedging": {"percentile": 2}}`), "Hedging.Percentile is 2"},
		{"failure status", with(`"transport": {"failure_status": "4xx"}`), `transport.failure_status is "4xx"`},
		{"lb outlier", with(`"outlier_detection": {"max_ejection_percent": 101}`), "outlier_detection or slow_start: lb: invalid configuration: OutlierDetection.MaxEjectionPercent is 101"},
		{"lb slow start", with(`"slow_start": {}`), "SlowStart.Window is 0s"},
		{"lb health check", with(`"health_check": {"interval": "-1s"}`), "health_check: lb: invalid configuration: HealthCheck.Interval is -1s"},
		{"probe latency", with(`"health_check": {"probe_latency": "-1s"}`), "health_check.probe_latency is -1s"},
		{"event kind", event(`{"at": "1s", "kind": "explode", "backend": "b00"}`), `events[0].kind is "explode"; it must be one of add, remove`},
		{"event time", event(`{"at": "11s", "kind": "kill", "backend": "b00"}`), "events[0].at is 11s; it must be within the duration (0 to 10s)"},
		{"event backend", event(`{"at": "1s", "kind": "kill", "backend": "b07"}`), `events[0].backend: backend "b07" is not defined (the backends are b00 to b02)`},
		{"event without backend", event(`{"at": "1s", "kind": "kill"}`), "events[0]: a kill event needs \"backend\""},
		{"misplaced field", event(`{"at": "1s", "kind": "kill", "backend": "b01", "factor": 2}`), `events[0].factor: a kill event takes no "factor"`},
		{"error rate", event(`{"at": "1s", "kind": "fail", "backend": "b01", "error_rate": 2}`), "events[0].error_rate is 2"},
		{"zero error rate", event(`{"at": "1s", "kind": "fail", "backend": "b01", "error_rate": 0}`), "events[0].error_rate is 0"},
		{"fail mode", event(`{"at": "1s", "kind": "fail", "backend": "b01", "mode": "melt"}`), `events[0].mode is "melt"; it must be one of status, reset, blackhole, stall`},
		{"fail status", event(`{"at": "1s", "kind": "fail", "backend": "b01", "status": 200}`), "events[0].status is 200; a failing status must be 400 to 599"},
		{"status of a reset", event(`{"at": "1s", "kind": "fail", "backend": "b01", "mode": "reset", "status": 503}`), `status and retry_after are for mode "status"`},
		{"blackhole latency", event(`{"at": "1s", "kind": "fail", "backend": "b01", "mode": "blackhole", "latency": "1s"}`), "a blackhole has none"},
		{"retry after", event(`{"at": "1s", "kind": "fail", "backend": "b01", "retry_after": "soon"}`), `events[0].retry_after is "soon"`},
		{"probe", event(`{"at": "1s", "kind": "fail", "backend": "b01", "probe": "maybe"}`), `events[0].probe is "maybe"`},
		{"slow factor", event(`{"at": "1s", "kind": "slow", "backend": "b01"}`), "events[0].factor is 0"},
		{"restart down", event(`{"at": "1s", "kind": "restart", "backend": "b01"}`), "events[0].down is 0s; a restart needs down > 0"},
		{"flap", event(`{"at": "1s", "kind": "flap", "backend": "b01", "down": "1s"}`), "flap needs up > 0 and down > 0"},
		{"flap until", event(`{"at": "1s", "kind": "flap", "backend": "b01", "down": "1s", "up": "1s", "until": "500ms"}`), "events[0].until is 500ms; it must be after at (1s)"},
		{"rolling every", event(`{"at": "1s", "kind": "rolling_restart", "down": "1s"}`), "rolling_restart needs every > 0 and down > 0"},
		{"rolling backend", event(`{"at": "1s", "kind": "rolling_restart", "backend": "b00", "every": "1s", "down": "1s"}`), `takes "backends"`},
		{"add present", event(`{"at": "1s", "kind": "add", "backend": "b01"}`), "add b01, which is already in the set"},
		{"remove absent", event(`{"at": "1s", "kind": "remove", "backend": "b01"}, {"at": "2s", "kind": "remove", "backend": "b01"}`), "remove b01, which is not in the set"},
		{"remove last", `{"name": "t", "duration": "10s", "load": {"rate": 1}, "backends": [{"median": "1ms"}], "events": [{"at": "1s", "kind": "remove", "backend": "b00"}]}`, "remove b00 would empty the set"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := ParseScenario(strings.NewReader(tt.give))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

func TestLoadScenarioNamesTheFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "bad.json")
	require.NoError(t, os.WriteFile(path, []byte(`{"name": "x", "load": {"rate": 1}}`), 0o644))
	_, err := LoadScenario(path)
	require.Error(t, err)
	assert.Equal(t, path+": duration is 0s; it must be > 0 (for example \"60s\")", err.Error())

	_, err = LoadScenario(filepath.Join(t.TempDir(), "missing.json"))
	require.ErrorIs(t, err, os.ErrNotExist)
}

func TestShippedScenariosParse(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("scenarios/*.json")
	require.NoError(t, err)
	more, err := filepath.Glob("scenarios/validate/*.json")
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(files), 3)
	require.GreaterOrEqual(t, len(more), 10)
	for _, f := range append(files, more...) {
		sc, err := LoadScenario(f)
		require.NoError(t, err, f)
		assert.Equal(t, strings.TrimSuffix(filepath.Base(f), ".json"), sc.Name)
		assert.NotEmpty(t, sc.Description, f)
	}
}

func TestExpandEvents(t *testing.T) {
	t.Parallel()
	sc, err := ParseScenario(strings.NewReader(strings.Replace(minimal, `"name": "t",`, `"name": "t",
	  "events": [
	    {"at": "5s", "kind": "restart", "backend": "b02", "down": "500ms"},
	    {"at": "1s", "kind": "rolling_restart", "every": "2s", "down": "1s", "backends": ["b01", "b00"]},
	    {"at": "2s", "kind": "fail", "backend": "b02"},
	    {"at": "8s", "kind": "flap", "backend": "b00", "down": "300ms", "up": "700ms", "until": "9500ms"}
	  ],`, 1)))
	require.NoError(t, err)
	evs, err := sc.expandEvents()
	require.NoError(t, err)
	s, ms := time.Second, time.Millisecond
	want := []timedEvent{
		{at: 1 * s, kind: evKill, backend: 1},
		{at: 2 * s, kind: evStart, backend: 1},
		{at: 2 * s, kind: evFail, backend: 2, fault: &fault{mode: modeStatus, rate: 1, status: 503}}, // a fast 503, every call
		{at: 3 * s, kind: evKill, backend: 0},
		{at: 4 * s, kind: evStart, backend: 0},
		{at: 5 * s, kind: evKill, backend: 2},
		{at: 5*s + 500*ms, kind: evStart, backend: 2},
		{at: 8 * s, kind: evKill, backend: 0},
		{at: 8*s + 300*ms, kind: evStart, backend: 0},
		{at: 9 * s, kind: evKill, backend: 0},
		{at: 9*s + 300*ms, kind: evStart, backend: 0},
	}
	assert.Equal(t, want, evs)
}

func TestRollingRestartDefaultsToThePresentBackends(t *testing.T) {
	t.Parallel()
	sc, err := ParseScenario(strings.NewReader(`{
	  "name": "t", "duration": "10s", "load": {"rate": 10},
	  "backends": [{"count": 2, "median": "1ms"}, {"median": "1ms", "absent": true}],
	  "events": [{"at": "1s", "kind": "rolling_restart", "every": "1s", "down": "100ms"}]
	}`))
	require.NoError(t, err)
	evs, err := sc.expandEvents()
	require.NoError(t, err)
	var killed []int
	for _, e := range evs {
		if e.kind == evKill {
			killed = append(killed, e.backend)
		}
	}
	assert.Equal(t, []int{0, 1}, killed, "b02 is absent: not restarted")
}

// lbsim must know how long a hanging check lasts; when the scenario gives
// no timeout it passes lbHealthTimeout, which must be lb's own default.
func TestHealthTimeoutIsLbsDefault(t *testing.T) {
	t.Parallel()
	bal, err := lb.NewBalancer(lb.RoundRobin{}, lb.WithEndpoints(lb.Addrs("a:1")))
	require.NoError(t, err)
	defer bal.Close()
	got := make(chan time.Duration, 1)
	h, err := lb.StartHealthChecks(context.Background(), bal, lb.HealthCheck{Probe: func(ctx context.Context, _ string) error {
		dl, _ := ctx.Deadline()
		select {
		case got <- time.Until(dl):
		default:
		}
		return nil
	}})
	require.NoError(t, err)
	defer h.Close()
	select {
	case d := <-got:
		assert.InDelta(t, float64(lbHealthTimeout), float64(d), float64(100*time.Millisecond))
	case <-time.After(10 * time.Second):
		t.Fatal("no check within 10 s")
	}
	assert.Equal(t, lbHealthTimeout, (&HealthConfig{}).timeout())
	assert.Equal(t, time.Second, (&HealthConfig{Timeout: Duration(time.Second)}).timeout())
}
