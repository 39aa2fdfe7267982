package train

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"time"

	"github.com/infomax/infomax/checkpoint"
	"github.com/infomax/infomax/data"
	"github.com/infomax/infomax/eval"
	"github.com/infomax/infomax/internal/runload"
	"github.com/infomax/infomax/pyexport"
	"github.com/infomax/infomax/tboard"
)

// labelled encodes the run's labelled splits (the kNN bank and the test
// split) with its model; ok is false (and a line says why) when a split has
// no labelled images.
func (r *run) labelled(ctx context.Context, out io.Writer) (train, test eval.Split, classes []string, ok bool, err error) {
	if r.streams != nil {
		classes = r.streams.Train.Classes
		train, test, err = r.encodeStreams(ctx, out)
		return train, test, classes, err == nil && len(train.Labels) > 0 && len(test.Labels) > 0, err
	}
	tr, te := r.splits.Train.Labelled(), r.splits.Test.Labelled()
	if tr.Len() == 0 || te.Len() == 0 {
		fmt.Fprintf(out, "evaluation skipped: it needs labelled training and test images (%d and %d here)\n", tr.Len(), te.Len())
		return train, test, nil, false, nil
	}
	bank, err := r.encode(ctx, tr)
	if err != nil {
		return train, test, nil, false, err
	}
	queries, err := r.encode(ctx, te)
	if err != nil {
		return train, test, nil, false, err
	}
	return split(tr, bank), split(te, queries), tr.Classes, true, nil
}

// evaluate encodes the run's labelled splits with its model and hands the
// features to eval.Evaluate, which computes and writes every figure.
func (r *run) evaluate(ctx context.Context, step int64, out io.Writer) (*eval.Report, error) {
	t0 := time.Now()
	train, test, classes, ok, err := r.labelled(ctx, out)
	if err != nil || !ok {
		return nil, err
	}
	encodeSec := time.Since(t0).Seconds()
	cache, err := r.pixelCache()
	if err != nil {
		return nil, err
	}
	images, _ := r.trainingImages()
	curve, err := readCurve(r.dir, step)
	if err != nil {
		return nil, err
	}
	e, man := r.cfg.Eval, r.model.Manifest
	rep, err := eval.Evaluate(ctx, eval.Report{
		Run: r.dir, Data: r.cfg.Data.Format, DataPath: r.cfg.Data.Path, Step: step,
		Epoch: float64(step) / float64(max(1, images/r.cfg.Train.BatchSize)), KNNCurve: curve,
		Feature: "z_mean", ConfigHash: r.hash,
		EncodeSec: encodeSec, ImagesPerSec: float64(len(train.Labels)+len(test.Labels)) / encodeSec,
	}, train, test, eval.Settings{
		Classes: len(classes), ClassNames: classes, ProjectorImages: e.ProjectorImages, K: e.K, WeightedK: e.WeightedK, Temperature: e.Temperature,
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
	if p, err := plotCurve(r.dir, rep.KNNCurve); err != nil || p != "" {
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(out, "kNN curve (%d points, the last this evaluation's): %s\n", len(rep.KNNCurve), p)
	}
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

// labelledIDs are the indices of the labelled images among labels.
func labelledIDs(labels []int) []int32 {
	var ids []int32
	for i, l := range labels {
		if l != data.Unlabelled {
			ids = append(ids, int32(i))
		}
	}
	return ids
}

// encodeStreams encodes the labelled images of both streamed splits in one
// pass each, keeping only their features (a streamed evaluation holds no
// pixels: no raw-pixel baseline; the grids read their few images again).
func (r *run) encodeStreams(ctx context.Context, out io.Writer) (train, test eval.Split, err error) {
	st := r.streams
	trIDs, teIDs := labelledIDs(st.Train.Labels), labelledIDs(st.Test.Labels)
	if len(trIDs) == 0 || len(teIDs) == 0 {
		fmt.Fprintf(out, "evaluation skipped: it needs labelled training and test images (%d and %d here)\n", len(trIDs), len(teIDs))
		return train, test, nil
	}
	if train, err = r.encodeStream(ctx, st.Train, trIDs); err != nil {
		return train, test, err
	}
	test, err = r.encodeStream(ctx, st.Test, teIDs)
	return train, test, err
}

func (r *run) encodeStream(ctx context.Context, s *data.Stream, ids []int32) (eval.Split, error) {
	dim := r.model.Manifest.FeatureDim
	sp := eval.Split{Features: eval.Features{Dim: dim, Data: make([]float32, 0, len(ids)*dim)}, H: s.Shape.H, W: s.Shape.W, C: s.Shape.C}
	var kept []int // the stream's id of each encoded image (bad ones are left out)
	err := s.Each(ctx, ids, r.cfg.Eval.BatchSize, func(px []byte, got []int) error {
		z, err := r.model.Encode(px)
		if err != nil {
			return err
		}
		sp.Features.Data = append(sp.Features.Data, z...)
		for _, id := range got {
			sp.Labels = append(sp.Labels, s.Labels[id])
		}
		kept = append(kept, got...)
		return nil
	})
	if errors.Is(err, context.Canceled) {
		return sp, fmt.Errorf("evaluation stopped (the final checkpoint is written): %w", ErrInterrupted)
	}
	if err != nil {
		return sp, fmt.Errorf("encode %s: %w", s.Source, err)
	}
	sp.Fetch = func(idx []int) (map[int][]byte, error) {
		ids := make([]int, len(idx))
		for i, j := range idx {
			ids[i] = kept[j]
		}
		imgs, err := s.Images(ctx, ids)
		out := map[int][]byte{}
		for i, j := range idx {
			if px, ok := imgs[ids[i]]; ok {
				out[j] = px
			}
		}
		return out, err
	}
	return sp, nil
}

// pixelCache names the file that keeps this data set's raw-pixel figures,
// beside the decoded data: they depend on the data, the eval settings, the
// seed, the input scaling and the probe's code only ("" when the cache is
// off).
func (r *run) pixelCache() (string, error) {
	o, err := dataOptions(&r.cfg.Config, r.model.Manifest)
	if err != nil || o.CacheDir == "" || r.streams != nil {
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
// evaluates it (`runner eval`). With curveEvery > 0 it first measures the kNN
// monitor's point for each kept checkpoint at the end of every curveEvery-th
// epoch that metrics.jsonl lacks (a run trained without the monitor, or
// with it less often), logging them as the monitor does.
func EvaluateRun(ctx context.Context, dir string, curveEvery int, out io.Writer) (*eval.Report, error) {
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
	if err := r.loadData(out); err != nil {
		return nil, err
	}
	if curveEvery > 0 {
		if err := r.curveFromCheckpoints(ctx, opened.State, curveEvery); err != nil {
			return nil, err
		}
	}
	return r.evaluate(ctx, opened.State.Step, out)
}

// curveFromCheckpoints measures the monitor's missing points from the kept
// checkpoints, then restores the latest again.
func (r *run) curveFromCheckpoints(ctx context.Context, latest *checkpoint.State, every int) error {
	if tr, te := r.labelledCounts(); tr == 0 || te == 0 {
		return fmt.Errorf("--curve %d: the kNN curve needs labelled training and test images, and %s has %d and %d: run `runner eval` without --curve",
			every, r.cfg.Data.Path, tr, te)
	}
	images, _ := r.trainingImages()
	perEpoch := int64(max(1, images/r.cfg.Train.BatchSize))
	have, err := readCurve(r.dir, latest.Step)
	if err != nil {
		return err
	}
	done := map[int64]bool{}
	for _, p := range have {
		done[p.Step] = true
	}
	var todo []int64
	for _, prefix := range latest.Kept {
		var step int64
		if _, err := fmt.Sscanf(prefix, "ckpt-%d", &step); err != nil {
			return fmt.Errorf("%s: checkpoint %q: %w", r.ckpts.Path, prefix, err)
		}
		if step > 0 && step%perEpoch == 0 && (step/perEpoch)%int64(every) == 0 && !done[step] && step != latest.Step {
			todo = append(todo, step)
		}
	}
	if len(todo) == 0 {
		fmt.Fprintf(r.out, "kNN curve: no kept checkpoint at the end of every %d epochs lacks its point\n", every)
		return nil
	}
	metrics, err := openMetrics(r.dir, math.MaxInt64)
	if err != nil {
		return err
	}
	defer metrics.Close()
	if r.tb, err = tboard.NewWriter(r.dir); err != nil {
		return fmt.Errorf("TensorBoard events: %w", err)
	}
	defer r.tb.Close()
	l := &stepLog{r: r, metrics: metrics, prog: newProgress(r.out, 0, 0)}
	for _, step := range todo {
		if err := r.model.Restore(r.ckpts.PrefixPath(fmt.Sprintf("ckpt-%06d", step))); err != nil {
			return err
		}
		p, err := r.monitor(ctx, step, perEpoch)
		if err != nil {
			return err
		}
		if err := l.logPoint(p); err != nil {
			return err
		}
	}
	return r.model.Restore(r.ckpts.PrefixPath(latest.Prefix))
}
