package config

import (
	"github.com/infomax/infomax/internal/store"

	_ "embed"
	"encoding/json"
	"fmt"
	"os"
	"slices"

	"github.com/infomax/infomax/data"
)

// schema.json holds the allowed values of the spec's keys, as the exporter
// knows them (pyexport/spec.py and model.OBJECTIVES write it: `python -m
// pyexport.schema`; a pytest checks it is current). Go reads them here and
// types none of them.
//
//go:embed schema.json
var schemaJSON []byte

var (
	scalings, pairings, objectives, twoView, batchNorms, precisions = readSchema()
	formats                                                         = data.Formats
)

func readSchema() (scalings, pairings, objectives, twoView, batchNorms, precisions []string) {
	var s struct {
		Scalings       []string `json:"scalings"`
		GlobalPairings []string `json:"global_pairings"`
		Objectives     []string `json:"objectives"`
		TwoView        []string `json:"two_view_objectives"`
		BatchNorms     []string `json:"batch_norms"`
		Precisions     []string `json:"precisions"`
	}
	if err := json.Unmarshal(schemaJSON, &s); err != nil || len(s.Scalings) == 0 || len(s.GlobalPairings) == 0 || len(s.Objectives) == 0 ||
		len(s.BatchNorms) == 0 || len(s.Precisions) == 0 {
		panic(fmt.Sprintf("config/schema.json (embedded) is not the exporter's schema: %v; run `python -m pyexport.schema`", err))
	}
	return s.Scalings, s.GlobalPairings, s.Objectives, s.TwoView, s.BatchNorms, s.Precisions
}

// Validate refuses values no run can use, naming the key, the value and why.
func (c *Config) Validate() error {
	type check struct {
		key    string
		value  any
		ok     bool
		reason string
	}
	m, t := c.Model, c.Train
	checks := []check{
		{"name", c.Name, c.Name != "", "a run needs a name (set name: or pass a config file)"},
		{"data.format", c.Data.Format, oneOf(c.Data.Format, formats), fmt.Sprintf("must be one of %v", formats)},
		{"data.test_fraction", c.Data.TestFraction, c.Data.TestFraction >= 0 && c.Data.TestFraction < 1, "must be in [0, 1)"},
		{"data.shuffle_buffer", c.Data.ShuffleBuffer, c.Data.ShuffleBuffer >= 1, "must be at least 1 (1: no shuffle buffer)"},
		{"data.max_image_pixels", c.Data.MaxImagePixels, c.Data.MaxImagePixels >= 1, "must be at least 1"},
		{"data.max_image_side", c.Data.MaxImageSide, c.Data.MaxImageSide >= 1, "must be at least 1"},
		{"data.max_file_mib", c.Data.MaxFileMiB, c.Data.MaxFileMiB >= 1 && c.Data.MaxFileMiB <= 1<<20, "must be from 1 to 1048576 (1 TiB)"},
		{"data.max_inflate_ratio", c.Data.MaxInflateRatio, c.Data.MaxInflateRatio >= 1, "must be at least 1"},
		{"model.image_size", m.ImageSize, m.ImageSize >= 8, "must be at least 8 pixels"},
		{"model.channels", m.Channels, m.Channels == 1 || m.Channels == 3, "must be 1 (grey) or 3 (RGB)"},
		{"model.blocks", m.Blocks, m.Blocks >= 1 && m.ImageSize>>m.Blocks >= 1, "must be at least 1 and leave a map of at least 1×1 pixel after halving image_size that often"},
		{"model.z_dim", m.ZDim, m.ZDim > 0, "must be positive"},
		{"model.scaling", m.Scaling, oneOf(m.Scaling, scalings), fmt.Sprintf("must be one of %v", scalings)},
		{"model.global_pairing", m.GlobalPairing, oneOf(m.GlobalPairing, pairings), fmt.Sprintf("must be one of %v", pairings)},
		{"model.augment_pad", m.AugmentPad, m.AugmentPad >= 0, "must be >= 0"},
		{"model.crop_min_area", m.CropMinArea, m.CropMinArea >= 0 && m.CropMinArea <= 1, "must be in [0, 1] (0: no crop)"},
		{"model.crop_min_area", m.CropMinArea, m.CropMinArea == 0 || oneOf(c.Loss.Objective, twoView),
			fmt.Sprintf("crops the views of a two-view objective (%v), and loss.objective is %s: set model.crop_min_area: 0", twoView, c.Loss.Objective)},
		{"model.augment_pad", m.AugmentPad, m.CropMinArea == 0 || m.AugmentPad == 0,
			"model.crop_min_area replaces the translation: set model.augment_pad: 0 (or model.crop_min_area: 0 for the translation)"},
		{"model.batch_norm", m.BatchNorm, oneOf(m.BatchNorm, batchNorms), fmt.Sprintf("must be one of %v", batchNorms)},
		{"model.precision", m.Precision, m.Precision == PrecisionAuto || oneOf(m.Precision, precisions), fmt.Sprintf("must be one of %v or %s", precisions, PrecisionAuto)},
		{"loss.objective", c.Loss.Objective, oneOf(c.Loss.Objective, objectives), fmt.Sprintf("unknown objective: known are %v", objectives)},
		{"model.augment", m.Augment, !m.Augment || !oneOf(c.Loss.Objective, twoView),
			fmt.Sprintf("loss.objective %s augments its two views itself (model.augment_pad, model.color_jitter): set model.augment: false", c.Loss.Objective)},
		{"data.path", c.Data.Path, !store.IsURL(c.Data.Path) || c.Data.Format == "shards" && c.Data.Streaming,
			"an object store is read by streaming the sharded layout: set data.format: shards and data.streaming: true (write the layout with `runner data shards`)"},
		{"loss.temperature", c.Loss.Temperature, c.Loss.Temperature > 0, "must be > 0"},
		{"loss.head_dim", c.Loss.HeadDim, c.Loss.HeadDim >= 1, "must be at least 1"},
		{"loss.local_scales", c.Loss.LocalScales, c.Loss.LocalScales == 1 || c.Loss.LocalScales == 2,
			"must be 1 (the map C) or 2 (C and the map of the block before it)"},
		{"loss.local_scales", c.Loss.LocalScales, c.Loss.LocalScales != 2 || oneOf(c.Loss.Objective, twoView),
			fmt.Sprintf("adds a second map to a two-view objective's contrast (%v), and loss.objective is %s: set loss.local_scales: 1", twoView, c.Loss.Objective)},
		{"loss.local_scales", c.Loss.LocalScales, c.Loss.LocalScales != 2 || m.Blocks >= 2,
			fmt.Sprintf("needs the map of the block before the last, and model.blocks is %d: use at least 2 blocks or loss.local_scales: 1", m.Blocks)},
		{"loss.alpha", c.Loss.Alpha, c.Loss.Alpha >= 0, "must be >= 0"},
		{"loss.beta", c.Loss.Beta, c.Loss.Beta >= 0, "must be >= 0"},
		{"loss.gamma", c.Loss.Gamma, c.Loss.Gamma >= 0, "must be >= 0"},
		{"optimizer.learning_rate", c.Optimizer.LearningRate, c.Optimizer.LearningRate > 0, "must be > 0"},
		{"train.batch_size", t.BatchSize, t.BatchSize >= 2, "must be at least 2: the negatives are the batch shuffled"},
		{"train.epochs", t.Epochs, t.Epochs >= 1, "must be at least 1"},
		{"train.log_every", t.LogEvery, t.LogEvery >= 1, "must be at least 1"},
		{"train.checkpoint_every", t.CheckpointEvery, t.CheckpointEvery >= 1, "must be at least 1"},
		{"train.keep_checkpoints", t.KeepCheckpoints, t.KeepCheckpoints >= 1, "must be at least 1"},
		{"device", c.Device, oneOf(c.Device, []string{"auto", "cpu", "gpu"}), "must be auto, cpu or gpu"},
		{"train.on_nonfinite", t.OnNonFinite, oneOf(t.OnNonFinite, []string{"stop", "rollback"}), "must be stop or rollback"},
		{"train.lr_schedule", t.LRSchedule, oneOf(t.LRSchedule, []string{"constant", "cosine"}), "must be constant or cosine"},
		{"train.lr_backoff", t.LRBackoff, t.LRBackoff > 0 && t.LRBackoff < 1, "must be in (0, 1)"},
		{"train.max_rollbacks", t.MaxRollbacks, t.MaxRollbacks >= 0, "must be >= 0"},
		{"train.force_nonfinite_at", t.ForceNonFiniteAt, t.ForceNonFiniteAt >= 0, "must be >= 0 (0: never)"},
		{"train.intra_op_threads", t.IntraOpThreads, t.IntraOpThreads >= 0, "must be >= 0 (0: all cores)"},
		{"train.inter_op_threads", t.InterOpThreads, t.InterOpThreads >= 0, "must be >= 0 (0: TensorFlow's choice)"},
		{"eval.k", c.Eval.K, c.Eval.K >= 1, "must be at least 1"},
		{"eval.weighted_k", c.Eval.WeightedK, c.Eval.WeightedK >= 1, "must be at least 1"},
		{"eval.temperature", c.Eval.Temperature, c.Eval.Temperature > 0, "must be > 0"},
		{"eval.batch_size", c.Eval.BatchSize, c.Eval.BatchSize >= 1, "must be at least 1"},
		{"eval.probe_epochs", c.Eval.ProbeEpochs, c.Eval.ProbeEpochs >= 0, "must be >= 0 (0: no linear probe)"},
		{"eval.mlp_probe_epochs", c.Eval.MLPProbeEpochs, c.Eval.MLPProbeEpochs >= 0, "must be >= 0 (0: no MLP probe)"},
		{"eval.probe_batch_size", c.Eval.ProbeBatchSize, c.Eval.ProbeBatchSize >= 1, "must be at least 1"},
		{"eval.grid_rows", c.Eval.GridRows, c.Eval.GridRows >= 0, "must be >= 0 (0: no grids)"},
		{"eval.grid_neighbours", c.Eval.GridNeighbours, c.Eval.GridNeighbours >= 1, "must be at least 1"},
		{"eval.raw_pixel_mib", c.Eval.RawPixelMiB, c.Eval.RawPixelMiB >= 1, "must be at least 1"},
		{"eval.every_epochs", c.Eval.EveryEpochs, c.Eval.EveryEpochs >= 0, "must be >= 0 (0: no kNN monitor during training)"},
		{"eval.projector_images", c.Eval.ProjectorImages, c.Eval.ProjectorImages >= 0 && c.Eval.ProjectorImages <= MaxProjectorImages,
			fmt.Sprintf("must be in [0, %d] (0: no projector files; the sprite holds at most %d thumbnails)", MaxProjectorImages, MaxProjectorImages)},
	}
	for _, ch := range checks {
		if !ch.ok {
			return fmt.Errorf("%s = %v: %s", ch.key, ch.value, ch.reason)
		}
	}
	return nil
}

// MaxProjectorImages bounds eval.projector_images: TensorBoard's projector
// draws sprites of at most 8192×8192 pixels, 10,000 thumbnails of 81×81 at most.
const MaxProjectorImages = 10000

// CheckData refuses a data path that does not exist. It is separate from
// Validate because exporting a model needs no data.
func (c *Config) CheckData() error {
	if store.IsURL(c.Data.Path) {
		return nil // its shards.json is read, and checked, when the data opens
	}
	if _, err := os.Stat(c.Data.Path); err != nil {
		return fmt.Errorf("data.path = %s: %w (for Fashion-MNIST run `make setup`; otherwise point data.path at the data set's folder)", c.Data.Path, err)
	}
	return nil
}

func oneOf(s string, list []string) bool { return slices.Contains(list, s) }
