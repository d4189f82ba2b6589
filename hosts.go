package lb

import (
	"fmt"
	"net"
	"net/url"
	"strings"
)

// hostSet is the hosts a Transport serves (WithHosts): names in lower
// case, each with any port, or host:port pairs.
type hostSet struct {
	names map[string]bool // host -> true: any port
	pairs map[string]bool // canonical host:port
	text  string          // for errors
}

func newHostSet(hosts []string) (*hostSet, error) {
	if len(hosts) == 0 {
		return nil, fmt.Errorf("%w: WithHosts needs at least one host", ErrInvalidConfig)
	}
	hs := &hostSet{names: map[string]bool{}, pairs: map[string]bool{}}
	for _, h := range hosts {
		if h == "" || strings.ContainsAny(h, "/?#@ ") || !validHostHeader(h) {
			return nil, fmt.Errorf("%w: WithHosts(%q): want a host name, or host:port", ErrInvalidConfig, h)
		}
		if host, port, err := net.SplitHostPort(h); err == nil {
			if host == "" || checkHost(host) != "" || !allDigits(port) || checkPort(port) != "" {
				return nil, fmt.Errorf("%w: WithHosts(%q): want a host name, or host:port with a port from 1 to 65535", ErrInvalidConfig, h)
			}
			hs.pairs[net.JoinHostPort(canonicalHost(host), strings.TrimLeft(port, "0"))] = true
			continue
		}
		host := strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
		if checkHost(host) != "" {
			return nil, fmt.Errorf("%w: WithHosts(%q): %q is neither an IP address nor a host name", ErrInvalidConfig, h, host)
		}
		hs.names[canonicalHost(host)] = true
	}
	hs.text = strings.Join(hosts, ", ")
	return hs, nil
}

// serves reports whether the Transport serves u's host: its name (any
// port), or its name and port (the scheme's default port when u has
// none).
func (hs *hostSet) serves(u *url.URL) bool {
	host := u.Hostname()
	if hs.names[canonicalHost(host)] {
		return true
	}
	if len(hs.pairs) == 0 {
		return false
	}
	port := u.Port()
	if port == "" {
		switch u.Scheme {
		case "https":
			port = "443"
		default:
			port = "80"
		}
	}
	return hs.pairs[net.JoinHostPort(canonicalHost(host), strings.TrimLeft(port, "0"))]
}

func (hs *hostSet) String() string { return hs.text }

// canonicalHost is canonicalAddr's rule for a host alone, and a name's
// absolute form ("api.internal.") is its relative one: one service.
func canonicalHost(h string) string {
	c := canonicalAddr(net.JoinHostPort(strings.TrimSuffix(h, "."), "1"))
	host, _, _ := net.SplitHostPort(c)
	return host
}
