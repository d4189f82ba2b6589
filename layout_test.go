package lb

import (
	"testing"
	"unsafe"
)

// TestBackendLayout keeps the Backend's hot counters alone in the second
// 128 bytes of a 256-byte object (see the Backend type): a field added in
// the wrong place, or a padding not adjusted, fails here rather than
// slowing parallel picks unnoticed.
func TestBackendLayout(t *testing.T) {
	var b Backend
	if got := unsafe.Sizeof(b); got != 256 {
		t.Errorf("Backend is %d bytes; want 256 (adjust the padding)", got)
	}
	if got := unsafe.Offsetof(b.inflight); got != 128 {
		t.Errorf("Backend.inflight is at offset %d; want 128", got)
	}
	for name, off := range map[string]uintptr{
		"ewma": unsafe.Offsetof(b.ewma), "streak": unsafe.Offsetof(b.streak),
		"failures": unsafe.Offsetof(b.failures), "success": unsafe.Offsetof(b.success),
	} {
		if off < 128 || off >= 192 {
			t.Errorf("Backend.%s is at offset %d; want it on the hot line, 128 to 191", name, off)
		}
	}
	if off := unsafe.Offsetof(b.level); off >= 128 {
		t.Errorf("Backend.level is at offset %d; the cold fields must fit the first 128 bytes", off)
	}
}
