package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/infomax/infomax/data"
	"github.com/infomax/infomax/eval"
	"github.com/infomax/infomax/graph"
	"github.com/infomax/infomax/internal/fsutil"
)

// Report is report.json: the kNN accuracies of a trained encoder.
type Report struct {
	Data       string          `json:"data"`
	DataPath   string          `json:"data_path"`
	TrainSize  int             `json:"train_size"`
	TestSize   int             `json:"test_size"`
	Step       int64           `json:"step"`
	Time       string          `json:"time"`
	Feature    string          `json:"feature"`
	FeatureDim int             `json:"feature_dim"`
	ConfigHash string          `json:"config_hash"`
	KNN        *eval.KNNResult `json:"knn_cosine"`
	EncodeSec  float64         `json:"encode_seconds"`
	KNNSec     float64         `json:"knn_seconds"`
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

func (r *run) report(ctx context.Context, step int64, out io.Writer) error {
	train, test := r.splits.Train.Labelled(), r.splits.Test.Labelled()
	if train.Len() == 0 || test.Len() == 0 {
		fmt.Fprintf(out, "kNN report skipped: it needs labelled training and test images (%d and %d here)\n", train.Len(), test.Len())
		return nil
	}
	t0 := time.Now()
	bank, err := encodeAll(ctx, r.model, train, r.cfg.Eval.BatchSize)
	if err != nil {
		return err
	}
	queries, err := encodeAll(ctx, r.model, test, r.cfg.Eval.BatchSize)
	if err != nil {
		return err
	}
	t1 := time.Now()
	knn, err := eval.KNN(bank, train.Labels, queries, test.Labels, len(train.Classes), eval.KNNSettings{
		K: r.cfg.Eval.K, WeightedK: r.cfg.Eval.WeightedK, Temperature: r.cfg.Eval.Temperature,
	})
	if err != nil {
		return err
	}
	rep := Report{
		Data: r.cfg.Data.Format, DataPath: r.cfg.Data.Path,
		TrainSize: train.Len(), TestSize: test.Len(),
		Step: step, Time: time.Now().UTC().Format(time.RFC3339),
		Feature: "z_mean", FeatureDim: bank.Dim, ConfigHash: r.hash, KNN: knn,
		EncodeSec: t1.Sub(t0).Seconds(), KNNSec: time.Since(t1).Seconds(),
	}
	raw, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	path := filepath.Join(r.dir, "report.json")
	if err := fsutil.WriteFileAtomic(path, append(raw, '\n')); err != nil {
		return err
	}
	fmt.Fprintf(out, "kNN on z_mean (cosine), %d test queries against %d training images, step %d:\n", rep.TestSize, rep.TrainSize, step)
	rows := [][2]string{
		{"1-NN", fmt.Sprintf("%.4f", knn.Top1NN)},
		{fmt.Sprintf("%d-NN majority vote", knn.K), fmt.Sprintf("%.4f", knn.Majority)},
		{fmt.Sprintf("%d-NN weighted, t = %g", knn.WeightedK, knn.Temperature), fmt.Sprintf("%.4f", knn.Weighted)},
	}
	for _, row := range rows {
		fmt.Fprintf(out, "  %-26s %s\n", row[0], row[1])
	}
	fmt.Fprintf(out, "report: %s (encode %.1fs, kNN %.1fs)\n", path, rep.EncodeSec, rep.KNNSec)
	return nil
}
