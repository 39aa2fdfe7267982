package graph_test

import (
	"github.com/infomax/infomax/internal/cpuinfo"
	"math"
	"testing"

	"github.com/infomax/infomax/graph"
	"github.com/infomax/infomax/testkit/testmodel"
)

// bfloat16 (oneDNN's automatic mixed precision) computes what float32 does,
// to bfloat16's accuracy: 8 significant bits, a relative rounding of 2^-9 ≈
// 0.2% per value, with the products' sums kept in float32. Through the
// encoder's five layers that leaves the features within a few per cent of
// float32's (cosine similarity above 0.999) and the losses, means over the
// batch, within 2%; and they do differ, so the rewrite did happen.
func TestBfloat16IsFloat32ToItsAccuracy(t *testing.T) {
	cfg := testmodel.Config()
	dir := testmodel.Export(t, cfg)
	models := map[string]*graph.Model{}
	for _, p := range []string{"float32", "bfloat16"} {
		m, err := graph.Load(dir, graph.Options{IntraOpThreads: 2, InterOpThreads: 1, Compute: p})
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		models[p] = m
	}
	set := testmodel.FashionMNISTSet(t, 64)
	f32, bf16 := models["float32"], models["bfloat16"]
	za, err := f32.Encode(set.Images)
	if err != nil {
		t.Fatal(err)
	}
	zb, err := bf16.Encode(set.Images)
	if err != nil {
		t.Fatal(err)
	}
	dim := f32.Manifest.FeatureDim
	worst, differs := 1.0, false
	for i := 0; i < 64; i++ {
		a, b := za[i*dim:(i+1)*dim], zb[i*dim:(i+1)*dim]
		var ab, aa, bb float64
		for j := range a {
			ab += float64(a[j]) * float64(b[j])
			aa += float64(a[j]) * float64(a[j])
			bb += float64(b[j]) * float64(b[j])
			differs = differs || a[j] != b[j]
		}
		worst = math.Min(worst, ab/math.Sqrt(aa*bb))
	}
	if worst < 0.999 {
		t.Errorf("features: lowest cosine similarity float32 vs bfloat16 %.5f (want ≥ 0.999)", worst)
	}
	if !differs {
		// TensorFlow turns its oneDNN kernels off by default on CPUs
		// without AVX-512, and the rewrite is oneDNN's.
		t.Skipf("oneDNN's bfloat16 rewrite changed no feature: TensorFlow's oneDNN kernels are off on this CPU (%s)", cpuinfo.Describe())
	}
	eps := make([]float32, 64*dim)
	perm := make([]int32, 64)
	for i := range perm {
		perm[i] = int32((i + 7) % 64)
		for j := 0; j < dim; j++ {
			eps[i*dim+j] = float32(math.Sin(float64(i*dim + j)))
		}
	}
	la, err := f32.TrainStepWithNoise(set.Images, eps, perm, perm)
	if err != nil {
		t.Fatal(err)
	}
	lb, err := bf16.TrainStepWithNoise(set.Images, eps, perm, perm)
	if err != nil {
		t.Fatal(err)
	}
	for _, term := range append([]string{"loss"}, f32.Manifest.LossTerms...) {
		a, b := la.Loss, lb.Loss
		if term != "loss" {
			a, b = la.Terms[term], lb.Terms[term]
		}
		if math.Abs(a-b) > 0.02*math.Abs(a) {
			t.Errorf("%s: float32 %.6f, bfloat16 %.6f: more than 2%% apart", term, a, b)
		}
		t.Logf("%s: float32 %.6f, bfloat16 %.6f", term, a, b)
	}
	t.Logf("features: lowest cosine similarity %.6f", worst)
}

// A model exported with model.precision: bfloat16 computes its
// convolutions in bfloat16 by itself (Keras's mixed_bfloat16 policy in the
// exporter, no session rewrite): from the same seed, the same initial
// weights as the float32 export, and features apart by bfloat16's rounding
// only.
func TestBfloat16ExportIsFloat32ToItsAccuracy(t *testing.T) {
	set := testmodel.FashionMNISTSet(t, 32)
	var feats [2][]float32
	for i, p := range []string{"float32", "bfloat16"} {
		cfg := testmodel.Config()
		cfg.Model.BatchNorm = "fused"
		cfg.Model.Precision = p
		m, err := graph.Load(testmodel.Export(t, cfg), graph.Options{IntraOpThreads: 2, InterOpThreads: 1})
		if err != nil {
			t.Fatal(err)
		}
		if want := map[string]string{"float32": "", "bfloat16": "bfloat16"}[p]; m.Manifest.Precision != want && m.Manifest.Precision != p {
			t.Fatalf("manifest precision %q, want %q", m.Manifest.Precision, p)
		}
		if feats[i], err = m.Encode(set.Images); err != nil {
			t.Fatal(err)
		}
		m.Close()
	}
	differs, worst := false, 1.0
	dim := len(feats[0]) / 32
	for i := 0; i < 32; i++ {
		a, b := feats[0][i*dim:(i+1)*dim], feats[1][i*dim:(i+1)*dim]
		var ab, aa, bb float64
		for j := range a {
			ab += float64(a[j]) * float64(b[j])
			aa += float64(a[j]) * float64(a[j])
			bb += float64(b[j]) * float64(b[j])
			differs = differs || a[j] != b[j]
		}
		worst = math.Min(worst, ab/math.Sqrt(aa*bb))
	}
	if !differs || worst < 0.999 {
		t.Errorf("the bfloat16 export against the float32 one: differ %v (want true), lowest cosine %.5f (want ≥ 0.999)", differs, worst)
	}
	t.Logf("lowest cosine similarity %.6f", worst)
}
