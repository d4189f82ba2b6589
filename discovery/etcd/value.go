package etcd

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/go-lb/lb"
)

// ErrMalformedValue is wrapped by the error of ParseEndpoint for a value
// that describes no valid endpoint.
var ErrMalformedValue = errors.New("etcd: malformed endpoint value")

// MaxValueSize is the largest value ParseEndpoint accepts, in bytes.
const MaxValueSize = 64 << 10

// value is the JSON form of an endpoint.
type value struct {
	Addr   string            `json:"addr"`
	Weight *json.Number      `json:"weight,omitempty"`
	Labels map[string]string `json:"labels,omitempty"`
}

// ParseEndpoint parses the value of one key: either JSON,
//
//	{"addr": "10.0.0.1:8080", "weight": 2, "labels": {"zone": "eu-1"}}
//
// where addr is required and weight (an integer; 0 or absent means 1) and labels are
// optional and unknown fields are ignored, or a bare "host:port". Spaces
// around the value are ignored. The endpoint must pass lb.Endpoint's
// Validate. Errors wrap ErrMalformedValue.
func ParseEndpoint(v []byte) (lb.Endpoint, error) {
	bad := func(format string, args ...any) (lb.Endpoint, error) {
		return lb.Endpoint{}, fmt.Errorf("%w: "+format, append([]any{ErrMalformedValue}, args...)...)
	}
	if len(v) > MaxValueSize {
		return bad("%d bytes; values are at most %d", len(v), MaxValueSize)
	}
	if !utf8.Valid(v) {
		return bad("not valid UTF-8")
	}
	v = bytes.TrimSpace(v)
	var ep lb.Endpoint
	if len(v) > 0 && v[0] == '{' {
		var jv value
		if err := json.Unmarshal(v, &jv); err != nil {
			return bad("%v", err)
		}
		if jv.Addr == "" {
			return bad(`no "addr"`)
		}
		ep = lb.Endpoint{Addr: jv.Addr, Labels: jv.Labels}
		if jv.Weight != nil {
			w, err := jv.Weight.Int64()
			if err != nil || w < 0 || w > lb.MaxWeight {
				return bad("weight %s of %q; weights are integers from 0 (meaning 1) to %d", jv.Weight.String(), jv.Addr, lb.MaxWeight)
			}
			ep.Weight = int(w)
		}
	} else {
		ep = lb.Endpoint{Addr: string(v)}
	}
	if err := ep.Validate(); err != nil {
		return bad("%v", err)
	}
	return ep, nil
}

// EncodeEndpoint returns the JSON value for ep that ParseEndpoint reads
// back (weight and labels are left out when unset). The error wraps
// lb.ErrInvalidEndpoint when ep does not validate.
func EncodeEndpoint(ep lb.Endpoint) ([]byte, error) {
	if err := ep.Validate(); err != nil {
		return nil, err
	}
	jv := value{Addr: ep.Addr, Labels: ep.Labels}
	if ep.Weight != 0 {
		n := json.Number(fmt.Sprint(ep.Weight))
		jv.Weight = &n
	}
	return json.Marshal(jv)
}
