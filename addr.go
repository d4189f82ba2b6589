package lb

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// checkAddr validates a "host:port" address: the host is an IP address
// (IPv6 in brackets, with an optional zone) or a DNS name, and the port a
// number from 1 to 65535 or a service name this system knows (RFC 6335
// syntax, resolved by net.LookupPort, as a dial would). It returns the
// reason in words, or "".
func checkAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Sprintf("is not host:port: %v", err)
	}
	if host == "" {
		return "has no host"
	}
	if port == "" {
		return "has no port"
	}
	if why := checkHost(host); why != "" {
		return why
	}
	return checkPort(port)
}

// checkHost validates the host part of an address.
func checkHost(host string) string {
	if strings.IndexByte(host, ':') >= 0 {
		if _, err := netip.ParseAddr(host); err != nil {
			return fmt.Sprintf("has host %q, which is neither an IPv6 address nor a name", host)
		}
		return ""
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return ""
	}
	name := strings.TrimSuffix(host, ".")
	if len(name) > 253 {
		return fmt.Sprintf("has a host name of %d bytes; names are at most 253", len(name))
	}
	labels := strings.Split(name, ".")
	for _, l := range labels {
		switch {
		case l == "":
			return fmt.Sprintf("has host %q, which has an empty label", host)
		case len(l) > 63:
			return fmt.Sprintf("has host %q, which has a label of %d bytes; labels are at most 63", host, len(l))
		case l[0] == '-' || l[len(l)-1] == '-':
			return fmt.Sprintf("has host %q, which has a label that starts or ends with '-'", host)
		}
		for i := 0; i < len(l); i++ {
			if c := l[i]; !isAlnum(c) && c != '-' && c != '_' {
				return fmt.Sprintf("has host %q, which holds %q; names hold letters, digits, '-', '_' and '.' (IDNs in their xn-- form)", host, rune(c))
			}
		}
	}
	if allDigits(labels[len(labels)-1]) {
		// RFC 1123: a name's last label is never all digits, so this was
		// meant as an IPv4 address and is not a valid one.
		return fmt.Sprintf("has host %q, which is not a valid IP address (and not a name: its last label is all digits)", host)
	}
	return ""
}

// checkPort validates the port part of an address.
func checkPort(port string) string {
	if allDigits(port) {
		if n := portNumber(port); n < 1 || n > 65535 {
			return fmt.Sprintf("has port %s; ports must be 1-65535", port)
		}
		return ""
	}
	if !serviceName(port) {
		return fmt.Sprintf("has port %q, which is neither a number from 1 to 65535 nor a service name", port)
	}
	if _, err := net.LookupPort("tcp", port); err != nil {
		return fmt.Sprintf("has port %q, which is not a service this system knows (%v); give the number", port, err)
	}
	return ""
}

// portNumber returns the value of a port of decimal digits (leading zeros
// allowed), or -1 when it is over 65535.
func portNumber(port string) int {
	port = strings.TrimLeft(port, "0")
	if len(port) > 5 {
		return -1
	}
	if port == "" {
		return 0
	}
	n, _ := strconv.Atoi(port)
	if n > 65535 {
		return -1
	}
	return n
}

// serviceName reports whether s has the syntax of an RFC 6335 service
// name: 1 to 15 letters, digits and hyphens, at least one letter, no
// hyphen first, last or twice in a row.
func serviceName(s string) bool {
	if len(s) == 0 || len(s) > 15 || s[0] == '-' || s[len(s)-1] == '-' || strings.Contains(s, "--") {
		return false
	}
	letter := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
			letter = true
		case c >= '0' && c <= '9' || c == '-':
		default:
			return false
		}
	}
	return letter
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// canonicalAddr returns the form of a valid address that two spellings of
// one destination share, for duplicate checks: IP addresses in their
// canonical text (IPv4-mapped IPv6 as IPv4, IPv6 compressed and in lower
// case), names and service names in lower case, numeric ports without
// leading zeros. Endpoints keep the caller's spelling for display, dialling
// and hashing.
func canonicalAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		host = ip.Unmap().String()
	} else {
		host = strings.ToLower(host)
	}
	if allDigits(port) {
		port = strconv.Itoa(portNumber(port))
	} else {
		port = strings.ToLower(port)
	}
	return net.JoinHostPort(host, port)
}
