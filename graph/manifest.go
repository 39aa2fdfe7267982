package graph

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// ManifestFile is the manifest's name inside an export folder.
const ManifestFile = "manifest.json"

// manifestFormat is the manifest layout this package reads (pyexport/export.py FORMAT).
const manifestFormat = 2

// Manifest is what pyexport wrote beside the SavedModel: everything Go needs
// to know about the graph, so Go never repeats a constant the graph holds.
type Manifest struct {
	Format int `json:"format"`
	// Kind is "" for the exporter's training model, KindEncoder for a run's
	// trained encoder exported on its own (`runner export --run-dir`:
	// the checkpoint's weights, the encode and serving_default signatures).
	Kind string `json:"kind,omitempty"`
	// Step is a trained encoder's training step (KindEncoder).
	Step       int64  `json:"step,omitempty"`
	ConfigHash string `json:"config_hash"`
	Input      struct {
		Shape   []int   `json:"shape"` // [H, W, C]
		DType   string  `json:"dtype"`
		Scaling string  `json:"scaling"`
		Scale   float64 `json:"scale"`
		Offset  float64 `json:"offset"`
	} `json:"input"`
	// Precision is what the encoder's convolutions compute in (the spec's
	// model.precision; "": a manifest from before the key, float32).
	Precision         string               `json:"precision,omitempty"`
	FeatureMap        []int                `json:"feature_map"`
	FeatureDim        int                  `json:"feature_dim"`
	LossTerms         []string             `json:"loss_terms"`
	Parameters        int64                `json:"parameters"`
	Tags              []string             `json:"tags"`
	Signatures        map[string]Signature `json:"signatures"`
	TensorFlowVersion string               `json:"tensorflow_version"`
	KerasVersion      string               `json:"keras_version"`
	Spec              json.RawMessage      `json:"spec"`
}

// Signature lists a signature's tensors by key.
type Signature struct {
	Inputs  map[string]TensorInfo `json:"inputs"`
	Outputs map[string]TensorInfo `json:"outputs"`
}

// TensorInfo is one tensor of a signature; -1 in Shape is any size.
type TensorInfo struct {
	Name  string  `json:"name"`
	DType string  `json:"dtype"`
	Shape []int64 `json:"shape"`
}

// KindEncoder is the manifest kind of a trained encoder exported on its own.
const KindEncoder = "encoder"

// ErrNoExport means the folder holds no SavedModel with a manifest.
var ErrNoExport = errors.New("no exported model")

// ErrStale means the SavedModel was exported from another config.
var ErrStale = errors.New("exported from another config")

// ReadManifest reads and checks DIR/manifest.json.
func ReadManifest(dir string) (*Manifest, error) {
	path := filepath.Join(dir, ManifestFile)
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", path, ErrNoExport)
	}
	if err != nil {
		return nil, err
	}
	var m Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("%s: not a manifest: %w", path, err)
	}
	if m.Format != manifestFormat {
		return nil, fmt.Errorf("%s: manifest format %d, this build reads %d: %w", path, m.Format, manifestFormat, ErrStale)
	}
	if len(m.Input.Shape) != 3 || m.Input.DType != "uint8" {
		return nil, fmt.Errorf("%s: input %v %s: want a uint8 [H, W, C] input", path, m.Input.Shape, m.Input.DType)
	}
	want := []string{sigTrain, sigTrainNoise, sigEncode, sigSetLR}
	switch m.Kind {
	case "":
	case KindEncoder:
		want = []string{sigEncode}
	default:
		return nil, fmt.Errorf("%s: kind %q: this build reads training models and %q exports", path, m.Kind, KindEncoder)
	}
	for _, name := range want {
		if _, ok := m.Signatures[name]; !ok {
			return nil, fmt.Errorf("%s: no %q signature", path, name)
		}
	}
	return &m, nil
}

// ImageBytes is the size of one uint8 image of the model's input.
func (m *Manifest) ImageBytes() int {
	return m.Input.Shape[0] * m.Input.Shape[1] * m.Input.Shape[2]
}
