package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// minimal is a valid scenario; the bad-input cases below change one thing.
const minimal = `{
  "name": "t",
  "duration": "10s",
  "rate": 100,
  "backends": [{"count": 3, "median": "10ms"}]
}`

func TestParseScenarioDefaults(t *testing.T) {
	t.Parallel()
	sc, err := ParseScenario(strings.NewReader(minimal))
	require.NoError(t, err)
	assert.Equal(t, uint64(1), sc.Seed)
	assert.Equal(t, 10, sc.Clients)
	assert.Equal(t, 2, *sc.Retries)
	assert.Equal(t, time.Millisecond, sc.FailLatency.D())
	assert.Equal(t, Keys{Count: 100_000, Dist: "uniform"}, sc.Keys)
	assert.Equal(t, BackendGroup{Count: 3, Weight: 1, Median: Duration(10 * time.Millisecond), Sigma: 0.5, Slots: 8}, sc.Backends[0])
	assert.Equal(t, strategyNames, sc.Strategies)
	assert.Equal(t, 10*time.Second/120, sc.SampleInterval.D())
	assert.Equal(t, []string{"b00", "b01", "b02"}, sc.backendNames())
}

func TestParseScenarioBadInput(t *testing.T) {
	t.Parallel()
	// with replaces the minimal scenario's backends line, or adds fields.
	with := func(extra string) string {
		return strings.Replace(minimal, `"name": "t",`, `"name": "t", `+extra+`,`, 1)
	}
	tests := []struct {
		name string
		give string
		want string // the error must contain this
	}{
		{"empty", ``, "empty scenario"},
		{"syntax", "{\n  \"name\": \"t\",\n  \"rate\": 100,,\n}", "line 3, column 15: invalid JSON"},
		{"type", with(`"clients": "ten"`), `clients: want int, got a JSON string`},
		{"unknown field", with(`"rates": 5`), `unknown field "rates"`},
		{"duration number", with(`"fail_latency": 5`), `want a duration string such as "10ms", got 5`},
		{"duration string", with(`"fail_latency": "5 ms"`), `"5 ms" is not a duration`},
		{"trailing data", minimal + ` {}`, "unexpected data after the scenario object"},
		{"no duration", strings.Replace(minimal, `"duration": "10s",`, ``, 1), "duration is 0s; it must be > 0"},
		{"no rate", strings.Replace(minimal, `"rate": 100,`, ``, 1), "rate is 0; it must be > 0"},
		{"too many requests", strings.Replace(minimal, `"rate": 100,`, `"rate": 1e9,`, 1), "at most 100000000"},
		{"negative clients", with(`"clients": -1`), "clients is -1; it must be 1 to 1000"},
		{"retries", with(`"retries": 8`), "retries is 8; it must be 0 to 7"},
		{"keys count", with(`"keys": {"count": -5}`), "keys.count is -5"},
		{"keys dist", with(`"keys": {"dist": "pareto"}`), `keys.dist is "pareto"; it must be "uniform" or "zipf"`},
		{"zipf s", with(`"keys": {"dist": "zipf", "s": 0.5}`), "keys.s is 0.5; the Zipf exponent must be > 1"},
		{"health interval", with(`"health_check": {}`), "health_check.interval is 0s; it must be > 0"},
		{"no backends", strings.Replace(minimal, `[{"count": 3, "median": "10ms"}]`, `[]`, 1), "backends is empty"},
		{"no median", strings.Replace(minimal, `"median": "10ms"`, `"slots": 2`, 1), `backends[0].median is 0s; it must be > 0`},
		{"sigma", strings.Replace(minimal, `"median": "10ms"`, `"median": "10ms", "sigma": 4`, 1), "backends[0].sigma is 4; it must be 0 to 3"},
		{"weight", strings.Replace(minimal, `"median": "10ms"`, `"median": "10ms", "weight": -2`, 1), "backends[0].weight is -2"},
		{"max queue", strings.Replace(minimal, `"median": "10ms"`, `"median": "10ms", "max_queue": -1`, 1), "backends[0].max_queue is -1"},
		{"all absent", strings.Replace(minimal, `"median": "10ms"`, `"median": "10ms", "absent": true`, 1), "every group is absent"},
		{"strategy", with(`"strategies": ["ring", "least-conn"]`), `strategies[1]: unknown strategy "least-conn"`},
		{"event kind", with(`"events": [{"at": "1s", "kind": "explode", "backend": "b00"}]`), `events[0].kind is "explode"; it must be one of add, remove`},
		{"event time", with(`"events": [{"at": "11s", "kind": "kill", "backend": "b00"}]`), "events[0].at is 11s; it must be within the duration (0 to 10s)"},
		{"event backend", with(`"events": [{"at": "1s", "kind": "kill", "backend": "b07"}]`), `events[0].backend: backend "b07" is not defined (the backends are b00 to b02)`},
		{"event without backend", with(`"events": [{"at": "1s", "kind": "kill"}]`), "events[0]: a kill event needs \"backend\""},
		{"error rate", with(`"events": [{"at": "1s", "kind": "fail", "backend": "b01", "error_rate": 2}]`), "events[0].error_rate is 2"},
		{"slow factor", with(`"events": [{"at": "1s", "kind": "slow", "backend": "b01"}]`), "events[0].factor is 0"},
		{"restart down", with(`"events": [{"at": "1s", "kind": "restart", "backend": "b01"}]`), "events[0].down is 0s; a restart needs down > 0"},
		{"rolling every", with(`"events": [{"at": "1s", "kind": "rolling_restart", "down": "1s"}]`), "rolling_restart needs every > 0 and down > 0"},
		{"rolling backend", with(`"events": [{"at": "1s", "kind": "rolling_restart", "backend": "b00", "every": "1s", "down": "1s"}]`), `takes "backends"`},
		{"add present", with(`"events": [{"at": "1s", "kind": "add", "backend": "b01"}]`), "add b01, which is already in the set"},
		{"remove absent", with(`"events": [{"at": "1s", "kind": "remove", "backend": "b01"}, {"at": "2s", "kind": "remove", "backend": "b01"}]`), "remove b01, which is not in the set"},
		{"remove last", `{"name": "t", "duration": "10s", "rate": 1, "backends": [{"median": "1ms"}], "events": [{"at": "1s", "kind": "remove", "backend": "b00"}]}`, "remove b00 would empty the set"},
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
	require.NoError(t, os.WriteFile(path, []byte(`{"name": "x", "rate": 1}`), 0o644))
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
	require.Len(t, files, 3)
	for _, f := range files {
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
	    {"at": "2s", "kind": "fail", "backend": "b02"}
	  ],`, 1)))
	require.NoError(t, err)
	evs, err := sc.expandEvents()
	require.NoError(t, err)
	s := time.Second
	want := []timedEvent{
		{at: 1 * s, kind: evKill, backend: 1},
		{at: 2 * s, kind: evStart, backend: 1},
		{at: 2 * s, kind: evFail, backend: 2, rate: 1}, // error_rate defaults to 1
		{at: 3 * s, kind: evKill, backend: 0},
		{at: 4 * s, kind: evStart, backend: 0},
		{at: 5 * s, kind: evKill, backend: 2},
		{at: 5*s + 500*time.Millisecond, kind: evStart, backend: 2},
	}
	assert.Equal(t, want, evs)
}

func TestRollingRestartDefaultsToThePresentBackends(t *testing.T) {
	t.Parallel()
	sc, err := ParseScenario(strings.NewReader(`{
	  "name": "t", "duration": "10s", "rate": 10,
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
