// Package runeval evaluates a run folder, or features embedded from one.
//
// Evaluate encodes a run's labelled training and test splits with its model
// (package graph), scores the features (package eval) and writes the report
// (package report) into the run folder or elsewhere; EvaluateFolder does the same
// from a folder's path (`runner eval`), OpenFeatures for sharded features
// (`runner eval --features`), and Monitor measures one point of the kNN
// curve during training.
package runeval

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/infomax/infomax/checkpoint"
	"github.com/infomax/infomax/config"
	"github.com/infomax/infomax/data"
	"github.com/infomax/infomax/eval"
	"github.com/infomax/infomax/exporter"
	"github.com/infomax/infomax/graph"
	"github.com/infomax/infomax/internal/fsutil"
	"github.com/infomax/infomax/internal/offheap"
	"github.com/infomax/infomax/internal/store"
	"github.com/infomax/infomax/knn"
	"github.com/infomax/infomax/report"
	"github.com/infomax/infomax/run"
)

// Options say where an evaluation of a run writes and what else it does.
type Options struct {
	// Out is the folder of the report, the grids, the features and the
	// projector's files: the run folder when "" (a read-only run is
	// evaluated with Out elsewhere).
	Out string
	// Curve > 0 first measures the kNN monitor's point for each kept
	// checkpoint at the end of every Curve-th epoch that metrics.jsonl lacks
	// (a run trained without the monitor), logging them in the run folder as
	// the monitor does.
	Curve int
	Overrides
}

// Overrides change the evaluation settings of a run (its config.yaml's eval
// section) for one evaluation, the run's config untouched: runner eval's
// --eval.* flags, for runs and for embedded features alike.
type Overrides struct {
	// ProbeEpochs, when set, trains the linear probe that many epochs (0:
	// none) whatever the run's eval.probe_epochs says.
	ProbeEpochs *int
	// MLPProbeEpochs > 0 trains the MLP probe that many epochs whatever the
	// run's eval.mlp_probe_epochs says.
	MLPProbeEpochs int
}

// apply sets e's keys that v overrides.
func (v Overrides) apply(e *config.Eval) {
	if v.ProbeEpochs != nil {
		e.ProbeEpochs = *v.ProbeEpochs
	}
	if v.MLPProbeEpochs > 0 {
		e.MLPProbeEpochs = v.MLPProbeEpochs
	}
}

// EvaluateFolder opens dir, its model at the latest checkpoint and its data, and
// evaluates it (`runner eval`). data.path may be changed first through
// dataPath (the data moved since training; "": as the run says).
func EvaluateFolder(ctx context.Context, dir, dataPath string, o Options, out io.Writer) (*eval.Report, error) {
	if store.IsURL(dir) {
		if o.Out == "" {
			return nil, fmt.Errorf("%s: a run in an object store is read from a local, read-only copy: pass --out DIR for the report", dir)
		}
		local, err := run.Fetch(ctx, dir)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(out, "eval: %s, its latest checkpoint copied to %s\n", dir, local)
		dir = local
	}
	r, err := run.Open(dir)
	if err != nil {
		return nil, err
	}
	if dataPath != "" {
		r.Config.Data.Path = dataPath
	}
	o.apply(&r.Config.Eval)
	m, err := r.LoadModel(r.Session())
	if err != nil {
		return nil, fmt.Errorf("evaluate %s: its model: %w", r.Dir, err)
	}
	defer m.Close()
	d, err := r.LoadData(ctx, m.Manifest, out)
	if err != nil {
		return nil, fmt.Errorf("evaluate %s: its data: %w", r.Dir, err)
	}
	if o.Curve > 0 {
		if err := curveFromCheckpoints(ctx, r, m, d, o.Curve, out); err != nil {
			return nil, err
		}
	}
	return Evaluate(ctx, r, m, d, r.State.Step, o, out)
}

// Evaluate evaluates a run's model (at step) on its labelled data: it encodes the
// kNN bank and the test split, scores the features (eval.Evaluate) and
// writes the report into the run folder or o.Out (package report); the kNN
// curve so far comes from the run's metrics.jsonl and is drawn as
// knn_curve.png. It returns nil and says why when the data has no labelled
// images.
func Evaluate(ctx context.Context, r *run.Run, m *graph.Model, d *run.Data, step int64, o Options, out io.Writer) (*eval.Report, error) {
	job, err := plan(ctx, r, m, d, step, o, out)
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	train, test, ok, err := encodeLabelled(ctx, m, d, job.batch, out)
	if err != nil {
		return nil, fmt.Errorf("evaluate %s: encoding its labelled images: %w", r.Dir, err)
	}
	if !ok {
		return nil, nil
	}
	defer train.Release()
	defer test.Release()
	job.rep.EncodeSec = time.Since(t0).Seconds()
	job.rep.ImagesPerSec = float64(len(train.Labels)+len(test.Labels)) / job.rep.EncodeSec
	rep, err := eval.Evaluate(ctx, job.rep, train, test, job.settings)
	if err != nil {
		return nil, fmt.Errorf("evaluate %s at step %d: %w", r.Dir, step, err)
	}
	if err := job.keepPixels(rep.Pixels); err != nil {
		return nil, err
	}
	if err := report.Write(ctx, job.dir, rep, train, test, job.options); err != nil {
		return nil, fmt.Errorf("the report of %s into %s: %w", r.Dir, job.dir, err)
	}
	report.Print(out, rep, job.dir)
	if p, err := report.PlotCurve(job.dir, rep.KNNCurve); err != nil || p != "" {
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(out, "kNN curve (%d points, the last this evaluation's): %s\n", len(rep.KNNCurve), p)
	}
	return rep, nil
}

// job is an evaluation of a run, planned from the run, its model and its
// data before anything is encoded.
type job struct {
	dir      string // where the report goes
	batch    int    // images encoded at once
	rep      eval.Report
	settings eval.Settings
	options  report.Options
	pixels   string // the raw-pixel figures' cache file ("": none)
}

// plan checks that the report's folder is writable and gathers what the
// evaluation needs: the report's identifying fields, the scoring settings
// from the run's eval section and what the report writes.
func plan(ctx context.Context, r *run.Run, m *graph.Model, d *run.Data, step int64, o Options, out io.Writer) (*job, error) {
	dir := cmp.Or(o.Out, r.Dir)
	if err := writable(dir); err != nil {
		return nil, fmt.Errorf("evaluation output %s is not writable (read-only here: %w): send the report elsewhere (runner eval --out DIR)", dir, err)
	}
	cfg, man := r.Config, m.Manifest
	images, _ := d.TrainingImages()
	perEpoch, err := run.StepsPerEpoch(images, cfg.Train.BatchSize)
	if err != nil {
		return nil, fmt.Errorf("evaluate %s: %w", r.Dir, err)
	}
	curve, err := r.Curve(step)
	if err != nil {
		return nil, fmt.Errorf("evaluate %s: its kNN curve: %w", r.Dir, err)
	}
	program, err := exporter.ProbeProgram(r.ModelPath())
	if err != nil {
		return nil, err
	}
	j := &job{dir: dir, batch: EncodeBatch(r, man)}
	if j.pixels, err = pixelCache(r, m, d, program); err != nil {
		return nil, fmt.Errorf("evaluate %s: the raw-pixel cache: %w", r.Dir, err)
	}
	classes := d.Classes()
	e := cfg.Eval
	j.rep = eval.Report{
		Run: r.Dir, Data: cfg.Data.Format, DataPath: cfg.Data.Path, Step: step,
		Epoch: float64(step) / float64(perEpoch), KNNCurve: curve,
		Feature: "z_mean", ConfigHash: r.Hash, Precision: m.Compute,
	}
	j.settings = eval.Settings{
		Classes: len(classes), K: e.K, WeightedK: e.WeightedK, Temperature: e.Temperature,
		ProbeEpochs: e.ProbeEpochs, ProbeBatch: e.ProbeBatchSize, MLPProbeEpochs: e.MLPProbeEpochs, Seed: cfg.Seed,
		GridRows: e.GridRows, GridNeighbours: e.GridNeighbours,
		PixelScale: float32(man.Input.Scale), PixelOffset: float32(man.Input.Offset),
		Pixels: cachedPixels(j.pixels), Session: r.Session(), PixelBankBytes: e.RawPixelMiB << 20,
		ProbeGraph: func(ctx context.Context, dim, classes, hidden int) (string, error) {
			return exporter.ExportProbe(ctx, program, dim, classes, hidden, out)
		},
		ConvFeatures: convFeatures(m, d, j.batch, e.MLPProbeEpochs > 0 && e.MLPProbeConv, out),
		ConvChannels: m.Manifest.FeatureMap[len(m.Manifest.FeatureMap)-1],
	}
	j.options = report.Options{ProjectorImages: e.ProjectorImages, ClassNames: classes, Seed: cfg.Seed}
	return j, nil
}

// cachedPixels are the raw-pixel figures the cache file holds (nil: none,
// or no cache).
func cachedPixels(path string) *eval.Scores {
	if path == "" {
		return nil
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var sc eval.Scores
	if json.Unmarshal(raw, &sc) != nil || sc.KNN == nil {
		return nil
	}
	return &sc
}

// keepPixels writes the raw-pixel figures into the cache, when there is one
// and it did not hold them.
func (j *job) keepPixels(sc *eval.Scores) error {
	if j.pixels == "" || sc == nil || j.settings.Pixels != nil {
		return nil
	}
	raw, _ := json.MarshalIndent(sc, "", "  ")
	if err := fsutil.WriteFileAtomic(j.pixels, raw); err != nil {
		return fmt.Errorf("raw-pixel cache: %w", err)
	}
	return nil
}

// writable makes dir if need be and checks that a file can be made in it.
func writable(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".writable-*")
	if err != nil {
		return err
	}
	f.Close()
	return os.Remove(f.Name())
}

// EncodeBatch is how many images an evaluation encodes at once:
// eval.batch_size (500) for inputs of up to 32×32, fewer for larger ones,
// whose activations grow with their pixels (at 64×64 a batch of 500 held
// about 390 MB more than training had), but never fewer than the training
// batch.
func EncodeBatch(r *run.Run, man *graph.Manifest) int {
	e, h, w := r.Config.Eval.BatchSize, man.Input.Shape[0], man.Input.Shape[1]
	return min(e, max(r.Config.Train.BatchSize, e*32*32/max(1, h*w)))
}

// Monitor measures one point of the kNN curve (the kNN monitor's, during
// training) with the model's weights now: it encodes the bank and the test
// split and computes the weighted kNN accuracy only.
func Monitor(ctx context.Context, r *run.Run, m *graph.Model, d *run.Data, step, perEpoch int64) (run.CurvePoint, error) {
	t0 := time.Now()
	e := r.Config.Eval
	train, test, ok, err := encodeLabelled(ctx, m, d, EncodeBatch(r, m.Manifest), io.Discard)
	if err != nil {
		return run.CurvePoint{}, err
	}
	if !ok {
		return run.CurvePoint{}, fmt.Errorf("eval.every_epochs = %d: the kNN monitor needs labelled training and test images; set eval.every_epochs: 0 for this data set", e.EveryEpochs)
	}
	defer train.Release()
	defer test.Release()
	res, err := eval.KNN(ctx, train.Features, train.Labels, test.Features, test.Labels, len(d.Classes()), eval.KNNSettings{
		K: e.K, WeightedK: e.WeightedK, Temperature: e.Temperature, Session: r.Session(),
	})
	if err != nil {
		return run.CurvePoint{}, fmt.Errorf("kNN monitor at step %d: %w", step, err)
	}
	return run.CurvePoint{Step: step, Epoch: float64(step) / float64(perEpoch), Weighted: res.Weighted,
		Seconds: time.Since(t0).Seconds()}, nil
}

// encoding is one kind of feature a model computes: its width, the call
// that encodes a batch of packed images and the one that encodes any number
// of them into a buffer.
type encoding struct {
	dim    int
	encode func(pixels []byte) ([]float32, error)
	into   func(ctx context.Context, dst []float32, pixels []byte, batch int) error
}

func zMean(m *graph.Model) encoding {
	return encoding{m.Manifest.FeatureDim, m.Encode, m.EncodeInto}
}

func convMap(m *graph.Model) encoding { return encoding{m.ConvDim(), m.EncodeConv, m.EncodeConvInto} }

// convFeatures gives Settings.ConvFeatures: the last convolutional feature
// maps of the labelled training and test images, encoded when the MLP probe
// asks for them (nil when want is false or the model has no encode_conv,
// which a line then says).
func convFeatures(m *graph.Model, d *run.Data, batch int, want bool, out io.Writer) func(context.Context) (knn.Features, knn.Features, func(), error) {
	if !want {
		return nil
	}
	if m.ConvDim() == 0 {
		fmt.Fprintf(out, "MLP probe on the last convolutional map: skipped, %v\n", graph.ErrNoConv)
		return nil
	}
	enc := convMap(m)
	return func(ctx context.Context) (knn.Features, knn.Features, func(), error) {
		train, test, _, err := encodeLabelledAs(ctx, enc, d, batch, io.Discard)
		if err != nil {
			return knn.Features{}, knn.Features{}, nil, err
		}
		return train.Features, test.Features, func() { train.Release(); test.Release() }, nil
	}
}

// encodeLabelled encodes the labelled images of the training split (the kNN
// bank) and of the test split; ok is false (and a line says why) when a
// split has none.
func encodeLabelled(ctx context.Context, m *graph.Model, d *run.Data, batch int, out io.Writer) (train, test eval.Split, ok bool, err error) {
	if d.Streams != nil {
		return encodeLabelledAs(ctx, zMean(m), d, batch, out)
	}
	if _, _, ok := labelled(d, out); !ok {
		return train, test, false, nil
	}
	if train, err = encodeSet(ctx, m, d.Splits.Train.Labelled(), batch); err != nil {
		return train, test, false, err
	}
	test, err = encodeSet(ctx, m, d.Splits.Test.Labelled(), batch)
	return train, test, err == nil, err
}

// labelled returns the ids of the labelled training and test images; ok is
// false (and a line says why) when a split has none.
func labelled(d *run.Data, out io.Writer) (trIDs, teIDs []int32, ok bool) {
	trIDs, teIDs = d.Labelled()
	if len(trIDs) == 0 || len(teIDs) == 0 {
		fmt.Fprintf(out, "evaluation skipped: it needs labelled training and test images (%d and %d here)\n", len(trIDs), len(teIDs))
		return nil, nil, false
	}
	return trIDs, teIDs, true
}

// encodeLabelledAs is encodeLabelled for any encoding, the features
// outside Go's heap (for the MLP probe's convolutional maps).
func encodeLabelledAs(ctx context.Context, enc encoding, d *run.Data, batch int, out io.Writer) (train, test eval.Split, ok bool, err error) {
	trIDs, teIDs, ok := labelled(d, out)
	if !ok {
		return train, test, false, nil
	}
	if d.Streams != nil {
		if train, err = encodeStream(ctx, enc, d.Streams.Train, trIDs, batch); err != nil {
			return train, test, false, err
		}
		if test, err = encodeStream(ctx, enc, d.Streams.Test, teIDs, batch); err != nil {
			train.Release()
			return eval.Split{}, eval.Split{}, false, err
		}
		return train, test, true, nil
	}
	if train, err = encodeOffheap(ctx, enc, d.Splits.Train.Labelled(), batch); err != nil {
		return train, test, false, err
	}
	if test, err = encodeOffheap(ctx, enc, d.Splits.Test.Labelled(), batch); err != nil {
		train.Release()
		return eval.Split{}, eval.Split{}, false, err
	}
	return train, test, true, nil
}

// encodeOffheap encodes an in-memory set batch at a time into features
// outside Go's heap (its pixels are not kept in the split).
func encodeOffheap(ctx context.Context, enc encoding, s *data.Set, batch int) (eval.Split, error) {
	buf, free, err := offheap.Float32s(s.Len() * enc.dim)
	if err != nil {
		return eval.Split{}, err
	}
	if err := enc.into(ctx, buf, s.Images, batch); err != nil {
		free()
		return eval.Split{}, fmt.Errorf("encode %s: %w", s.Source, err)
	}
	return eval.Split{Features: knn.Features{Dim: enc.dim, Data: buf}, Labels: s.Labels, H: s.H, W: s.W, C: s.C, Free: free}, nil
}

// encodeSet returns a split of z_mean for every image of an in-memory set.
func encodeSet(ctx context.Context, m *graph.Model, s *data.Set, batch int) (eval.Split, error) {
	z, err := m.EncodeAll(ctx, s.Images, batch)
	if err != nil {
		return eval.Split{}, fmt.Errorf("encode %s: %w", s.Source, err)
	}
	return eval.Split{Features: knn.Features{Dim: m.Manifest.FeatureDim, Data: z}, Labels: s.Labels, Images: s.Images, H: s.H, W: s.W, C: s.C}, nil
}

// encodeStream encodes the images ids of a stream in one pass, keeping only
// their features (a streamed evaluation holds no pixels: no raw-pixel
// baseline; the grids read their few images again).
//
// The features live outside Go's heap (internal/offheap) until Release: the
// decoders' garbage would otherwise let the heap grow to twice them around
// the evaluation (GOGC 100), above training's peak.
func encodeStream(ctx context.Context, enc encoding, s *data.Stream, ids []int32, batch int) (eval.Split, error) {
	dim := enc.dim
	buf, free, err := offheap.Float32s(len(ids) * dim)
	if err != nil {
		return eval.Split{}, err
	}
	sp := eval.Split{Features: knn.Features{Dim: dim, Data: buf[:0]}, H: s.Shape.H, W: s.Shape.W, C: s.Shape.C, Free: free}
	var kept []int // the stream's id of each encoded image (bad ones are left out)
	err = s.Each(ctx, ids, batch, func(px []byte, got []int) error {
		z, err := enc.encode(px)
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
	if err != nil {
		sp.Release()
		return eval.Split{}, fmt.Errorf("encode %s: %w", s.Source, err)
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
func pixelCache(r *run.Run, m *graph.Model, d *run.Data, program string) (string, error) {
	o, err := r.DataOptions(m.Manifest)
	if err != nil || o.CacheDir == "" || d.Streams != nil {
		return "", err
	}
	key, err := data.CacheKey(o)
	if err != nil {
		return "", err
	}
	// The probe's folder name carries the hash of its code and settings, so
	// a change to the probe's program recomputes the figures.
	probe, err := exporter.ProbeDir("", program, d.Splits.Train.ImageBytes(), len(d.Splits.Train.Classes), 0)
	if err != nil {
		return "", err
	}
	cfg := r.Config
	e := cfg.Eval
	e.MLPProbeEpochs = 0 // the features' only
	settings, _ := json.Marshal(struct {
		E       any
		Seed    int64
		Scaling string
		Probe   string
	}{e, cfg.Seed, m.Manifest.Input.Scaling, filepath.Base(probe)})
	sum := sha256.Sum256(append([]byte(key), settings...))
	return filepath.Join(o.CacheDir, "pixels-"+hex.EncodeToString(sum[:])[:24]+".json"), nil
}

// curveFromCheckpoints measures the monitor's missing points from the kept
// checkpoints, logs them in the run folder, then restores the latest again.
func curveFromCheckpoints(ctx context.Context, r *run.Run, m *graph.Model, d *run.Data, every int, out io.Writer) error {
	if tr, te := d.Labelled(); len(tr) == 0 || len(te) == 0 {
		return fmt.Errorf("--curve %d: the kNN curve needs labelled training and test images, and %s has %d and %d: run `runner eval` without --curve",
			every, r.Config.Data.Path, len(tr), len(te))
	}
	images, _ := d.TrainingImages()
	perEpoch, err := run.StepsPerEpoch(images, r.Config.Train.BatchSize)
	if err != nil {
		return err
	}
	latest := r.State
	have, err := r.Curve(latest.Step)
	if err != nil {
		return err
	}
	done := map[int64]bool{}
	for _, p := range have {
		done[p.Step] = true
	}
	var todo []int64
	for _, prefix := range latest.Kept {
		step, err := checkpoint.ParsePrefix(prefix)
		if err != nil {
			return fmt.Errorf("%s: %w", r.Checkpoints.Path, err)
		}
		if step > 0 && step%perEpoch == 0 && (step/perEpoch)%int64(every) == 0 && !done[step] && step != latest.Step {
			todo = append(todo, step)
		}
	}
	if len(todo) == 0 {
		fmt.Fprintf(out, "kNN curve: no kept checkpoint at the end of every %d epochs lacks its point\n", every)
		return nil
	}
	log, err := r.OpenLog(math.MaxInt64)
	if err != nil {
		return err
	}
	defer log.Close()
	for _, step := range todo {
		if err := m.Restore(r.Checkpoints.PrefixPath(checkpoint.Prefix(step))); err != nil {
			return fmt.Errorf("--curve: restore step %d of %s: %w", step, r.Dir, err)
		}
		p, err := Monitor(ctx, r, m, d, step, perEpoch)
		if err != nil {
			return fmt.Errorf("--curve: step %d of %s: %w", step, r.Dir, err)
		}
		if err := log.Point(p); err != nil {
			return fmt.Errorf("--curve: %w", err)
		}
		fmt.Fprintln(out, PointLine(p))
	}
	return m.Restore(r.Checkpoints.PrefixPath(latest.Prefix))
}

// PointLine is the terminal line of a kNN curve point.
func PointLine(p run.CurvePoint) string {
	return fmt.Sprintf("kNN monitor: step %d  epoch %.0f  weighted kNN %.4f  (%.1f s)", p.Step, p.Epoch, p.Weighted, p.Seconds)
}

// Canceled says whether err is an evaluation stopped by its context.
func Canceled(err error) bool { return errors.Is(err, context.Canceled) }
