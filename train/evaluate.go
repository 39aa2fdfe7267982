package train

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/infomax/infomax/data"
	"github.com/infomax/infomax/eval"
	"github.com/infomax/infomax/internal/runload"
	"github.com/infomax/infomax/pyexport"
)

// evaluate encodes the run's labelled splits with its model and hands the
// features to eval.Evaluate, which computes and writes every figure.
func (r *run) evaluate(ctx context.Context, step int64, out io.Writer) (*eval.Report, error) {
	train, test := r.splits.Train.Labelled(), r.splits.Test.Labelled()
	if train.Len() == 0 || test.Len() == 0 {
		fmt.Fprintf(out, "evaluation skipped: it needs labelled training and test images (%d and %d here)\n", train.Len(), test.Len())
		return nil, nil
	}
	t0 := time.Now()
	bank, err := r.encode(ctx, train)
	if err != nil {
		return nil, err
	}
	queries, err := r.encode(ctx, test)
	if err != nil {
		return nil, err
	}
	encodeSec := time.Since(t0).Seconds()
	cache, err := r.pixelCache()
	if err != nil {
		return nil, err
	}
	e, man := r.cfg.Eval, r.model.Manifest
	rep, err := eval.Evaluate(ctx, eval.Report{
		Run: r.dir, Data: r.cfg.Data.Format, DataPath: r.cfg.Data.Path, Step: step,
		Feature: "z_mean", ConfigHash: r.hash,
		EncodeSec: encodeSec, ImagesPerSec: float64(train.Len()+test.Len()) / encodeSec,
	}, split(train, bank), split(test, queries), eval.Settings{
		Classes: len(train.Classes), K: e.K, WeightedK: e.WeightedK, Temperature: e.Temperature,
		ProbeEpochs: e.ProbeEpochs, ProbeBatch: e.ProbeBatchSize, Seed: r.cfg.Seed,
		GridRows: e.GridRows, GridNeighbours: e.GridNeighbours,
		PixelScale: float32(man.Input.Scale), PixelOffset: float32(man.Input.Offset),
		Dir: r.dir, PixelCache: cache,
		ProbeGraph: func(ctx context.Context, dim, classes int) (string, error) {
			return pyexport.ExportProbe(ctx, dim, classes, r.out)
		},
	})
	if errors.Is(err, context.Canceled) {
		return nil, fmt.Errorf("evaluation stopped (the final checkpoint is written): %w", ErrInterrupted)
	}
	if err != nil {
		return nil, err
	}
	rep.Print(out, r.dir)
	return rep, nil
}

func split(s *data.Set, f eval.Features) eval.Split {
	return eval.Split{Features: f, Labels: s.Labels, Images: s.Images, H: s.H, W: s.W, C: s.C}
}

// encode returns z_mean for every image of a split; Ctrl-C stops it.
func (r *run) encode(ctx context.Context, s *data.Set) (eval.Features, error) {
	z, err := r.model.EncodeAll(ctx, s.Images, r.cfg.Eval.BatchSize)
	if errors.Is(err, context.Canceled) {
		return eval.Features{}, fmt.Errorf("evaluation stopped (the final checkpoint is written): %w", ErrInterrupted)
	}
	if err != nil {
		return eval.Features{}, fmt.Errorf("encode %s: %w", s.Source, err)
	}
	return eval.Features{Dim: r.model.Manifest.FeatureDim, Data: z}, nil
}

// pixelCache names the file that keeps this data set's raw-pixel figures,
// beside the decoded data: they depend on the data, the eval settings, the
// seed, the input scaling and the probe's code only ("" when the cache is
// off).
func (r *run) pixelCache() (string, error) {
	o, err := dataOptions(&r.cfg.Config, r.model.Manifest)
	if err != nil || o.CacheDir == "" {
		return "", err
	}
	key, err := data.CacheKey(o)
	if err != nil {
		return "", err
	}
	// The probe's folder name carries the hash of its code and settings, so
	// a change to pyexport/probe.py recomputes the figures.
	root, err := pyexport.Root()
	if err != nil {
		return "", err
	}
	probe, err := pyexport.ProbeDir(root, r.splits.Train.ImageBytes(), len(r.splits.Train.Classes))
	if err != nil {
		return "", err
	}
	settings, _ := json.Marshal(struct {
		E       any
		Seed    int64
		Scaling string
		Probe   string
	}{r.cfg.Eval, r.cfg.Seed, r.model.Manifest.Input.Scaling, filepath.Base(probe)})
	sum := sha256.Sum256(append([]byte(key), settings...))
	return filepath.Join(o.CacheDir, "pixels-"+hex.EncodeToString(sum[:])[:24]+".json"), nil
}

// EvaluateRun loads a run folder's config, model and latest checkpoint and
// evaluates it (`runner eval`).
func EvaluateRun(ctx context.Context, dir string, out io.Writer) (*eval.Report, error) {
	opened, err := runload.Open(dir)
	if err != nil {
		return nil, err
	}
	defer opened.Model.Close()
	cfg := opened.Config
	if err := cfg.CheckData(); err != nil {
		return nil, err
	}
	r := &run{cfg: cfg, dir: dir, hash: opened.Hash, out: out, ckpts: opened.Checkpoints, model: opened.Model}
	if r.splits, err = loadData(&cfg.Config, r.model.Manifest, out); err != nil {
		return nil, err
	}
	return r.evaluate(ctx, opened.State.Step, out)
}
