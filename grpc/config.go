package lbgrpc

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"reflect"
	"strings"
	"time"

	"github.com/go-lb/lb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/serviceconfig"
)

// Strategy names, the values of the config's "strategy" field.
const (
	strategyRoundRobin         = "round_robin"
	strategyWeightedRoundRobin = "weighted_round_robin"
	strategyRandom             = "random"
	strategyWeightedRandom     = "weighted_random"
	strategyP2C                = "p2c"
	strategyRing               = "ring"
	strategyMaglev             = "maglev"
)

// config is the policy's parsed service-config entry (see the package
// documentation for the JSON). Its fields fall in two groups: balancerKey
// is what the lb.Balancer is made from (a change replaces the Balancer),
// the rest is read by the picker (a change only swaps the picker).
type config struct {
	serviceconfig.LoadBalancingConfig `json:"-"`

	balancerKey

	// RequestHashHeader names the call metadata whose values are the hash
	// key (gRFC A76's request_hash_header).
	RequestHashHeader string `json:"requestHashHeader"`
	// FailureCodes are the status codes charged to the backend, as names
	// ("UNAVAILABLE") or numbers.
	FailureCodes []json.RawMessage `json:"failureCodes"`

	failures codeSet // FailureCodes, or the default
}

// balancerKey holds the settings an lb.Balancer is built with. It is
// comparable: UpdateClientConnState compares it to decide whether the
// Balancer must be replaced.
//
// Settings the Balancer gains later are added here as further optional
// objects (like "subset": {...} and "slowStart": {...}), each a pointer to
// a comparable struct, mapped to lb options in balancerOptions.
type balancerKey struct {
	Strategy         string           `json:"strategy"`
	Ring             *ringConfig      `json:"ring"`
	Maglev           *maglevConfig    `json:"maglev"`
	OutlierDetection *outlierConfig   `json:"outlierDetection"`
	Subset           *subsetConfig    `json:"subset"`
	SlowStart        *slowStartConfig `json:"slowStart"`
}

// slowStartConfig holds lb.SlowStart's fields; window is a duration
// string such as "30s".
type slowStartConfig struct {
	Window     string  `json:"window"`
	Aggression float64 `json:"aggression"`
	MinWeight  float64 `json:"minWeight"`

	window time.Duration // parsed by validate
}

func (s *slowStartConfig) lb() lb.SlowStart {
	return lb.SlowStart{Window: s.window, Aggression: s.Aggression, MinWeight: s.MinWeight}
}

type ringConfig struct {
	Replicas   int     `json:"replicas"`
	LoadFactor float64 `json:"loadFactor"`
}

type maglevConfig struct {
	TableSize int `json:"tableSize"`
}

// subsetConfig holds lb.Subset's fields. gRPC endpoints carry no labels,
// so there is no ordinalLabel: backends are placed by their hash names.
type subsetConfig struct {
	Size        int    `json:"size"`
	ClientIndex int    `json:"clientIndex"`
	ClientCount int    `json:"clientCount"`
	ClientID    string `json:"clientId"`
	ByHash      bool   `json:"byHash"`
}

func (s *subsetConfig) lb() lb.Subset {
	return lb.Subset{Size: s.Size, ClientIndex: s.ClientIndex, ClientCount: s.ClientCount, ClientID: s.ClientID, ByHash: s.ByHash}
}

// outlierConfig holds lb.OutlierDetection's fields. Durations are strings
// such as "30s", "1.5s" or "500ms" (the service config's proto3 form,
// "<seconds>s", is one of them).
type outlierConfig struct {
	ConsecutiveFailures int    `json:"consecutiveFailures"`
	BaseEjectionTime    string `json:"baseEjectionTime"`
	MaxEjectionTime     string `json:"maxEjectionTime"`
	MaxEjectionPercent  int    `json:"maxEjectionPercent"`
	// The interval's rules (success rate, failure percentage, latency);
	// negative values turn a rule off, as in lb.OutlierDetection.
	Interval                       string  `json:"interval"`
	SuccessRateStdevFactor         float64 `json:"successRateStdevFactor"`
	SuccessRateMinHosts            int     `json:"successRateMinHosts"`
	SuccessRateRequestVolume       int     `json:"successRateRequestVolume"`
	FailurePercentageThreshold     int     `json:"failurePercentageThreshold"`
	FailurePercentageMinHosts      int     `json:"failurePercentageMinHosts"`
	FailurePercentageRequestVolume int     `json:"failurePercentageRequestVolume"`
	LatencyFactor                  float64 `json:"latencyFactor"`

	base, max, interval time.Duration // parsed by validate
}

func parseDuration(field, s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, invalid("%s is %q; it must be a duration such as \"30s\", \"1.5s\" or \"500ms\"", field, s)
	}
	return d, nil
}

// codeSet is a set of status codes, one bit per code.
type codeSet uint32

func (s codeSet) has(c codes.Code) bool { return c < 32 && s&(1<<c) != 0 }

// defaultFailures are the codes charged to a backend when the config names
// none: the backend could not serve (UNAVAILABLE), or did not answer in
// time while the caller was still waiting (DEADLINE_EXCEEDED).
const defaultFailures = codeSet(1<<codes.Unavailable | 1<<codes.DeadlineExceeded)

// parseConfig parses and validates the policy's JSON object. Unknown fields
// are ignored, as gRPC asks of every policy; every known field is checked,
// and an error names the field and says what it must be.
func parseConfig(js json.RawMessage) (*config, error) {
	var c config
	if len(bytes.TrimSpace(js)) == 0 {
		js = json.RawMessage("{}")
	}
	if err := json.Unmarshal(js, &c); err != nil {
		return nil, invalid("%s", jsonError(err))
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// invalid formats a configuration error that wraps lb.ErrInvalidConfig.
func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", lb.ErrInvalidConfig, Name, fmt.Sprintf(format, args...))
}

// invalidField is lb's validation error err about the config's field, in
// the form of invalid's errors.
func invalidField(field string, err error) error {
	return invalid("%s: %s", field, strings.TrimPrefix(err.Error(), lb.ErrInvalidConfig.Error()+": "))
}

// jsonError says which field a decoding error is about.
func jsonError(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		field := strings.TrimPrefix(te.Field, "balancerKey.") // the embedded struct is not a level of the JSON
		return fmt.Sprintf("%s is a JSON %s; it must be a %s", field, te.Value, jsonType(te.Type.Kind()))
	}
	return fmt.Sprintf("the config is not a JSON object of the policy's fields: %v", err)
}

func jsonType(k reflect.Kind) string {
	switch k {
	case reflect.String:
		return "string"
	case reflect.Int, reflect.Float64:
		return "number"
	case reflect.Slice:
		return "list"
	default:
		return "object"
	}
}

func (c *config) validate() error {
	if err := c.balancerKey.validate(); err != nil {
		return err
	}
	if h := c.RequestHashHeader; h != "" {
		if err := validateHeader(h); err != nil {
			return err
		}
		c.RequestHashHeader = strings.ToLower(h)
	}
	c.failures = defaultFailures
	if c.FailureCodes != nil {
		c.failures = 0
		for i, raw := range c.FailureCodes {
			var code codes.Code
			if err := code.UnmarshalJSON(bytes.TrimSpace(raw)); err != nil {
				return invalid("failureCodes[%d] is %s; it must be a status code name such as \"UNAVAILABLE\" or its number", i, raw)
			}
			if code == codes.OK {
				return invalid("failureCodes[%d] is OK; a success cannot be a failure", i)
			}
			c.failures |= 1 << code
		}
	}
	return nil
}

// validateHeader applies gRFC A76's rules to request_hash_header: a valid
// metadata key, not a binary ("-bin") one, not a pseudo-header.
func validateHeader(h string) error {
	for i := 0; i < len(h); i++ {
		r := h[i]
		if r >= 'A' && r <= 'Z' {
			r += 'a' - 'A'
		}
		if !(r >= 'a' && r <= 'z') && !(r >= '0' && r <= '9') && r != '.' && r != '-' && r != '_' {
			return invalid("requestHashHeader %q has the character %q; metadata keys are made of 0-9 a-z - _ .", h, h[i])
		}
	}
	if strings.HasSuffix(strings.ToLower(h), "-bin") {
		return invalid("requestHashHeader %q ends in \"-bin\"; binary metadata cannot be a hash key", h)
	}
	return nil
}

func (k *balancerKey) validate() error {
	switch k.Strategy {
	case "":
		k.Strategy = strategyRoundRobin
	case strategyRoundRobin, strategyWeightedRoundRobin, strategyRandom, strategyWeightedRandom,
		strategyP2C, strategyRing, strategyMaglev:
	default:
		return invalid("strategy is %q; it must be one of %s (\"\" means %s)", k.Strategy,
			strings.Join([]string{strategyRoundRobin, strategyWeightedRoundRobin, strategyRandom,
				strategyWeightedRandom, strategyP2C, strategyRing, strategyMaglev}, ", "), strategyRoundRobin)
	}
	if k.Ring != nil {
		if k.Strategy != strategyRing {
			return invalid("ring is set but strategy is %q; ring settings apply to strategy %q only", k.Strategy, strategyRing)
		}
		// Ring checks its settings before its backends: building over none
		// reports bad settings, and otherwise only that there are no
		// backends (TestParseConfig holds lb to this).
		if _, err := k.builder().Build(nil); errors.Is(err, lb.ErrInvalidConfig) {
			return invalidField("ring", err)
		}
	}
	if k.Maglev != nil {
		if k.Strategy != strategyMaglev {
			return invalid("maglev is set but strategy is %q; maglev settings apply to strategy %q only", k.Strategy, strategyMaglev)
		}
		// Maglev checks its table size only when it builds one; building a
		// table of up to 16M slots here would be too dear for a parse.
		if n := k.Maglev.TableSize; n != 0 && (n < 2 || n > lb.MaxMaglevTableSize || !big.NewInt(int64(n)).ProbablyPrime(0)) {
			return invalid("maglev.tableSize is %d; it must be a prime from 2 to %d (0 means %d)", n, lb.MaxMaglevTableSize, lb.DefaultMaglevTableSize)
		}
	}
	if o := k.OutlierDetection; o != nil {
		var err error
		if o.base, err = parseDuration("outlierDetection.baseEjectionTime", o.BaseEjectionTime); err != nil {
			return err
		}
		if o.max, err = parseDuration("outlierDetection.maxEjectionTime", o.MaxEjectionTime); err != nil {
			return err
		}
		if o.interval, err = parseDuration("outlierDetection.interval", o.Interval); err != nil {
			return err
		}
		// NewBalancer validates the outlier settings; with no endpoints it
		// does nothing else and starts nothing.
		b, err := lb.NewBalancer(lb.RoundRobin{}, lb.WithOutlierDetection(k.outlier()))
		if err != nil {
			return invalidField("outlierDetection", err)
		}
		b.Close()
	}
	if s := k.Subset; s != nil {
		if _, err := lb.SubsetOf(nil, s.lb()); err != nil {
			return invalidField("subset", err)
		}
	}
	if s := k.SlowStart; s != nil {
		var err error
		if s.window, err = parseDuration("slowStart.window", s.Window); err != nil {
			return err
		}
		b, err := lb.NewBalancer(lb.RoundRobin{}, lb.WithSlowStart(s.lb()))
		if err != nil {
			return invalidField("slowStart", err)
		}
		b.Close()
	}
	return nil
}

// hashed reports whether the strategy places calls by their hash key.
func (k balancerKey) hashed() bool {
	return k.Strategy == strategyRing || k.Strategy == strategyMaglev
}

// builder returns the lb strategy the config names.
func (k balancerKey) builder() lb.Builder {
	switch k.Strategy {
	case strategyWeightedRoundRobin:
		return lb.WeightedRoundRobin{}
	case strategyRandom:
		return lb.Random{}
	case strategyWeightedRandom:
		return lb.WeightedRandom{}
	case strategyP2C:
		return lb.P2C{}
	case strategyRing:
		var r lb.Ring
		if k.Ring != nil {
			r.Replicas, r.LoadFactor = k.Ring.Replicas, k.Ring.LoadFactor
		}
		return r
	case strategyMaglev:
		var m lb.Maglev
		if k.Maglev != nil {
			m.TableSize = k.Maglev.TableSize
		}
		return m
	default:
		return lb.RoundRobin{}
	}
}

func (k balancerKey) outlier() lb.OutlierDetection {
	o := k.OutlierDetection
	return lb.OutlierDetection{
		ConsecutiveFailures:            o.ConsecutiveFailures,
		BaseEjectionTime:               o.base,
		MaxEjectionTime:                o.max,
		MaxEjectionPercent:             o.MaxEjectionPercent,
		Interval:                       o.interval,
		SuccessRateStdevFactor:         o.SuccessRateStdevFactor,
		SuccessRateMinHosts:            o.SuccessRateMinHosts,
		SuccessRateRequestVolume:       o.SuccessRateRequestVolume,
		FailurePercentageThreshold:     o.FailurePercentageThreshold,
		FailurePercentageMinHosts:      o.FailurePercentageMinHosts,
		FailurePercentageRequestVolume: o.FailurePercentageRequestVolume,
		LatencyFactor:                  o.LatencyFactor,
	}
}

// balancerOptions are the lb options the config asks for (a logger aside).
func (k balancerKey) balancerOptions() []lb.Option {
	var opts []lb.Option
	if k.SlowStart != nil {
		opts = append(opts, lb.WithSlowStart(k.SlowStart.lb()))
	}
	if k.OutlierDetection != nil {
		opts = append(opts, lb.WithOutlierDetection(k.outlier()))
	}
	if k.Subset != nil {
		opts = append(opts, lb.WithSubset(k.Subset.lb()))
	}
	return opts
}

// same reports whether k and o build the same lb.Balancer.
func (k balancerKey) same(o balancerKey) bool {
	return k.Strategy == o.Strategy && eq(k.Ring, o.Ring) && eq(k.Maglev, o.Maglev) && eq(k.OutlierDetection, o.OutlierDetection) &&
		eq(k.Subset, o.Subset) && eq(k.SlowStart, o.SlowStart)
}

func eq[T comparable](a, b *T) bool {
	return a == b || (a != nil && b != nil && *a == *b)
}
