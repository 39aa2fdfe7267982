package eval

import (
	"image/png"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/infomax/infomax/knn"
	"github.com/infomax/infomax/pyexport"
)

// On a separable problem (the class is the quadrant of two dimensions, with a
// margin, among noise dimensions) the probe learns near-perfect accuracy; on
// features that carry no information it stays at chance.
func TestLinearProbeSeparable(t *testing.T) {
	dir, err := pyexport.ExportProbe(t.Context(), 6, 4, 0, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(7, 8))
	sample := func(n int, informative bool) (knn.Features, []int) {
		f := knn.Features{Dim: 6, Data: make([]float32, n*6)}
		labels := make([]int, n)
		for i := 0; i < n; i++ {
			for j := 0; j < 6; j++ {
				v := r.NormFloat64()
				for j < 2 && informative && math.Abs(v) < 0.3 {
					v = r.NormFloat64()
				}
				f.Data[i*6+j] = float32(v)
			}
			if !informative {
				labels[i] = r.IntN(4)
				continue
			}
			c := 0
			if f.Data[i*6] > 0 {
				c++
			}
			if f.Data[i*6+1] > 0 {
				c += 2
			}
			labels[i] = c
		}
		return f, labels
	}
	train, tl := sample(2000, true)
	test, el := sample(500, true)
	res, err := RunProbe(dir, train, tl, test, el, ProbeSettings{Epochs: 20, BatchSize: 64, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if res.Accuracy < 0.95 || res.TrainAccuracy < 0.95 {
		t.Errorf("probe on a separable problem: test %.3f, train %.3f", res.Accuracy, res.TrainAccuracy)
	}
	train, tl = sample(2000, false)
	test, el = sample(2000, false)
	res, err = RunProbe(dir, train, tl, test, el, ProbeSettings{Epochs: 5, BatchSize: 64, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if res.Accuracy > 0.3 {
		t.Errorf("probe on uninformative features: test %.3f, want near 0.25", res.Accuracy)
	}
}

// The MLP probe (the Deep InfoMax paper's classifier) learns what no linear
// probe can: the class is the XOR of two dimensions' signs (with a margin),
// among noise dimensions. The linear probe stays near chance on it.
func TestMLPProbeLearnsWhatTheLinearCannot(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	sample := func(n int) (knn.Features, []int) {
		f := knn.Features{Dim: 6, Data: make([]float32, n*6)}
		labels := make([]int, n)
		for i := 0; i < n; i++ {
			for j := 0; j < 6; j++ {
				v := r.NormFloat64()
				for j < 2 && math.Abs(v) < 0.3 {
					v = r.NormFloat64()
				}
				f.Data[i*6+j] = float32(v)
			}
			if (f.Data[i*6] > 0) != (f.Data[i*6+1] > 0) {
				labels[i] = 1
			}
		}
		return f, labels
	}
	train, tl := sample(4000)
	test, el := sample(1000)
	accuracy := func(hidden int) float64 {
		dir, err := pyexport.ExportProbe(t.Context(), 6, 2, hidden, os.Stderr)
		if err != nil {
			t.Fatal(err)
		}
		res, err := RunProbe(dir, train, tl, test, el, ProbeSettings{Epochs: 30, BatchSize: 64, Seed: 1})
		if err != nil {
			t.Fatal(err)
		}
		return res.Accuracy
	}
	mlp, linear := accuracy(MLPHidden), accuracy(0)
	if mlp < 0.9 || linear > 0.65 {
		t.Errorf("XOR of two signs: MLP probe %.3f (want >= 0.9), linear probe %.3f (want near 0.5)", mlp, linear)
	}
	t.Logf("XOR of two signs: MLP probe %.3f, linear probe %.3f", mlp, linear)
}

func TestGridLayout(t *testing.T) {
	px := func(v byte) []byte {
		b := make([]byte, 4*4*3)
		for i := range b {
			b[i] = v
		}
		return b
	}
	rows := []GridRow{{Query: px(10), Neighbours: [][]byte{px(20), px(30)}}, {Query: px(40), Neighbours: [][]byte{px(50), px(60)}}}
	p := filepath.Join(t.TempDir(), "g.png")
	if err := WriteGrid(p, rows, 4, 4, 3, 3); err != nil {
		t.Fatal(err)
	}
	f, _ := os.Open(p)
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	// 3 cells of 12 px, one 8 px gap after the query and one 2 px gap; 2 rows of 12 with a 2 px gap.
	if b := img.Bounds(); b.Dx() != 3*12+8+2 || b.Dy() != 2*12+2 {
		t.Fatalf("grid is %v", b)
	}
	at := func(x, y int) uint32 { r, _, _, _ := img.At(x, y).RGBA(); return r >> 8 }
	if at(0, 0) != 10 || at(11, 11) != 10 || at(12+8, 0) != 20 || at(12+8+12+2, 14) != 60 || at(12, 0) != 255 {
		t.Errorf("cells: %d %d %d %d gap %d", at(0, 0), at(11, 11), at(20, 0), at(34, 14), at(12, 0))
	}
}
