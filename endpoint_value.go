package lb

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// MaxEndpointValueSize is the largest value ParseEndpoint accepts, in
// bytes.
const MaxEndpointValueSize = 64 << 10

// endpointJSON is the JSON form of an endpoint.
type endpointJSON struct {
	Addr    string            `json:"addr"`
	Weight  *json.Number      `json:"weight,omitempty"`
	HashKey string            `json:"hash_key,omitempty"`
	Labels  map[string]string `json:"labels,omitempty"`
}

// ParseEndpoint parses an endpoint as registries hold it (an etcd key's
// value, a ZooKeeper znode's data, a Redis member): either JSON,
//
//	{"addr": "10.0.0.1:8080", "weight": 2, "hash_key": "cache-1", "labels": {"zone": "eu-1"}}
//
// where addr is required, weight (an integer; 0 or absent means 1),
// hash_key and labels are optional, and unknown fields are ignored; or a
// bare "host:port". Spaces around the value are ignored. The endpoint must
// pass Validate. Errors wrap ErrInvalidEndpoint. It allocates only what
// the endpoint holds, and never panics, whatever v holds.
func ParseEndpoint(v []byte) (Endpoint, error) {
	bad := func(format string, args ...any) (Endpoint, error) {
		return Endpoint{}, fmt.Errorf("%w: "+format, append([]any{ErrInvalidEndpoint}, args...)...)
	}
	if len(v) > MaxEndpointValueSize {
		return bad("value of %d bytes; values are at most %d", len(v), MaxEndpointValueSize)
	}
	if !utf8.Valid(v) {
		return bad("value is not valid UTF-8")
	}
	v = bytes.TrimSpace(v)
	var ep Endpoint
	if len(v) > 0 && v[0] == '{' {
		var jv endpointJSON
		if err := json.Unmarshal(v, &jv); err != nil {
			return bad("value is not an endpoint's JSON: %v", err)
		}
		if jv.Addr == "" {
			return bad(`value %q has no "addr"`, v)
		}
		ep = Endpoint{Addr: jv.Addr, HashKey: jv.HashKey, Labels: jv.Labels}
		if jv.Weight != nil {
			w, err := strconv.ParseInt(jv.Weight.String(), 10, 64)
			if err != nil || w < 0 || w > MaxWeight {
				return bad("weight %s of %q; weights are integers from 0 (meaning 1) to %d", jv.Weight.String(), jv.Addr, MaxWeight)
			}
			ep.Weight = int(w)
		}
	} else {
		ep = Endpoint{Addr: string(v)}
	}
	if err := ep.Validate(); err != nil {
		return Endpoint{}, err
	}
	return ep, nil
}

// EncodeEndpoint returns the JSON value of ep that ParseEndpoint reads
// back (weight, hash key and labels are left out when unset). The error
// wraps ErrInvalidEndpoint when ep does not validate.
func EncodeEndpoint(ep Endpoint) ([]byte, error) {
	if err := ep.Validate(); err != nil {
		return nil, err
	}
	jv := endpointJSON{Addr: ep.Addr, HashKey: ep.HashKey, Labels: ep.Labels}
	if ep.Weight != 0 {
		n := json.Number(strconv.Itoa(ep.Weight))
		jv.Weight = &n
	}
	return json.Marshal(jv)
}
