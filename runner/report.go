package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/infomax/infomax/data"
	"github.com/infomax/infomax/eval"
	"github.com/infomax/infomax/graph"
	"github.com/infomax/infomax/internal/fsutil"
	"github.com/infomax/infomax/pyexport"
)

// Scores are the figures of one kind of feature.
type Scores struct {
	KNN   *eval.KNNResult   `json:"knn"`
	Probe *eval.ProbeResult `json:"linear_probe,omitempty"`
}

// Report is report.json: every figure of an evaluation.
type Report struct {
	Run        string  `json:"run"`
	Data       string  `json:"data"`
	DataPath   string  `json:"data_path"`
	TrainSize  int     `json:"train_size"`
	TestSize   int     `json:"test_size"`
	Classes    int     `json:"classes"`
	Step       int64   `json:"step"`
	Time       string  `json:"time"`
	Feature    string  `json:"feature"`
	FeatureDim int     `json:"feature_dim"`
	ConfigHash string  `json:"config_hash"`
	Model      Scores  `json:"model"`
	Pixels     *Scores `json:"raw_pixels"`
	Files      struct {
		Grids    []string `json:"grids"`
		Features []string `json:"features"`
	} `json:"files"`
	EncodeSec     float64 `json:"encode_seconds"`
	ImagesPerSec  float64 `json:"encode_images_per_second"`
	KNNSec        float64 `json:"knn_seconds"`
	KNNBlockBytes int64   `json:"knn_block_bytes"` // the largest similarity block held at once
}

// encodeAll returns z_mean for every image of a split, batch images at a time.
// A cancelled context (Ctrl-C) stops it between batches.
func encodeAll(ctx context.Context, m *graph.Model, s *data.Set, batch int) (eval.Features, error) {
	f := eval.Features{Dim: m.Manifest.FeatureDim, Data: make([]float32, 0, s.Len()*m.Manifest.FeatureDim)}
	for i := 0; i < s.Len(); i += batch {
		if ctx.Err() != nil {
			return f, fmt.Errorf("evaluation stopped (the final checkpoint is written): %w", errInterrupted)
		}
		j := min(i+batch, s.Len())
		z, err := m.Encode(s.Images[i*s.ImageBytes() : j*s.ImageBytes()])
		if err != nil {
			return f, fmt.Errorf("encode %s images %d..%d: %w", s.Source, i, j, err)
		}
		f.Data = append(f.Data, z...)
	}
	return f, nil
}

// pixelFeatures are the baseline features: raw pixels scaled as the model's
// input is (x·scale + offset, e.g. x/255 − 0.5), so cosine similarity sees
// what the encoder sees.
func pixelFeatures(s *data.Set, man *graph.Manifest) eval.Features {
	scale, offset := float32(man.Input.Scale), float32(man.Input.Offset)
	f := eval.Features{Dim: s.ImageBytes(), Data: make([]float32, len(s.Images))}
	for i, v := range s.Images {
		f.Data[i] = float32(v)*scale + offset
	}
	return f
}

const knnChunk = 1024

// scores runs kNN and, if asked, the linear probe on one kind of features.
func (r *run) scores(ctx context.Context, bank, queries eval.Features, train, test *data.Set) (*Scores, error) {
	e := r.cfg.Eval
	knn, err := eval.KNN(bank, train.Labels, queries, test.Labels, len(train.Classes), eval.KNNSettings{
		K: e.K, WeightedK: e.WeightedK, Temperature: e.Temperature, Chunk: knnChunk,
	})
	if err != nil {
		return nil, err
	}
	sc := &Scores{KNN: knn}
	if e.ProbeEpochs > 0 {
		dir, err := pyexport.ExportProbe(ctx, bank.Dim, len(train.Classes), r.out)
		if err != nil {
			return nil, err
		}
		sc.Probe, err = eval.LinearProbe(dir, bank, train.Labels, queries, test.Labels, eval.ProbeSettings{
			Epochs: e.ProbeEpochs, BatchSize: min(e.ProbeBatchSize, bank.Len()), Seed: r.cfg.Seed,
		})
		if err != nil {
			return nil, err
		}
	}
	return sc, nil
}

// pixelScores are the raw-pixel figures of this data set, cached beside the
// decoded data (they depend on the data and the eval settings only).
func (r *run) pixelScores(ctx context.Context, train, test *data.Set) (*Scores, error) {
	o, err := dataOptions(&r.cfg.Config, r.model.Manifest)
	if err != nil {
		return nil, err
	}
	var cache string
	if o.CacheDir != "" {
		key, err := data.CacheKey(o)
		if err != nil {
			return nil, err
		}
		settings, _ := json.Marshal(struct {
			V       int
			E       any
			Seed    int64
			Scaling string
		}{2, r.cfg.Eval, r.cfg.Seed, r.model.Manifest.Input.Scaling})
		sum := sha256.Sum256(append([]byte(key), settings...))
		cache = filepath.Join(o.CacheDir, "pixels-"+hex.EncodeToString(sum[:])[:24]+".json")
		if raw, err := os.ReadFile(cache); err == nil {
			var sc Scores
			if json.Unmarshal(raw, &sc) == nil && sc.KNN != nil {
				return &sc, nil
			}
		}
	}
	sc, err := r.scores(ctx, pixelFeatures(train, r.model.Manifest), pixelFeatures(test, r.model.Manifest), train, test)
	if err != nil {
		return nil, fmt.Errorf("raw-pixel baseline: %w", err)
	}
	if cache != "" {
		raw, _ := json.MarshalIndent(sc, "", "  ")
		if err := fsutil.WriteFileAtomic(cache, raw); err != nil {
			return nil, err
		}
	}
	return sc, nil
}

// evaluate computes every figure of the run's encoder and writes the report,
// the Markdown table, the retrieval grids and the features.
func (r *run) evaluate(ctx context.Context, step int64, out io.Writer) (*Report, error) {
	train, test := r.splits.Train.Labelled(), r.splits.Test.Labelled()
	if train.Len() == 0 || test.Len() == 0 {
		fmt.Fprintf(out, "evaluation skipped: it needs labelled training and test images (%d and %d here)\n", train.Len(), test.Len())
		return nil, nil
	}
	t0 := time.Now()
	bank, err := encodeAll(ctx, r.model, train, r.cfg.Eval.BatchSize)
	if err != nil {
		return nil, err
	}
	queries, err := encodeAll(ctx, r.model, test, r.cfg.Eval.BatchSize)
	if err != nil {
		return nil, err
	}
	encodeSec := time.Since(t0).Seconds()
	t1 := time.Now()
	model, err := r.scores(ctx, bank, queries, train, test)
	if err != nil {
		return nil, err
	}
	knnSec := time.Since(t1).Seconds()
	if model.Probe != nil {
		knnSec -= model.Probe.Seconds
	}
	pixels, err := r.pixelScores(ctx, train, test)
	if err != nil {
		return nil, err
	}
	rep := &Report{
		Run: r.dir, Data: r.cfg.Data.Format, DataPath: r.cfg.Data.Path,
		TrainSize: train.Len(), TestSize: test.Len(), Classes: len(train.Classes),
		Step: step, Time: time.Now().UTC().Format(time.RFC3339),
		Feature: "z_mean", FeatureDim: bank.Dim, ConfigHash: r.hash,
		Model: *model, Pixels: pixels,
		EncodeSec: encodeSec, ImagesPerSec: float64(train.Len()+test.Len()) / encodeSec, KNNSec: knnSec,
		KNNBlockBytes: int64(min(knnChunk, test.Len())) * int64(train.Len()) * 4,
	}
	if err := r.writeGrids(rep, bank, queries, train, test); err != nil {
		return nil, err
	}
	for _, f := range []struct {
		name string
		feat eval.Features
		set  *data.Set
	}{{"train", bank, train}, {"test", queries, test}} {
		p := filepath.Join(r.dir, "features_"+f.name+".npy")
		if err := eval.WriteNPY(p, f.feat.Data, f.feat.Len(), f.feat.Dim); err != nil {
			return nil, err
		}
		labels := make([]int32, len(f.set.Labels))
		for i, l := range f.set.Labels {
			labels[i] = int32(l)
		}
		lp := filepath.Join(r.dir, "labels_"+f.name+".npy")
		if err := eval.WriteNPY(lp, labels, len(labels)); err != nil {
			return nil, err
		}
		rep.Files.Features = append(rep.Files.Features, p, lp)
	}
	raw, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := fsutil.WriteFileAtomic(filepath.Join(r.dir, "report.json"), append(raw, '\n')); err != nil {
		return nil, err
	}
	md := rep.Markdown()
	if err := fsutil.WriteFileAtomic(filepath.Join(r.dir, "report.md"), []byte(md)); err != nil {
		return nil, err
	}
	fmt.Fprint(out, md)
	fmt.Fprintf(out, "report: %s, report.md, %d grids, features as .npy (encode %.1fs at %.0f images/s, kNN %.1fs)\n",
		filepath.Join(r.dir, "report.json"), len(rep.Files.Grids), rep.EncodeSec, rep.ImagesPerSec, rep.KNNSec)
	return rep, nil
}

// writeGrids draws the retrieval grids: GridRows random test queries (seeded)
// with their nearest training images, by cosine similarity and by Euclidean
// distance.
func (r *run) writeGrids(rep *Report, bank, queries eval.Features, train, test *data.Set) error {
	e := r.cfg.Eval
	if e.GridRows == 0 {
		return nil
	}
	rng := rand.New(rand.NewPCG(uint64(r.cfg.Seed), 0x9e1d))
	picks := rng.Perm(test.Len())[:min(e.GridRows, test.Len())]
	q := eval.Features{Dim: queries.Dim}
	for _, p := range picks {
		q.Data = append(q.Data, queries.Data[p*queries.Dim:(p+1)*queries.Dim]...)
	}
	k := min(e.GridNeighbours, bank.Len())
	scale := max(1, (64+train.H-1)/train.H)
	for _, metric := range []eval.Metric{eval.Cosine, eval.L2} {
		nb, err := eval.SearchMetric(bank, q, k, knnChunk, metric)
		if err != nil {
			return err
		}
		rows := make([]eval.GridRow, len(picks))
		for i, p := range picks {
			rows[i].Query = test.Image(p)
			for j := 0; j < k; j++ {
				rows[i].Neighbours = append(rows[i].Neighbours, train.Image(int(nb.Index[i*k+j])))
			}
		}
		p := filepath.Join(r.dir, "retrieval_"+string(metric)+".png")
		if err := eval.WriteGrid(p, rows, train.H, train.W, train.C, scale); err != nil {
			return err
		}
		rep.Files.Grids = append(rep.Files.Grids, p)
	}
	return nil
}

// Markdown is the short table of report.md.
func (rep *Report) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "## %s: %s, step %d\n\n", rep.Run, rep.Data, rep.Step)
	fmt.Fprintf(&b, "%d training images (the kNN bank and the probe's training set), %d test images, %d classes; features: %s (%d).\n\n",
		rep.TrainSize, rep.TestSize, rep.Classes, rep.Feature, rep.FeatureDim)
	fmt.Fprintln(&b, "| top-1 accuracy | z_mean | raw pixels |")
	fmt.Fprintln(&b, "|---|---|---|")
	row := func(name string, get func(*Scores) (float64, bool)) {
		m, ok := get(&rep.Model)
		if !ok {
			return
		}
		p := "–"
		if rep.Pixels != nil {
			if v, ok := get(rep.Pixels); ok {
				p = fmt.Sprintf("%.4f", v)
			}
		}
		fmt.Fprintf(&b, "| %s | %.4f | %s |\n", name, m, p)
	}
	k := rep.Model.KNN
	row(fmt.Sprintf("kNN weighted, k = %d, t = %g (cosine)", k.WeightedK, k.Temperature), func(s *Scores) (float64, bool) { return s.KNN.Weighted, true })
	row(fmt.Sprintf("kNN majority, k = %d (cosine)", k.K), func(s *Scores) (float64, bool) { return s.KNN.Majority, true })
	row("1-NN (cosine)", func(s *Scores) (float64, bool) { return s.KNN.Top1NN, true })
	row("1-NN (Euclidean)", func(s *Scores) (float64, bool) { return s.KNN.L2NN1, true })
	row("linear probe", func(s *Scores) (float64, bool) {
		if s.Probe == nil {
			return 0, false
		}
		return s.Probe.Accuracy, true
	})
	fmt.Fprintln(&b)
	return b.String()
}

// compareTable puts several runs' figures side by side (an ablation).
func compareTable(reps []*Report) string {
	var b strings.Builder
	fmt.Fprintln(&b, "| run | data | step | kNN weighted | kNN majority | 1-NN cos | 1-NN L2 | linear probe |")
	fmt.Fprintln(&b, "|---|---|---|---|---|---|---|---|")
	line := func(name, dataName string, step string, s *Scores) {
		probe := "–"
		if s.Probe != nil {
			probe = fmt.Sprintf("%.4f", s.Probe.Accuracy)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %.4f | %.4f | %.4f | %.4f | %s |\n", name, dataName, step,
			s.KNN.Weighted, s.KNN.Majority, s.KNN.Top1NN, s.KNN.L2NN1, probe)
	}
	seen := map[string]bool{}
	for _, r := range reps {
		line(r.Run, r.Data, fmt.Sprint(r.Step), &r.Model)
		if r.Pixels != nil && !seen[r.DataPath] {
			seen[r.DataPath] = true
			line("raw pixels", r.Data, "–", r.Pixels)
		}
	}
	return b.String()
}
