package graph_test

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/infomax/infomax/graph"
	"github.com/infomax/infomax/testkit/testmodel"
	"gonum.org/v1/gonum/mat"
)

func load(t *testing.T) (*graph.Model, string) {
	t.Helper()
	cfg := testmodel.Config()
	dir := testmodel.Export(t, cfg)
	_, hash := cfg.SpecJSON()
	m, err := graph.Load(dir, graph.Options{ConfigHash: hash, IntraOpThreads: 2, InterOpThreads: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m, dir
}

func batch(m *graph.Model, n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 0))
	b := make([]byte, n*m.Manifest.ImageBytes())
	for i := range b {
		b[i] = byte(r.IntN(256))
	}
	return b
}

func TestTrainStepAndEncode(t *testing.T) {
	m, _ := load(t)
	x := batch(m, 8, 1)
	for want := int64(1); want <= 3; want++ {
		l, err := m.TrainStep(x)
		if err != nil {
			t.Fatal(err)
		}
		if l.Step != want {
			t.Errorf("step = %d, want %d", l.Step, want)
		}
		for _, term := range m.Manifest.LossTerms {
			v, ok := l.Terms[term]
			if !ok || math.IsNaN(v) || math.IsInf(v, 0) {
				t.Errorf("term %s = %v (present %v)", term, v, ok)
			}
		}
		// The total is the manifest's weighted sum of the terms.
		want := 0.5*l.Terms["global"] + 1.5*l.Terms["local"] + 0.01*l.Terms["prior"]
		if math.Abs(l.Loss-want) > 1e-4*math.Abs(want) {
			t.Errorf("loss %v, weighted terms %v", l.Loss, want)
		}
	}
	z, err := m.Encode(x[:5*m.Manifest.ImageBytes()])
	if err != nil {
		t.Fatal(err)
	}
	if len(z) != 5*m.Manifest.FeatureDim {
		t.Fatalf("encode: %d floats, want %d", len(z), 5*m.Manifest.FeatureDim)
	}
	// Inference mode: an image's feature does not depend on its batch.
	z1, err := m.Encode(x[:m.Manifest.ImageBytes()])
	if err != nil {
		t.Fatal(err)
	}
	for i := range z1 {
		if math.Abs(float64(z1[i]-z[i])) > 1e-5 {
			t.Fatalf("feature %d: %v alone, %v in a batch", i, z1[i], z[i])
		}
	}
}

func TestBadBatches(t *testing.T) {
	m, _ := load(t)
	per := m.Manifest.ImageBytes()
	cases := []struct {
		name string
		run  func() error
		want string
	}{
		{"ragged", func() error { _, err := m.TrainStep(make([]byte, 3*per+7)); return err }, "not a whole number of 28×28×1"},
		{"one image", func() error { _, err := m.TrainStep(make([]byte, per)); return err }, "at least 2 images"},
		{"empty encode", func() error { _, err := m.Encode(nil); return err }, "batch of 0 bytes"},
	}
	for _, c := range cases {
		err := c.run()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want it to contain %q", c.name, err, c.want)
		}
	}
}

func TestLoadErrors(t *testing.T) {
	_, dir := load(t)
	_, err := graph.Load(dir, graph.Options{ConfigHash: "0123456789abcdef"})
	if !errors.Is(err, graph.ErrStale) || !strings.Contains(err.Error(), dir) {
		t.Errorf("other config: %v, want ErrStale naming %s", err, dir)
	}
	missing := filepath.Join(t.TempDir(), "nothing")
	_, err = graph.Load(missing, graph.Options{})
	if !errors.Is(err, graph.ErrNoExport) || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing export: %v, want ErrNoExport naming %s", err, missing)
	}
}

// A checkpoint restores weights, BatchNorm statistics, Adam's slots and the
// step: the steps after a restore repeat the steps after the save exactly
// (the in-graph draws depend only on the seed and the step).
func TestSaveRestoreRepeatsSteps(t *testing.T) {
	m, _ := load(t)
	x := batch(m, 8, 2)
	for i := 0; i < 3; i++ {
		if _, err := m.TrainStep(x); err != nil {
			t.Fatal(err)
		}
	}
	prefix := filepath.Join(t.TempDir(), "ckpt")
	if err := m.Save(prefix); err != nil {
		t.Fatal(err)
	}
	var first []graph.Losses
	for i := 0; i < 3; i++ {
		l, err := m.TrainStep(x)
		if err != nil {
			t.Fatal(err)
		}
		first = append(first, l)
	}
	if err := m.Restore(prefix); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		l, err := m.TrainStep(x)
		if err != nil {
			t.Fatal(err)
		}
		if l.Step != first[i].Step {
			t.Errorf("after restore, step %d, want %d", l.Step, first[i].Step)
		}
		if math.Abs(l.Loss-first[i].Loss) > 1e-5*math.Abs(first[i].Loss) {
			t.Errorf("step %d after restore: loss %v, first time %v", l.Step, l.Loss, first[i].Loss)
		}
	}
	if err := m.Restore(filepath.Join(t.TempDir(), "none")); err == nil || !strings.Contains(err.Error(), "none.index") {
		t.Errorf("restore of a missing checkpoint: %v", err)
	}
}

// encode_conv is the map z_mean reads out: z_mean is an affine function of
// its global max pool (least squares over 60 images fits it exactly), and
// not of its mean pool; batches do not change it.
func TestEncodeConvIsThePooledMap(t *testing.T) {
	m, _ := load(t)
	fm := m.Manifest.FeatureMap
	if m.ConvDim() != fm[0]*fm[1]*fm[2] {
		t.Fatalf("ConvDim %d, feature map %v", m.ConvDim(), fm)
	}
	const n = 60
	x := batch(m, n, 7)
	conv, err := m.EncodeConvAll(context.Background(), x, 7)
	if err != nil {
		t.Fatal(err)
	}
	if len(conv) != n*m.ConvDim() {
		t.Fatalf("encode_conv: %d floats, want %d", len(conv), n*m.ConvDim())
	}
	whole, err := m.EncodeConv(x)
	if err != nil {
		t.Fatal(err)
	}
	for i := range whole {
		if math.Abs(float64(whole[i]-conv[i])) > 1e-5 {
			t.Fatalf("value %d: %v in one batch, %v in batches of 7", i, whole[i], conv[i])
		}
	}
	z, err := m.EncodeAll(context.Background(), x, n)
	if err != nil {
		t.Fatal(err)
	}
	// EncodeInto and EncodeConvInto fill a caller's buffer with the same
	// values, batch after batch, and refuse one of the wrong size.
	into := make([]float32, len(conv))
	if err := m.EncodeConvInto(context.Background(), into, x, 7); err != nil {
		t.Fatal(err)
	}
	zInto := make([]float32, len(z))
	if err := m.EncodeInto(context.Background(), zInto, x, 11); err != nil {
		t.Fatal(err)
	}
	for i := range into {
		if into[i] != conv[i] {
			t.Fatalf("EncodeConvInto value %d: %v, EncodeConvAll %v", i, into[i], conv[i])
		}
	}
	for i := range zInto {
		if math.Abs(float64(zInto[i]-z[i])) > 1e-5 {
			t.Fatalf("EncodeInto value %d: %v in batches of 11, %v in one", i, zInto[i], z[i])
		}
	}
	if err := m.EncodeInto(context.Background(), zInto[1:], x, 11); err == nil || !strings.Contains(err.Error(), "destination") {
		t.Errorf("a destination one value short: %v", err)
	}
	c, d := fm[2], m.Manifest.FeatureDim
	fit := func(pool func(vals []float32) float64) float64 {
		a := mat.NewDense(n, c+1, nil)
		for i := range n {
			row := conv[i*m.ConvDim() : (i+1)*m.ConvDim()]
			for k := range c {
				var ch []float32
				for p := k; p < len(row); p += c {
					ch = append(ch, row[p])
				}
				a.Set(i, k, pool(ch))
			}
			a.Set(i, c, 1)
		}
		b := mat.NewDense(n, d, nil)
		for i := range n {
			for j := range d {
				b.Set(i, j, float64(z[i*d+j]))
			}
		}
		var coef, pred mat.Dense
		if err := coef.Solve(a, b); err != nil {
			t.Fatal(err)
		}
		pred.Mul(a, &coef)
		pred.Sub(&pred, b)
		return mat.Norm(&pred, math.Inf(1)) / mat.Norm(b, math.Inf(1))
	}
	maxPool := func(v []float32) float64 { return float64(slices.Max(v)) }
	meanPool := func(v []float32) float64 {
		s := 0.0
		for _, x := range v {
			s += float64(x)
		}
		return s / float64(len(v))
	}
	rMax, rMean := fit(maxPool), fit(meanPool)
	t.Logf("relative residual of z_mean: %.2g from the max-pooled map, %.2g from the mean-pooled", rMax, rMean)
	if r := rMax; r > 1e-4 {
		t.Errorf("z_mean from the max-pooled map: relative residual %.2g", r)
	}
	if r := rMean; r < 1e-2 {
		t.Errorf("z_mean from the mean-pooled map fits too (relative residual %.2g): the check cannot tell maps apart", r)
	}
}

// A manifest without encode_conv (an export from before it) loads and
// encodes; EncodeConv says what is missing.
func TestNoEncodeConv(t *testing.T) {
	_, dir := load(t)
	old := t.TempDir()
	if err := os.CopyFS(old, os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}
	man, err := graph.ReadManifest(old)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(old, graph.ManifestFile))
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	delete(doc["signatures"].(map[string]any), "encode_conv")
	raw, _ = json.Marshal(doc)
	if err := os.WriteFile(filepath.Join(old, graph.ManifestFile), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := graph.Load(old, graph.Options{ConfigHash: man.ConfigHash, IntraOpThreads: 2, InterOpThreads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	x := batch(m, 2, 3)
	if _, err := m.Encode(x); err != nil {
		t.Fatal(err)
	}
	if _, err := m.EncodeConv(x); !errors.Is(err, graph.ErrNoConv) || m.ConvDim() != 0 {
		t.Errorf("EncodeConv without the signature: %v (ConvDim %d)", err, m.ConvDim())
	}
	for _, n := range []int{0, 2} { // no images too: the signature is missing all the same
		if _, err := m.EncodeConvAll(context.Background(), x[:n*m.Manifest.ImageBytes()], 1); !errors.Is(err, graph.ErrNoConv) {
			t.Errorf("EncodeConvAll of %d images without the signature: %v", n, err)
		}
	}
}
