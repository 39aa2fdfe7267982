package tfutil_test

import (
	"runtime/debug"
	"testing"

	"github.com/infomax/infomax/internal/memstat"
	"github.com/infomax/infomax/internal/tfutil"
)

// Tensors made and freed in a loop (as the probe's and kNN's are) must not
// pile up in C memory, with Go's collector off: 2 GiB of 4 MiB tensors may
// add at most 256 MiB to the resident set. Without Free the set grows by the
// full 2 GiB (the finalizers never run).
func TestFreedTensorsDoNotPileUp(t *testing.T) {
	if !tfutil.Layout() {
		t.Fatal("graft's Tensor no longer keeps its C pointer in field c: Free cannot free; see tfutil's comment")
	}
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	data := make([]float32, 1<<20) // 4 MiB
	for i := range data {
		data[i] = float32(i)
	}
	before := memstat.ResidentMiB()
	if before < 0 {
		t.Skip("no VmRSS in /proc/self/status")
	}
	for i := 0; i < 512; i++ {
		x, err := tfutil.FromFloat32s(data, 1024, 1024)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			got, err := tfutil.Float32s(x)
			if err != nil || got[12345] != 12345 {
				t.Fatalf("element 12345: %v, %v", got[12345], err)
			}
		}
		tfutil.Free(x, nil)
		tfutil.Free(x) // twice: a no-op
	}
	if grew := memstat.ResidentMiB() - before; grew > 256 {
		t.Fatalf("resident memory grew by %.0f MiB after making and freeing 2 GiB of tensors; want ≤ 256", grew)
	}
}
