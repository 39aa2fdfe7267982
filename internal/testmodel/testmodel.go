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

	"github.com/infomax/infomax/config"
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
	root, err := pyexport.Root()
	if err != nil {
		t.Fatal(err)
	}
	_, hash := cfg.SpecJSON()
	key := sha256.New()
	key.Write([]byte(hash))
	srcs, _ := filepath.Glob(filepath.Join(root, "pyexport", "*.py"))
	sort.Strings(srcs)
	for _, p := range srcs {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		key.Write(b)
	}
	cache := filepath.Join(os.TempDir(), "infomax-testmodels")
	if err := os.MkdirAll(cache, 0o755); err != nil {
		t.Fatal(err)
	}
	lock, err := os.OpenFile(filepath.Join(cache, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)

	dir := filepath.Join(cache, hex.EncodeToString(key.Sum(nil))[:16])
	if fresh, err := pyexport.Fresh(cfg, dir); err == nil && fresh {
		return dir
	}
	if err := pyexport.Export(context.Background(), cfg, dir, io.Discard, os.Stderr); err != nil {
		t.Fatal(err)
	}
	return dir
}
