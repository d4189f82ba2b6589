package lb

import (
	"testing"
	"unsafe"
)

// TestBackendLayout keeps the Backend's hot counters alone in the second
// 128 bytes of a 256-byte object (see backendHot): fields that outgrow
// their half fail to compile (a negative array length); this catches the
// rest, such as a field added to Backend itself.
func TestBackendLayout(t *testing.T) {
	var b Backend
	if got := unsafe.Sizeof(b); got != 256 {
		t.Errorf("Backend is %d bytes; want 256", got)
	}
	if got := unsafe.Offsetof(b.backendHot); got != 128 {
		t.Errorf("the hot counters are at offset %d; want 128", got)
	}
	if got := unsafe.Sizeof(b.backendHot); got > 64 {
		t.Errorf("the hot counters take %d bytes; want them on one 64-byte line", got)
	}
}
