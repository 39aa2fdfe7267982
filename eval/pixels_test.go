package eval

import (
	"slices"
	"strings"
	"testing"

	"github.com/infomax/infomax/run"
)

// PixelRows make the float32 pixels a copy would hold, one row at a time,
// through a sample's index too.
func TestPixelRowsAreTheScaledPixels(t *testing.T) {
	images := []byte{0, 255, 10, 20, 30, 40}
	p := PixelRows{Images: images, Dim: 2, Scale: 1.0 / 255, Offset: -0.5}
	row := make([]float32, 2)
	for i := 0; i < 3; i++ {
		p.Row(i, row)
		for j := range row {
			if want := float32(images[i*2+j])*(1.0/255) - 0.5; row[j] != want {
				t.Fatalf("row %d value %d: %v, want %v", i, j, row[j], want)
			}
		}
	}
	p.Index = []int{2, 0}
	if p.Len() != 2 {
		t.Fatalf("Len with an index: %d", p.Len())
	}
	p.Row(0, row)
	if row[0] != float32(30)*(1.0/255)-0.5 {
		t.Errorf("sampled row 0 is not image 2: %v", row)
	}
}

// The raw-pixel baseline keeps every training image while their float32
// pixels fit eval.raw_pixel_mib, and a seeded, sorted sample within it past
// that, which the report says.
func TestPixelSample(t *testing.T) {
	const dim = 64 * 64 * 3 // Tiny ImageNet: 48 KiB a row as float32
	if s := PixelSample(50000, 32*32*3, 1024<<20, 0); s != nil {
		t.Errorf("CIFAR-10's 50,000 training images (614 MB) under 1 GiB: sampled to %d", len(s))
	}
	if s := PixelSample(20000, dim, 1024<<20, 0); s != nil {
		t.Errorf("the Tiny ImageNet subset (983 MB) under 1 GiB: sampled to %d", len(s))
	}
	s := PixelSample(100000, dim, 1024<<20, 0)
	if len(s) != 21845 || !slices.IsSorted(s) || s[len(s)-1] >= 100000 {
		t.Fatalf("full Tiny ImageNet: %d images, sorted %v", len(s), slices.IsSorted(s))
	}
	if c := slices.Compact(slices.Clone(s)); len(c) != len(s) {
		t.Error("the sample repeats an image")
	}
	if again := PixelSample(100000, dim, 1024<<20, 0); !slices.Equal(again, s) {
		t.Error("the same seed drew another sample")
	}
	if other := PixelSample(100000, dim, 1024<<20, 1); slices.Equal(other, s) {
		t.Error("another seed drew the same sample")
	}
	rep := Report{Pixels: &Scores{KNN: &KNNResult{}, BankImages: 21845, BankOf: 100000}, Model: Scores{KNN: &KNNResult{}}, KNNCurve: []run.CurvePoint{}}
	if md := rep.Markdown(); !strings.Contains(md, "a seeded sample of 21845 of the 100000 training images") {
		t.Errorf("report.md does not say the pixels were sampled:\n%s", md)
	}
}
