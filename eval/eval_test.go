package eval

import (
	"io"
	"math"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/infomax/infomax/exporter"
	"github.com/infomax/infomax/knn"
)

// On a separable problem (the class is the quadrant of two dimensions, with a
// margin, among noise dimensions) the probe learns near-perfect accuracy; on
// features that carry no information it stays at chance.
func TestLinearProbeSeparable(t *testing.T) {
	dir, err := exportProbe(t, 6, 4, 0, os.Stderr)
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
	res, err := TrainProbe(dir, train, tl, test, el, ProbeSettings{Epochs: 20, BatchSize: 64, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if res.Accuracy < 0.95 || res.TrainAccuracy < 0.95 {
		t.Errorf("probe on a separable problem: test %.3f, train %.3f", res.Accuracy, res.TrainAccuracy)
	}
	train, tl = sample(2000, false)
	test, el = sample(2000, false)
	res, err = TrainProbe(dir, train, tl, test, el, ProbeSettings{Epochs: 5, BatchSize: 64, Seed: 1})
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
		dir, err := exportProbe(t, 6, 2, hidden, os.Stderr)
		if err != nil {
			t.Fatal(err)
		}
		res, err := TrainProbe(dir, train, tl, test, el, ProbeSettings{Epochs: 30, BatchSize: 64, Seed: 1})
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

// exportProbe exports the probe of the source tree's pyexport/probe.py.
func exportProbe(tb testing.TB, dim, classes, hidden int, stderr io.Writer) (string, error) {
	program, err := exporter.ProbeProgram("")
	if err != nil {
		return "", err
	}
	return exporter.ExportProbe(tb.Context(), program, dim, classes, hidden, stderr)
}
