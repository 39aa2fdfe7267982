package offheap

import (
	"runtime"
	"testing"
)

// A buffer from Float32s holds what is written into it and is not counted
// in Go's heap.
func TestFloat32sAreOutsideTheHeap(t *testing.T) {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	const n = 16 << 20 // 64 MiB
	f, free, err := Float32s(n)
	if err != nil {
		t.Fatal(err)
	}
	defer free()
	defer free() // a second call is a no-op
	for i := range f {
		f[i] = float32(i)
	}
	runtime.ReadMemStats(&after)
	if len(f) != n || f[n-1] != float32(n-1) || f[12345] != 12345 {
		t.Fatalf("buffer of %d: f[n-1] = %g", len(f), f[n-1])
	}
	if grew := int64(after.HeapAlloc) - int64(before.HeapAlloc); grew > 8<<20 {
		t.Errorf("Go's heap grew by %d bytes for a 64 MiB off-heap buffer", grew)
	}
	if e, _, err := Float32s(0); err != nil || len(e) != 0 {
		t.Errorf("Float32s(0): %v, %d", err, len(e))
	}
	if _, _, err := Float32s(-1); err == nil {
		t.Errorf("Float32s(-1): no error")
	}
}
