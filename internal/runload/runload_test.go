package runload_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/infomax/infomax/checkpoint"
	"github.com/infomax/infomax/internal/runload"
	"github.com/infomax/infomax/internal/testmodel"
)

func TestOpenRestoresTheLatestCheckpoint(t *testing.T) {
	dir, err := testmodel.Run(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	r, err := runload.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Model.Close()
	if r.State.Step != 0 || r.State.ConfigHash != r.Hash || r.Model.Manifest.ConfigHash != r.Hash {
		t.Fatalf("state %+v, hash %s, manifest %s", r.State, r.Hash, r.Model.Manifest.ConfigHash)
	}
	z, err := r.Model.Encode(make([]byte, 2*28*28))
	if err != nil || len(z) != 2*r.Model.Manifest.FeatureDim {
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
	if err := os.WriteFile(cfgPath, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = runload.Open(dir)
	if err == nil || !strings.Contains(err.Error(), "the checkpoint was trained from spec") || !strings.Contains(err.Error(), dir) {
		t.Fatalf("edited config.yaml: got %v", err)
	}

	if err := os.WriteFile(cfgPath, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(dir, "checkpoints")); err != nil {
		t.Fatal(err)
	}
	if _, err = runload.Open(dir); !errors.Is(err, checkpoint.ErrNone) {
		t.Fatalf("no checkpoints: got %v, want checkpoint.ErrNone", err)
	}
}
