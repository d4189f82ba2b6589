package etcd

import (
	"errors"
	"fmt"

	"github.com/go-lb/lb"
)

// ErrMalformedValue is wrapped by the error of ParseEndpoint for a value
// that describes no valid endpoint.
var ErrMalformedValue = errors.New("etcd: malformed endpoint value")

// MaxValueSize is the largest value ParseEndpoint accepts, in bytes.
const MaxValueSize = lb.MaxEndpointValueSize

// ParseEndpoint parses the value of one key: either JSON,
//
//	{"addr": "10.0.0.1:8080", "weight": 2, "hash_key": "cache-1", "labels": {"zone": "eu-1"}}
//
// or a bare "host:port", as lb.ParseEndpoint reads it. Errors wrap
// ErrMalformedValue and lb.ErrInvalidEndpoint.
func ParseEndpoint(v []byte) (lb.Endpoint, error) {
	ep, err := lb.ParseEndpoint(v)
	if err != nil {
		return lb.Endpoint{}, fmt.Errorf("%w: %w", ErrMalformedValue, err)
	}
	return ep, nil
}

// EncodeEndpoint returns the JSON value for ep that ParseEndpoint reads
// back (lb.EncodeEndpoint). The error wraps lb.ErrInvalidEndpoint when ep
// does not validate.
func EncodeEndpoint(ep lb.Endpoint) ([]byte, error) { return lb.EncodeEndpoint(ep) }
