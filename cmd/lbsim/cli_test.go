package main

import (
	"bytes"
	"flag"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRunPrintsATable(t *testing.T) {
	t.Parallel()
	var out, errs bytes.Buffer
	err := run([]string{"-backends", "6", "-slow", "4", "-requests", "3000", "-rate", "2000",
		"-strategies", "round-robin,p2c,ring"}, &out, &errs)
	require.NoError(t, err, errs.String())
	text := out.String()
	assert.Contains(t, text, "| strategy | p50 | p99 | p99.9 | failed | retries |")
	for _, s := range []string{"| round-robin |", "| p2c |", "| ring |"} {
		assert.Contains(t, text, s)
	}
	assert.NotContains(t, text, "| maglev |")
	assert.Contains(t, text, "6 backends")
	assert.NotContains(t, text, "Keys moved at each change", "the set never changed")
	assert.Empty(t, errs.String(), "no -out, no charts")
}

func TestRunScenarioWithChanges(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var out, errs bytes.Buffer
	// 4000 requests at 100/s: 40s, the events at 20s and 40s still fit.
	err := run([]string{"-scenario", "scenarios/hot-keys.json", "-requests", "4000", "-rate", "100", "-clients", "2",
		"-strategies", "ring,maglev", "-out", dir}, &out, &errs)
	require.NoError(t, err, errs.String())
	assert.Contains(t, out.String(), "Zipf(s=1.1)")
	assert.Contains(t, out.String(), "over 40s of simulated time (poisson 100/s")
	assert.Contains(t, out.String(), "| 1 | 20.00s | add b20 |")
	assert.Contains(t, out.String(), "| 2 | 40.00s | remove b03 |")

	for _, name := range []string{"load", "latency", "keys-moved"} {
		for _, ext := range []string{".png", ".svg"} {
			assert.Contains(t, errs.String(), "wrote "+filepath.Join(dir, "lbsim-hot-keys-"+name+ext))
		}
	}
	f, err := os.Open(filepath.Join(dir, "lbsim-hot-keys-latency.png"))
	require.NoError(t, err)
	defer f.Close()
	img, err := png.Decode(f)
	require.NoError(t, err)
	assert.Equal(t, 11*pngDPI, img.Bounds().Dx())
	svg, err := os.ReadFile(filepath.Join(dir, "lbsim-hot-keys-load.svg"))
	require.NoError(t, err)
	assert.Contains(t, string(svg), "<svg")
	assert.Contains(t, string(svg), "data:image/png;base64,")
	assert.NotContains(t, string(svg), "data:image/jpg")
	assert.Contains(t, string(svg), `<image preserveAspectRatio="none" `)
	assert.Contains(t, string(svg), "maglev")
}

func TestRunBadFlags(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"-parallel", "0"}, "-parallel is 0"},
		{[]string{"-backends", "0"}, "-backends is 0"},
		{[]string{"-strategies", "ring,nope"}, `unknown strategy "nope"`},
		{[]string{"-scenario", "scenarios/hot-keys.json", "-slots", "4"}, "-slots describes the fleet without a scenario file"},
		{[]string{"-scenario", "does-not-exist.json"}, "does-not-exist.json"},
		{[]string{"-requests", "-5"}, "-requests is -5"},
		{[]string{"-scenario", "scenarios/hot-keys.json", "-requests", "1000"}, "events[0].at is 20s; it must be within the duration"},
		{[]string{"-zipf", "0.5"}, "keys.s is 0.5"},
		{[]string{"extra"}, `unexpected arguments ["extra"]`},
		{[]string{"-nope"}, "flag provided but not defined"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			t.Parallel()
			var out, errs bytes.Buffer
			err := run(tt.args, &out, &errs)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
			assert.Empty(t, out.String())
		})
	}
}

func TestRunHelp(t *testing.T) {
	t.Parallel()
	var out, errs bytes.Buffer
	err := run([]string{"-h"}, &out, &errs)
	require.ErrorIs(t, err, flag.ErrHelp)
	assert.Contains(t, errs.String(), "-scenario")
}

// -validate runs a validation scenario in lbsim and on a real loopback
// fleet, prints the side-by-side table, and writes the JSON and the chart.
func TestRunValidate(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	sc := filepath.Join(dir, "tiny.json")
	require.NoError(t, os.WriteFile(sc, []byte(`{
	  "name": "tiny", "description": "two backends, one killed",
	  "duration": "400ms", "clients": 1,
	  "load": {"arrivals": "paced", "rate": 100, "timeout": "1s"},
	  "outlier_detection": {},
	  "backends": [{"count": 2, "median": "5ms", "sigma": 0}],
	  "events": [{"at": "200ms", "kind": "kill", "backend": "b01"}],
	  "strategies": ["round-robin"]
	}`), 0o644))
	var out, errs bytes.Buffer
	jsonPath := filepath.Join(dir, "out.json")
	err := run([]string{"-validate", sc, "-validate-json", jsonPath, "-out", dir}, &out, &errs)
	require.NoError(t, err, errs.String())
	assert.Contains(t, out.String(), "| scenario | strategy | requests | focus backend's share |")
	assert.Contains(t, out.String(), "| tiny | round-robin | 40 / 40 | b01: ")
	assert.Contains(t, out.String(), "- tiny, round-robin: b00 ")
	data, err := os.ReadFile(jsonPath)
	require.NoError(t, err)
	assert.Contains(t, string(data), `"Scenario": "tiny"`)
	assert.Contains(t, errs.String(), "wrote "+filepath.Join(dir, "lbsim-validate.png"))
}
