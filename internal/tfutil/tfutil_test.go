package tfutil_test

import (
	"testing"

	"github.com/infomax/infomax/internal/memstat"
	"github.com/infomax/infomax/internal/tfutil"
)

// Input tensors made and dropped in a loop (as the probe's and kNN's are) must not
// pile up in C memory: 2 GiB of 4 MiB tensors may add at most a few times
// GCEvery to the resident set. Without Track the Go objects are too small for
// the collector to run, and the set grows by the full 2 GiB.
func TestDroppedTensorsAreFreed(t *testing.T) {
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
		if s := x.Shape(); s[0] != 1024 || s[1] != 1024 {
			t.Fatalf("shape %v", s)
		}
	}
	if grew := memstat.ResidentMiB() - before; grew > 256 {
		t.Fatalf("resident memory grew by %.0f MiB after making and dropping 2 GiB of tensors; want ≤ 256", grew)
	}
}
