package exporter_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/infomax/infomax/config"
	"github.com/infomax/infomax/exporter"
	"github.com/infomax/infomax/graph"
)

// Every shipped config exports, with its local map: the seed's 3×3 for 28-pixel
// Fashion-MNIST (3 blocks) and 4×4 for CIFAR-10 (3 blocks) and Tiny ImageNet
// (4 blocks); the Fashion-MNIST default's 7×7 (2 blocks).
func TestShippedConfigsExport(t *testing.T) {
	root, err := exporter.Root()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]int{
		"fashion_mnist.yaml":           {7, 7, 256},
		"fashion_mnist_seed.yaml":      {3, 3, 256},
		"cifar10.yaml":                 {4, 4, 256},
		"cifar10_local_nce.yaml":       {4, 4, 256},
		"cifar10_seed.yaml":            {4, 4, 256},
		"tiny_imagenet.yaml":           {4, 4, 256},
		"tiny_imagenet_local_nce.yaml": {4, 4, 256},
		"tiny_imagenet_seed.yaml":      {4, 4, 256},
	}
	files, _ := filepath.Glob(filepath.Join(root, "configs", "*.yaml"))
	if len(files) < len(want) {
		t.Fatalf("configs: %v", files)
	}
	for _, f := range files {
		cfg, err := config.Load(f, nil)
		if err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(t.TempDir(), cfg.Name)
		if fresh, _ := exporter.Fresh(&cfg.Config, dir); fresh {
			t.Fatal("an empty folder is fresh")
		}
		if err := exporter.Export(context.Background(), &cfg.Config, dir, io.Discard, os.Stderr); err != nil {
			t.Fatal(err)
		}
		m, err := graph.ReadManifest(dir)
		if err != nil {
			t.Fatal(err)
		}
		if w, ok := want[filepath.Base(f)]; ok && !equal(m.FeatureMap, w) {
			t.Errorf("%s: feature map %v, want %v", f, m.FeatureMap, w)
		}
		if fresh, err := exporter.Fresh(&cfg.Config, dir); !fresh || err != nil {
			t.Errorf("%s: not fresh after export (%v)", f, err)
		}
		cfg.Loss.Gamma *= 2
		if fresh, _ := exporter.Fresh(&cfg.Config, dir); fresh {
			t.Errorf("%s: fresh after a loss weight changed", f)
		}
	}
}

func equal(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestExportRefusesBadSpec(t *testing.T) {
	cfg := config.Defaults()
	cfg.Model.Precision = "float32"
	cfg.Model.Scaling = "wide" // Go's Validate would refuse this; the exporter checks again
	err := exporter.Export(context.Background(), &cfg, filepath.Join(t.TempDir(), "x"), io.Discard, io.Discard)
	if err == nil {
		t.Fatal("exporter accepted model.scaling = wide")
	}
}

// The probe's export folder follows its code and settings: editing
// pyexport/probe.py (or asking for another size) names a new folder.
func TestProbeDirFollowsItsCode(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "pyexport"), 0o755)
	write := func(src string) {
		if err := os.WriteFile(filepath.Join(root, "pyexport", "probe.py"), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	dir := func(dim, classes int, hidden ...int) string {
		d, err := exporter.ProbeDir(root, filepath.Join(root, "pyexport", "probe.py"), dim, classes, append(hidden, 0)[0])
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	write("LEARNING_RATE = 1e-3\n")
	a, b := dir(256, 10), dir(256, 200)
	write("LEARNING_RATE = 2e-3\n")
	c := dir(256, 10)
	if a == b || a == c || !strings.HasPrefix(filepath.Base(a), "probe-256x10-") {
		t.Errorf("probe folders %s, %s (other classes), %s (other code): want three names, probe-256x10-…", a, b, c)
	}
	write("LEARNING_RATE = 1e-3\n")
	if dir(256, 10) != a {
		t.Errorf("the same code and settings named another folder")
	}
	if m := dir(256, 10, 200); m == a || !strings.HasPrefix(filepath.Base(m), "probe-mlp200-256x10-") {
		t.Errorf("the MLP probe's folder %s: want probe-mlp200-256x10-…, not the linear probe's", m)
	}
}
