package lb

import (
	"fmt"
	"strings"
)

// Endpoint is one backend address as a resolver or the application
// describes it.
type Endpoint struct {
	// Addr is "host:port". The host may be an IP address or a name; the port
	// is required (a number or a service name).
	Addr string
	// Weight scales the backend's share for weighted strategies: a backend
	// of weight 2 gets twice the traffic (and twice the ring replicas or
	// Maglev slots) of one of weight 1. 0 means the default, 1. Negative
	// weights are rejected.
	Weight int
	// HashKey is the name hash strategies place the endpoint by; "" means
	// Addr. Set it where the name that placement must follow differs from
	// the dial address (a groupcache peer URL, nginx's server text, an xDS
	// endpoint's hash key), so that keys stay put when the endpoint is
	// re-addressed. Hash names must be unique in a set, like addresses.
	HashKey string
	// Labels are free-form metadata (zone, version, canary). They are
	// copied by Update and exposed read-only through Backend.Label. The
	// keys LabelRegion, LabelZone, LabelSubZone and LabelPriority describe
	// where an endpoint runs; resolvers that know it (xDS) set them.
	Labels map[string]string
}

// Label keys with a meaning to lb: an endpoint's locality and its priority
// (as xDS describes them). Resolvers that know them set them; locality-aware
// balancing reads them.
const (
	// LabelRegion is the endpoint's region ("us-east1").
	LabelRegion = "region"
	// LabelZone is the endpoint's zone within its region ("us-east1-b").
	LabelZone = "zone"
	// LabelSubZone is the endpoint's sub-zone within its zone (a rack).
	LabelSubZone = "subzone"
	// LabelPriority is the endpoint's priority, a decimal integer: 0 (the
	// default when absent) is the highest; higher numbers are fallbacks.
	LabelPriority = "priority"
)

// MaxWeight is the largest weight accepted for an endpoint.
const MaxWeight = 1 << 20

// Addrs returns endpoints of weight 1 for the given addresses: a shorthand
// for tests and static configuration.
func Addrs(addrs ...string) []Endpoint {
	eps := make([]Endpoint, len(addrs))
	for i, a := range addrs {
		eps[i] = Endpoint{Addr: a}
	}
	return eps
}

// Validate reports whether e is usable: a "host:port" address with no
// whitespace or control characters, whose host is an IP address (IPv6 in
// brackets, with an optional zone) or a DNS name (letters, digits, '-',
// '_', dots; at most 253 bytes), and whose port is a number from 1 to 65535
// or a service name this system knows ("http"); a HashKey without control
// characters; and a weight from 0 (meaning 1) to MaxWeight. The error
// wraps ErrInvalidEndpoint and names the address and the reason.
func (e Endpoint) Validate() error {
	if e.Addr == "" {
		return fmt.Errorf("%w: empty address", ErrInvalidEndpoint)
	}
	if strings.IndexFunc(e.Addr, func(r rune) bool { return r <= ' ' || r == 0x7f }) >= 0 {
		return fmt.Errorf("%w: address %q contains whitespace or a control character", ErrInvalidEndpoint, e.Addr)
	}
	if why := checkAddr(e.Addr); why != "" {
		return fmt.Errorf("%w: address %q %s", ErrInvalidEndpoint, e.Addr, why)
	}
	if strings.IndexFunc(e.HashKey, func(r rune) bool { return r < ' ' || r == 0x7f }) >= 0 {
		return fmt.Errorf("%w: HashKey of %q is %q; it must not contain control characters", ErrInvalidEndpoint, e.Addr, e.HashKey)
	}
	if e.Weight < 0 || e.Weight > MaxWeight {
		return fmt.Errorf("%w: weight of %q is %d; weights must be >= 1 (0 means 1) and <= %d", ErrInvalidEndpoint, e.Addr, e.Weight, MaxWeight)
	}
	return nil
}

// validateSet validates every endpoint, and that no destination appears
// twice, however it is spelled (canonicalAddr), nor any hash name.
func validateSet(eps []Endpoint) error {
	seen := make(map[string]string, len(eps)) // canonical address -> as given
	var names map[string]string               // hash name -> address, when some endpoint has a HashKey
	for _, e := range eps {
		if err := e.Validate(); err != nil {
			return err
		}
		key := canonicalAddr(e.Addr)
		if first, dup := seen[key]; dup {
			if first == e.Addr {
				return fmt.Errorf("%w: address %q appears twice", ErrDuplicateEndpoint, e.Addr)
			}
			return fmt.Errorf("%w: address %q appears twice (also as %q)", ErrDuplicateEndpoint, first, e.Addr)
		}
		seen[key] = e.Addr
		if e.HashKey != "" && names == nil {
			names = make(map[string]string, len(eps))
		}
	}
	if names != nil {
		for _, e := range eps {
			name := e.HashKey
			if name == "" {
				name = e.Addr
			}
			if other, dup := names[name]; dup {
				return fmt.Errorf("%w: hash name %q of %q is also the hash name of %q; HashKeys (or the addresses of endpoints without one) must be unique", ErrDuplicateEndpoint, name, e.Addr, other)
			}
			names[name] = e.Addr
		}
	}
	return nil
}

func copyLabels(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	c := make(map[string]string, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}
