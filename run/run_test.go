package run_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/infomax/infomax/config"
	"github.com/infomax/infomax/graph"
	"github.com/infomax/infomax/run"
	"github.com/infomax/infomax/testkit/testmodel"
)

func TestOpenRestoresTheLatestCheckpoint(t *testing.T) {
	dir, err := testmodel.Run(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	r, err := run.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	m, err := r.LoadModel(r.Session())
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if r.State.Step != 0 || r.State.ConfigHash != r.Hash || m.Manifest.ConfigHash != r.Hash || r.ModelPath() != filepath.Join(r.Dir, run.ModelDir) {
		t.Fatalf("state %+v, hash %s, manifest %s, model %s", r.State, r.Hash, m.Manifest.ConfigHash, r.ModelPath())
	}
	z, err := m.Encode(make([]byte, 2*28*28))
	if err != nil || len(z) != 2*m.Manifest.FeatureDim {
		t.Fatalf("encode after restore: %d values, %v", len(z), err)
	}
}

func TestOpenRefusesAnEditedConfigOrNoCheckpoint(t *testing.T) {
	dir, err := testmodel.Run(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "config.yaml")
	raw, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(string(raw), "gamma: 0.01", "gamma: 0.02", 1)
	if edited == string(raw) {
		t.Fatalf("config.yaml has no 'gamma: 0.01' to edit:\n%s", raw)
	}
	os.WriteFile(cfgPath, []byte(edited), 0o644)
	_, err = run.Open(dir)
	if err == nil || !strings.Contains(err.Error(), "the checkpoint was trained from spec") || !strings.Contains(err.Error(), dir) {
		t.Fatalf("edited config.yaml: got %v", err)
	}
	os.WriteFile(cfgPath, raw, 0o644)
	os.RemoveAll(filepath.Join(dir, "checkpoints"))
	if _, err = run.Open(dir); err == nil || !strings.Contains(err.Error(), "no checkpoint yet") || !strings.Contains(err.Error(), "--resume") {
		t.Fatalf("no checkpoints: got %v", err)
	}
	if _, err := run.Open(t.TempDir()); err == nil || !strings.Contains(err.Error(), "is not a run folder") {
		t.Errorf("an empty folder: %v", err)
	}
}

// A run folder of the older layout (no model/; export_dir relative to the
// folder it was trained from) opens where its export_dir leads, and
// elsewhere gets an error naming the command that updates it; upgrade
// copies its model in, after which it opens from anywhere.
func TestOldLayoutOpensOrSaysHowToUpgrade(t *testing.T) {
	tmp := t.TempDir()
	dir, err := testmodel.Run(filepath.Join(tmp, "runs", "old"))
	if err != nil {
		t.Fatal(err)
	}
	// Make it old: the model moved out to exports/old, named relatively.
	if err := os.MkdirAll(filepath.Join(tmp, "exports"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "model"), filepath.Join(tmp, "exports", "old")); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "config.yaml")
	raw, _ := os.ReadFile(cfgPath)
	var kept []string
	for _, line := range strings.Split(string(raw), "\n") {
		if !strings.HasPrefix(line, "export_dir:") {
			kept = append(kept, line)
		}
	}
	os.WriteFile(cfgPath, []byte("export_dir: exports/old\n"+strings.Join(kept, "\n")), 0o644)

	t.Chdir(tmp) // where it was trained: opens
	if r, err := run.Open("runs/old"); err != nil || r.ModelPath() != "exports/old" {
		t.Fatalf("old layout from its project folder: %v", err)
	}
	t.Chdir(t.TempDir()) // elsewhere: says how to upgrade
	_, err = run.Open(dir)
	if err == nil || !strings.Contains(err.Error(), "runner upgrade --run-dir "+dir) {
		t.Fatalf("old layout elsewhere: %v", err)
	}
	if _, err := run.Upgrade(dir, filepath.Join(tmp, "exports", "old")); err != nil {
		t.Fatal(err)
	}
	r, err := run.Open(dir)
	if err != nil || r.ModelPath() != filepath.Join(dir, run.ModelDir) {
		t.Fatalf("after upgrade: %v", err)
	}
	if _, err := run.Upgrade(dir, ""); err == nil || !strings.Contains(err.Error(), "nothing to upgrade") {
		t.Errorf("a second upgrade: %v", err)
	}
}

// Create refuses what would lose or mix runs: a folder with checkpoints
// without --resume, another spec's checkpoints, another spec's model.
func TestCreateRefusesToMixRuns(t *testing.T) {
	dir, err := testmodel.Run(filepath.Join(t.TempDir(), "run"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := &config.Resolved{Config: *testmodel.Config()}
	if _, err := run.Create(dir, cfg, false, new(bytes.Buffer)); err == nil || !strings.Contains(err.Error(), "pass --resume") {
		t.Errorf("a trained folder without --resume: %v", err)
	}
	other := &config.Resolved{Config: *testmodel.Config()}
	other.Loss.Gamma = 0.5
	if _, err := run.Create(dir, other, true, new(bytes.Buffer)); err == nil || !strings.Contains(err.Error(), "another config") {
		t.Errorf("another spec's checkpoints: %v", err)
	}
	fresh, err := run.Create(filepath.Join(t.TempDir(), "fresh"), other, false, new(bytes.Buffer))
	if err != nil {
		t.Fatal(err)
	}
	if err := fresh.InstallModel(testmodel.Export(t, &cfg.Config)); err == nil || !strings.Contains(err.Error(), "exported from spec") {
		t.Errorf("installing another spec's model: %v", err)
	}
	if fresh.HasModel() {
		t.Error("a refused install left a model")
	}
	if _, err := fresh.LoadModel(graph.Options{}); err == nil {
		t.Error("a run without a model loaded one")
	}
}

func TestStepsPerEpoch(t *testing.T) {
	if n, err := run.StepsPerEpoch(640, 32); n != 20 || err != nil {
		t.Errorf("640 images, batch 32: %d, %v", n, err)
	}
	if n, err := run.StepsPerEpoch(655, 32); n != 20 || err != nil {
		t.Errorf("655 images, batch 32 (the partial batch dropped): %d, %v", n, err)
	}
	if _, err := run.StepsPerEpoch(10, 32); err == nil || !strings.Contains(err.Error(), "train.batch_size = 32 is larger than the 10") {
		t.Errorf("10 images, batch 32: %v", err)
	}
}
