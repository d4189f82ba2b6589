package main

import (
	"context"
	"fmt"
	"time"

	"github.com/go-lb/lb"
)

// The blocks below configure lb as a user would, field for field: lbsim
// turns them into lb's own options and lb validates them, so they mean
// exactly what they mean in lb (a zero field takes lb's default there).

// TransportConfig is the lb.Transport configuration of every client. A
// missing field is an option not given (lb's default); a field that is
// written is given to lb as it is.
type TransportConfig struct {
	MaxAttempts        int                `json:"max_attempts"`         // lb.WithMaxAttempts
	RetryNonIdempotent bool               `json:"retry_non_idempotent"` // lb.WithRetryNonIdempotent
	FailureStatus      string             `json:"failure_status"`       // lb.WithFailureStatus: "unavailable" (lb.IsUnavailable, 502-504), "5xx" (lb.Is5xx), "none"
	RetryBudget        *RetryBudgetConfig `json:"retry_budget"`         // lb.WithRetryBudget
	PerTryTimeout      Duration           `json:"per_try_timeout"`      // lb.WithPerTryTimeout
	BodyIdleTimeout    Duration           `json:"body_idle_timeout"`    // lb.WithBodyIdleTimeout
	Hedging            *HedgingConfig     `json:"hedging"`              // lb.WithHedging (present: on)
	RetryAfterMax      Duration           `json:"retry_after_max"`      // lb.WithRetryAfter

	given given
}

// RetryBudgetConfig is lb.RetryBudget.
type RetryBudgetConfig struct {
	Ratio        float64  `json:"ratio"`
	MinPerSecond int      `json:"min_per_second"`
	Window       Duration `json:"window"`
}

// HedgingConfig is lb.Hedging.
type HedgingConfig struct {
	Delay      Duration `json:"delay"`
	Percentile float64  `json:"percentile"`
	MinDelay   Duration `json:"min_delay"`
	MaxHedges  int      `json:"max_hedges"`
}

// OutlierConfig is lb.OutlierDetection.
type OutlierConfig struct {
	ConsecutiveFailures            int      `json:"consecutive_failures"`
	BaseEjectionTime               Duration `json:"base_ejection_time"`
	MaxEjectionTime                Duration `json:"max_ejection_time"`
	MaxEjectionPercent             int      `json:"max_ejection_percent"`
	Interval                       Duration `json:"interval"`
	SuccessRateStdevFactor         float64  `json:"success_rate_stdev_factor"`
	SuccessRateMinHosts            int      `json:"success_rate_min_hosts"`
	SuccessRateRequestVolume       int      `json:"success_rate_request_volume"`
	FailurePercentageThreshold     int      `json:"failure_percentage_threshold"`
	FailurePercentageMinHosts      int      `json:"failure_percentage_min_hosts"`
	FailurePercentageRequestVolume int      `json:"failure_percentage_request_volume"`
	LatencyFactor                  float64  `json:"latency_factor"`
}

// SlowStartConfig is lb.SlowStart.
type SlowStartConfig struct {
	Window     Duration `json:"window"`
	Aggression float64  `json:"aggression"`
	MinWeight  float64  `json:"min_weight"`
}

// HealthConfig is lb.HealthCheck, whose checks lbsim answers with a
// simulated probe (HealthCheck.Probe) in simulated time.
type HealthConfig struct {
	Interval            Duration `json:"interval"`
	UnhealthyInterval   Duration `json:"unhealthy_interval"`
	Timeout             Duration `json:"timeout"`
	UnhealthyThreshold  int      `json:"unhealthy_threshold"`
	HealthyThreshold    int      `json:"healthy_threshold"`
	MaxUnhealthyPercent int      `json:"max_unhealthy_percent"`
	// ProbeLatency is how long a check of a backend that is up takes
	// (lbsim's, not lb's); default 0. Checks of a backend that hangs take
	// the Timeout.
	ProbeLatency Duration `json:"probe_latency"`
}

// lbHealthTimeout is lb's default HealthCheck.Timeout. lbsim passes it
// explicitly when the scenario gives none, because a simulated probe must
// know how long a hanging check lasts; a test checks it is still lb's.
const lbHealthTimeout = 2 * time.Second

// Failure statuses.
var failureStatuses = map[string]func(int) bool{
	"":            lb.IsUnavailable, // not given: lb's default
	"unavailable": lb.IsUnavailable,
	"5xx":         lb.Is5xx,
	"none":        nil,
}

// options returns the lb.TransportOptions of the configuration.
func (c *TransportConfig) options() []lb.TransportOption {
	var opts []lb.TransportOption
	if c.given.has("max_attempts") || c.MaxAttempts != 0 {
		opts = append(opts, lb.WithMaxAttempts(c.MaxAttempts))
	}
	if c.RetryNonIdempotent {
		opts = append(opts, lb.WithRetryNonIdempotent(true))
	}
	if f, ok := failureStatuses[c.FailureStatus]; ok && c.FailureStatus != "" {
		opts = append(opts, lb.WithFailureStatus(f))
	}
	if rb := c.RetryBudget; rb != nil {
		opts = append(opts, lb.WithRetryBudget(lb.RetryBudget{Ratio: rb.Ratio, MinPerSecond: rb.MinPerSecond, Window: rb.Window.D()}))
	}
	if c.given.has("per_try_timeout") || c.PerTryTimeout != 0 {
		opts = append(opts, lb.WithPerTryTimeout(c.PerTryTimeout.D()))
	}
	if c.given.has("body_idle_timeout") || c.BodyIdleTimeout != 0 {
		opts = append(opts, lb.WithBodyIdleTimeout(c.BodyIdleTimeout.D()))
	}
	if h := c.Hedging; h != nil {
		opts = append(opts, lb.WithHedging(lb.Hedging{Delay: h.Delay.D(), Percentile: h.Percentile, MinDelay: h.MinDelay.D(), MaxHedges: h.MaxHedges}))
	}
	if c.given.has("retry_after_max") || c.RetryAfterMax != 0 {
		opts = append(opts, lb.WithRetryAfter(c.RetryAfterMax.D()))
	}
	return opts
}

// balancerOptions returns the lb.Options of the scenario's Balancers
// (outlier detection, slow start), the clock aside.
func (sc *Scenario) balancerOptions() []lb.Option {
	var opts []lb.Option
	if o := sc.OutlierDetection; o != nil {
		opts = append(opts, lb.WithOutlierDetection(lb.OutlierDetection{
			ConsecutiveFailures:            o.ConsecutiveFailures,
			BaseEjectionTime:               o.BaseEjectionTime.D(),
			MaxEjectionTime:                o.MaxEjectionTime.D(),
			MaxEjectionPercent:             o.MaxEjectionPercent,
			Interval:                       o.Interval.D(),
			SuccessRateStdevFactor:         o.SuccessRateStdevFactor,
			SuccessRateMinHosts:            o.SuccessRateMinHosts,
			SuccessRateRequestVolume:       o.SuccessRateRequestVolume,
			FailurePercentageThreshold:     o.FailurePercentageThreshold,
			FailurePercentageMinHosts:      o.FailurePercentageMinHosts,
			FailurePercentageRequestVolume: o.FailurePercentageRequestVolume,
			LatencyFactor:                  o.LatencyFactor,
		}))
	}
	if s := sc.SlowStart; s != nil {
		opts = append(opts, lb.WithSlowStart(lb.SlowStart{Window: s.Window.D(), Aggression: s.Aggression, MinWeight: s.MinWeight}))
	}
	return opts
}

// lbHealthCheck returns the lb.HealthCheck of the configuration, with
// probe as its Probe (nil: lb's HTTP check, for real backends).
func (c *HealthConfig) lbHealthCheck(probe func(context.Context, string) error) lb.HealthCheck {
	return lb.HealthCheck{
		Interval:            c.Interval.D(),
		UnhealthyInterval:   c.UnhealthyInterval.D(),
		Timeout:             c.timeout(),
		UnhealthyThreshold:  c.UnhealthyThreshold,
		HealthyThreshold:    c.HealthyThreshold,
		MaxUnhealthyPercent: c.MaxUnhealthyPercent,
		Probe:               probe,
	}
}

// timeout is the checks' timeout: the scenario's, or lb's default.
func (c *HealthConfig) timeout() time.Duration {
	if c.Timeout > 0 {
		return c.Timeout.D()
	}
	return lbHealthTimeout
}

// lbDefaults validates the lb blocks with lb itself, so that a scenario
// fails at load time with lb's message, prefixed by the block's name.
func (sc *Scenario) lbDefaults() error {
	t := &sc.Transport
	if _, ok := failureStatuses[t.FailureStatus]; !ok {
		return fmt.Errorf("transport.failure_status is %q; it must be \"unavailable\" (lb's default: 502, 503, 504), \"5xx\" or \"none\"", t.FailureStatus)
	}
	if t.given.has("failure_status") && t.FailureStatus == "" {
		return fmt.Errorf("transport.failure_status is empty; omit it for lb's default")
	}
	if _, err := lb.NewPolicy(t.options()...); err != nil {
		return fmt.Errorf("transport: %w", err)
	}
	bal, err := lb.NewBalancer(lb.RoundRobin{}, append(sc.balancerOptions(), lb.WithClock(stillClock{}))...)
	if err != nil {
		return fmt.Errorf("outlier_detection or slow_start: %w", err)
	}
	defer bal.Close()
	if len(sc.clientOptions(0)) > 0 {
		b, err := lb.NewBalancer(lb.RoundRobin{}, append(sc.clientOptions(0), lb.WithClock(stillClock{}))...)
		if err != nil {
			return fmt.Errorf("subset or locality: %w", err)
		}
		b.Close()
	}
	if hc := sc.HealthCheck; hc != nil {
		if hc.ProbeLatency < 0 {
			return fmt.Errorf("health_check.probe_latency is %v; it must be >= 0", hc.ProbeLatency.D())
		}
		h, err := lb.StartHealthChecks(context.Background(), bal, hc.lbHealthCheck(func(context.Context, string) error { return nil }))
		if err != nil {
			return fmt.Errorf("health_check: %w", err)
		}
		h.Close()
	}
	return nil
}

// stillClock is a Clock whose time stands still and whose timers never
// fire: for validating a configuration with lb without running anything.
type stillClock struct{}

// Now returns the Unix epoch.
func (stillClock) Now() time.Time { return time.Unix(0, 0) }

// AfterFunc returns a timer that never fires.
func (stillClock) AfterFunc(time.Duration, func()) lb.Timer { return stillTimer{} }

type stillTimer struct{}

// Stop reports that it prevented the call (which was never to come).
func (stillTimer) Stop() bool { return true }
