package benchmarks

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine outlives them (the
// HTTP benchmarks start servers and clients).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
