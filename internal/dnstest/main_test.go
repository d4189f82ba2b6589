// Package dnstest_test tests lb's DNS resolver against a real DNS server
// on loopback (miekg/dns), reached through the standard library's
// resolver. It is a module of its own so that the DNS library stays out of
// the root module's graph.
package dnstest_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine outlives them.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
