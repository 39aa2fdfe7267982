// Package encoder loads a trained run's encoder for Go programs: images in,
// z_mean features out. It is what a batch job imports; `runner index` and
// `runner search` are thin layers over it and package search.
//
//	enc, err := encoder.Load("runs/fashion_mnist")
//	defer enc.Close()
//	feats, err := enc.EncodeImages(imgs) // []image.Image of any size
package encoder

import (
	"context"
	"fmt"
	"image"

	"github.com/infomax/infomax/data"
	"github.com/infomax/infomax/graph"
	"github.com/infomax/infomax/internal/runload"
)

// Encoder is a trained encoder. Its methods are not safe for concurrent use.
type Encoder struct {
	Run        string     // the run folder
	Step       int64      // the checkpoint's training step
	ConfigHash string     // the manifest's spec hash: which model made the features
	Shape      data.Shape // the input every image is converted to
	// Limits bound what one image file may make EncodeFiles allocate (the
	// run's data.max_* keys); set fields to change them.
	Limits data.Limits
	model  *graph.Model
	batch  int
}

// Load opens the run folder's SavedModel (from its config.yaml) and restores
// its latest checkpoint.
func Load(runDir string) (*Encoder, error) {
	r, err := runload.Open(runDir)
	if err != nil {
		return nil, fmt.Errorf("load encoder: %w", err)
	}
	m := r.Model
	in := m.Manifest.Input.Shape
	return &Encoder{Run: runDir, Step: r.State.Step, ConfigHash: m.Manifest.ConfigHash, Shape: data.Shape{H: in[0], W: in[1], C: in[2]},
		Limits: r.Config.Data.Limits(), model: m, batch: r.Config.Eval.BatchSize}, nil
}

// Dim is the feature size.
func (e *Encoder) Dim() int { return e.model.Manifest.FeatureDim }

// Close releases the TensorFlow session.
func (e *Encoder) Close() error { return e.model.Close() }

// EncodePixels returns the features of packed uint8 images of the encoder's
// Shape (N·H·W·C bytes), row-major [N, Dim()].
func (e *Encoder) EncodePixels(pixels []byte) ([]float32, error) {
	return e.model.EncodeAll(context.Background(), pixels, e.batch)
}

// EncodeImages converts images of any size and colour model to the encoder's
// input (as training data is: resized with an antialiasing filter) and
// returns their features, row-major [len(imgs), Dim()].
func (e *Encoder) EncodeImages(imgs []image.Image) ([]float32, error) {
	per := e.Shape.H * e.Shape.W * e.Shape.C
	pixels := make([]byte, len(imgs)*per)
	for i, img := range imgs {
		data.ImageInto(pixels[i*per:(i+1)*per], img, e.Shape)
	}
	return e.EncodePixels(pixels)
}

// EncodeFiles reads image files (JPEG, PNG, GIF, BMP, WebP; or archive
// members named archive.tar:member) and returns their features, row-major
// [len(paths), Dim()]. Each header is checked against e.Limits before any
// pixel is decoded; the first file that is not an image, is corrupt or is
// over the limits is an error that names it.
func (e *Encoder) EncodeFiles(paths ...string) ([]float32, error) {
	per := e.Shape.H * e.Shape.W * e.Shape.C
	pixels := make([]byte, 0, len(paths)*per)
	for _, p := range paths {
		px, err := data.ReadImage(p, e.Shape, e.Limits)
		if err != nil {
			return nil, fmt.Errorf("encode: %w", err)
		}
		pixels = append(pixels, px...)
	}
	return e.EncodePixels(pixels)
}
