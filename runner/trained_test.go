package main

import (
	"bytes"
	"context"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/infomax/infomax/config"
	"github.com/infomax/infomax/data"
	"github.com/infomax/infomax/encoder"
	"github.com/infomax/infomax/exporter"
	"github.com/infomax/infomax/graph"
	"github.com/infomax/infomax/internal/npy"
	"github.com/infomax/infomax/run"
	"github.com/infomax/infomax/testkit/testmodel"
)

// A run's trained encoder exported on its own (`runner export --run-dir`)
// gives Go's features in plain Python (tf.saved_model.load), in ONNX
// Runtime (pyexport/tests/test_trained.py, run from here with the paths)
// and through package encoder; bad requests are refused in one line.
func TestTrainedEncoderExport(t *testing.T) {
	if testing.Short() {
		t.Skip("trains, exports and runs pytest")
	}
	dir := filepath.Join(t.TempDir(), "run")
	if err := runTrain(context.Background(), trainOptions{ConfigFile: smallRun(t, ""), RunDir: dir, MaxSteps: 20, Flags: flags(t, "--eval.after_training=false")}, new(bytes.Buffer)); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	sm, onnx := filepath.Join(out, "encoder"), filepath.Join(out, "encoder-onnx")
	var log bytes.Buffer
	for _, o := range []trainedOptions{{RunDir: dir, Out: sm, Format: "savedmodel"}, {RunDir: dir, Out: onnx, Format: "onnx"}} {
		if err := runExportTrained(context.Background(), o, &log, &log); err != nil {
			t.Fatalf("export %s: %v\n%s", o.Format, err, log.String())
		}
	}

	// 1,000 Fashion-MNIST test images through Go's encoder of the run.
	full, err := data.LoadFashionMNIST(config.Defaults().Data.Path)
	if err != nil {
		t.Fatalf("Fashion-MNIST is needed for this test (run `make setup`): %v", err)
	}
	const n = 1000
	px := full.Test.Images[:n*full.Test.ImageBytes()]
	encode := func(from string) []float32 {
		enc, err := encoder.Load(t.Context(), from)
		if err != nil {
			t.Fatal(err)
		}
		defer enc.Close()
		z, err := enc.EncodePixels(t.Context(), px, n)
		if err != nil {
			t.Fatal(err)
		}
		return z
	}
	want, exported := encode(dir), encode(sm)
	if d := maxAbsDiff(want, exported); d > 1e-5 {
		t.Errorf("Go's encoder on the export: features differ from the run's by up to %g", d)
	}
	// The export's encode_conv is the run's last convolutional map (the
	// training model with the checkpoint restored, as eval's MLP probe reads it).
	r, err := run.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	opts := graph.Options{IntraOpThreads: 2, InterOpThreads: 1}
	rm, err := r.LoadModel(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer rm.Close()
	em, err := graph.Load(sm, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer em.Close()
	if em.ConvDim() == 0 || em.ConvDim() != rm.ConvDim() {
		t.Fatalf("the export's ConvDim %d, the run's %d", em.ConvDim(), rm.ConvDim())
	}
	some := px[:100*full.Test.ImageBytes()]
	wantConv, err := rm.EncodeConv(some)
	if err != nil {
		t.Fatal(err)
	}
	gotConv, err := em.EncodeConv(some)
	if err != nil {
		t.Fatal(err)
	}
	if d := maxAbsDiff(wantConv, gotConv); d > 1e-5 {
		t.Errorf("the export's encode_conv differs from the run's by up to %g", d)
	}
	images, features := filepath.Join(out, "images.npy"), filepath.Join(out, "features.npy")
	if err := npy.Write(images, px, n, 28, 28, 1); err != nil {
		t.Fatal(err)
	}
	if err := npy.Write(features, want, n, len(want)/n); err != nil {
		t.Fatal(err)
	}
	root, err := exporter.Root()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(testmodel.Python(t), "-m", "pytest", "-q", "-rs", "pyexport/tests/test_trained.py")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "INFOMAX_TRAINED_SAVEDMODEL="+sm, "INFOMAX_TRAINED_ONNX="+onnx,
		"INFOMAX_TRAINED_IMAGES="+images, "INFOMAX_TRAINED_FEATURES="+features, "TF_CPP_MIN_LOG_LEVEL=2")
	res, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(res), "3 passed") {
		t.Fatalf("pytest of the exports: %v\n%s", err, res)
	}

	// Refusals, one line each.
	notExport := t.TempDir()
	os.WriteFile(filepath.Join(notExport, "notes.txt"), []byte("mine"), 0o644)
	noCheckpoint := filepath.Join(t.TempDir(), "fresh")
	os.MkdirAll(noCheckpoint, 0o755)
	os.WriteFile(filepath.Join(noCheckpoint, "config.yaml"), mustRead(t, filepath.Join(dir, "config.yaml")), 0o644)
	for _, c := range []struct {
		o    trainedOptions
		want string
	}{
		{trainedOptions{RunDir: dir, Out: notExport, Format: "savedmodel"}, "is not a trained encoder's export"},
		{trainedOptions{RunDir: noCheckpoint, Out: filepath.Join(out, "x"), Format: "savedmodel"}, "no checkpoint yet"},
		{trainedOptions{RunDir: dir, Out: filepath.Join(out, "x"), Format: "savedmodel", Step: 7}, "has no checkpoint of step 7 (kept: "},
		{trainedOptions{RunDir: dir, Out: filepath.Join(out, "x"), Format: "tflite"}, `--format "tflite": want savedmodel or onnx`},
		{trainedOptions{RunDir: dir, Format: "onnx"}, "pass --out DIR"},
	} {
		err := runExportTrained(context.Background(), c.o, new(bytes.Buffer), new(bytes.Buffer))
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%+v: %v, want one line with %q", c.o, err, c.want)
		}
	}
	if _, err := os.Stat(filepath.Join(notExport, "notes.txt")); err != nil {
		t.Errorf("a refused --out lost its file: %v", err)
	}
	// The export's graph encodes only.
	enc, err := encoder.Load(t.Context(), sm)
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	if enc.Step != 20 {
		t.Errorf("the export's step %d, want 20", enc.Step)
	}
}

func maxAbsDiff(a, b []float32) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	d := 0.0
	for i := range a {
		d = math.Max(d, math.Abs(float64(a[i]-b[i])))
	}
	return d
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}
