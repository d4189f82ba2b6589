package main

import (
	"bytes"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// realConcurrency is how many real fleets the validation runs at once.
const realConcurrency = 2

// TestValidation runs every scenario of scenarios/validate on a real
// loopback fleet through lb's real Transport and in lbsim, and holds
// lbsim's predictions of what does not depend on the machine's speed (each
// backend's share of the attempts, the requests failed, the retries, the
// ejections) to the tolerances of validate.go. The real runs go first,
// realConcurrency at a time and with nothing else running, each for its
// scenario's duration (2 s) of wall time; then lbsim's.
func TestValidation(t *testing.T) {
	scs, err := validationScenarios("scenarios/validate")
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(scs), 10)
	type job struct {
		sc       *Scenario
		strategy string
		real     *Result
		tries    int
		err      error
	}
	var jobs []*job
	for _, sc := range scs {
		for _, strategy := range sc.Strategies {
			jobs = append(jobs, &job{sc: sc, strategy: strategy})
		}
	}
	// A run the machine disturbed (see Scenario.disturbed) is tried again
	// alone: the retrier takes every slot, one retrier at a time.
	sem := make(chan struct{}, realConcurrency)
	var alone sync.Mutex
	var wg sync.WaitGroup
	for _, j := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			j.real, j.err = RunReal(j.sc, j.strategy)
			<-sem
			j.tries = 1
			for j.err == nil && j.sc.disturbed(j.real) != "" && j.tries < maxRealTries {
				alone.Lock()
				for range realConcurrency {
					sem <- struct{}{}
				}
				var r *Result
				r, j.err = RunReal(j.sc, j.strategy)
				for range realConcurrency {
					<-sem
				}
				alone.Unlock()
				j.tries++
				if j.err == nil {
					j.real = steadier(j.real, r)
				}
			}
		}()
	}
	wg.Wait()
	for _, j := range jobs {
		t.Run(j.sc.Name+"/"+j.strategy, func(t *testing.T) {
			t.Parallel()
			require.NoError(t, j.err)
			c, err := Compare(j.sc, j.strategy, j.real, j.tries)
			require.NoError(t, err)
			var table bytes.Buffer
			WriteComparisons(&table, []Comparison{c})
			t.Logf("lbsim's client overhead %v; the real run's longest stall %v (%d runs)\n%s", c.Overhead, c.Lag, c.Tries, table.String())
			require.Empty(t, c.Disturbed, "the real run must keep the scenario's timing")
			assert.Empty(t, c.Notes, "the real fleet did as the scenario says")
			assert.Empty(t, c.Check(), "lbsim against real, within the tolerances")
			assert.Positive(t, c.Real.Requests)
		})
	}
}

// The validation's scenarios cover the faults issue 15 and issue 11 name.
func TestValidationCoverage(t *testing.T) {
	t.Parallel()
	scs, err := validationScenarios("scenarios/validate")
	require.NoError(t, err)
	var kinds []string
	for _, sc := range scs {
		kinds = append(kinds, sc.Load.Arrivals)
		if sc.HealthCheck != nil {
			kinds = append(kinds, "health checks")
		}
		if sc.Transport.Hedging != nil {
			kinds = append(kinds, "hedging")
		}
		evs, err := sc.expandEvents()
		require.NoError(t, err)
		for _, e := range evs {
			kinds = append(kinds, e.kind)
			if e.fault != nil {
				kinds = append(kinds, e.fault.mode)
			}
		}
		for _, g := range sc.Backends {
			if g.Median.D() > sc.Backends[0].Median.D() {
				kinds = append(kinds, "slow backend")
			}
		}
		if len(evs) > 0 && evs[0].kind == evKill && sameKillAll(evs, sc) {
			kinds = append(kinds, "whole fleet down")
		}
		for _, e := range sc.Events {
			kinds = append(kinds, e.Kind)
		}
	}
	for _, want := range []string{"poisson", "paced", "closed", "slow backend", evKill, evStart, modeStatus, modeBlackhole, modeStall, "whole fleet down", evFlap, "health checks", "hedging"} {
		assert.Contains(t, kinds, want)
	}
}

// sameKillAll reports whether the events kill every backend at once.
func sameKillAll(evs []timedEvent, sc *Scenario) bool {
	killed := map[int]bool{}
	for _, e := range evs {
		if e.kind == evKill && e.at == evs[0].at {
			killed[e.backend] = true
		}
	}
	return len(killed) == len(sc.backendNames())
}
