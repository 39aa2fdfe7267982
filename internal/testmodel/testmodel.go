// Package testmodel exports small InfoMax SavedModels for tests, once per
// spec: exports are cached under the system temp folder, keyed by the spec
// hash and a hash of the exporter's Python sources, and guarded by a file lock
// so that test binaries running in parallel share them.
package testmodel

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"sort"
	"syscall"
	"testing"

	"github.com/infomax/infomax/checkpoint"
	"github.com/infomax/infomax/config"
	"github.com/infomax/infomax/graph"
	"github.com/infomax/infomax/pyexport"
)

// Config is a small model on Fashion-MNIST's 28×28×1 input with the seed's
// losses: z_dim 16 keeps a step in milliseconds.
func Config() *config.Config {
	c := config.Defaults()
	c.Name = "test"
	c.Model.ZDim = 16
	c.Seed = 3
	return &c
}

// Export returns the folder of a SavedModel exported from cfg.
func Export(t testing.TB, cfg *config.Config) string {
	t.Helper()
	dir, err := ExportDir(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// ExportDir is Export for code without a testing.TB (Example functions).
func ExportDir(cfg *config.Config) (string, error) {
	root, err := pyexport.Root()
	if err != nil {
		return "", err
	}
	_, hash := cfg.SpecJSON()
	key := sha256.New()
	key.Write([]byte(hash))
	srcs, _ := filepath.Glob(filepath.Join(root, "pyexport", "*.py"))
	sort.Strings(srcs)
	for _, p := range srcs {
		b, err := os.ReadFile(p)
		if err != nil {
			return "", err
		}
		key.Write(b)
	}
	cache := filepath.Join(os.TempDir(), "infomax-testmodels")
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return "", err
	}
	lock, err := os.OpenFile(filepath.Join(cache, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", err
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)

	dir := filepath.Join(cache, hex.EncodeToString(key.Sum(nil))[:16])
	if fresh, err := pyexport.Fresh(cfg, dir); err == nil && fresh {
		return dir, nil
	}
	if err := pyexport.Export(context.Background(), cfg, dir, io.Discard, os.Stderr); err != nil {
		return "", err
	}
	return dir, nil
}

// Run makes a run folder for the test model with an untrained checkpoint
// (step 0) in dir: enough for code that loads a trained run.
func Run(dir string) (string, error) {
	cfg := Config()
	exportDir, err := ExportDir(cfg)
	if err != nil {
		return "", err
	}
	cfg.ExportDir = exportDir
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, "config.yaml"), cfg.YAML(), 0o644); err != nil {
		return "", err
	}
	_, hash := cfg.SpecJSON()
	m, err := graph.Load(exportDir, graph.Options{ConfigHash: hash})
	if err != nil {
		return "", err
	}
	defer m.Close()
	_, err = checkpoint.Dir{Path: filepath.Join(dir, "checkpoints"), Keep: 1}.Save(m, checkpoint.State{ConfigHash: hash})
	return dir, err
}

// Python is the project's Python (the .venv that `make setup` makes), for
// tests that check Go's output with NumPy or TensorFlow.
func Python(t testing.TB) string {
	t.Helper()
	root, err := pyexport.Root()
	if err != nil {
		t.Fatal(err)
	}
	py, err := pyexport.Python(root)
	if err != nil {
		t.Fatal(err)
	}
	return py
}
