package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/infomax/infomax/config"
	"github.com/infomax/infomax/encoder"
	"github.com/infomax/infomax/eval"
	"github.com/infomax/infomax/knn"
	"github.com/infomax/infomax/runeval"
	"github.com/infomax/infomax/search"
	"github.com/infomax/infomax/testkit/emulators"
	"github.com/infomax/infomax/testkit/testmodel"
)

// runner eval --features on embedded Fashion-MNIST images (bank in S3 as
// Parquet, queries in a folder as .npy, classes from their folders) gives the kNN figures
// that eval.KNN gives for the same images encoded in memory and searched
// as one bank, though the bank streams through the search in blocks of 40
// features; features without classes are refused, naming the flag.
func TestEvaluateEmbeddedFeatures(t *testing.T) {
	emulators.Start(t, "feats")
	ctx := context.Background()
	tmp := t.TempDir()
	runDir, err := testmodel.Run(filepath.Join(tmp, "run"))
	if err != nil {
		t.Fatal(err)
	}
	folder := testmodel.FashionMNISTFolder(t, 600, 200)
	embed := func(split, out, classes, format string) {
		globs, err := Globs(filepath.Join(folder, split))
		if err != nil {
			t.Fatal(err)
		}
		runPipeline(t, Options{RunDir: runDir, Inputs: globs, Output: out, Shards: 5, Labels: classes, Format: format})
	}
	bank, queries, plain := "s3://feats/fashion/train", filepath.Join(tmp, "test"), filepath.Join(tmp, "plain")
	embed("train", bank, "folders", search.FormatParquet)
	embed("test", queries, "folders", search.FormatNPY)
	embed("test", plain, "", search.FormatParquet)

	e := config.Defaults().Eval
	e.ProbeEpochs, e.MLPProbeEpochs = 0, 0
	dim := 0
	o := runeval.FeaturesOptions{Queries: queries, Bank: bank, Dir: filepath.Join(tmp, "report"), Eval: e}
	m, err := search.ReadEmbedding(ctx, bank)
	if err != nil {
		t.Fatal(err)
	}
	dim = m.Dim
	o.BankBlockBytes = 40 * 4 * int64(dim)
	rep, err := runeval.EvaluateFeatures(ctx, o, &strings.Builder{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.TrainSize != 600 || rep.TestSize != 200 || rep.Classes != 10 {
		t.Fatalf("report: %d bank, %d queries, %d classes; want 600, 200, 10", rep.TrainSize, rep.TestSize, rep.Classes)
	}

	// The same images in memory, in the order of the shards, one bank.
	enc, err := encoder.Load(t.Context(), runDir)
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	classes := map[string]int{}
	inMemory := func(dir string) (knn.Features, []int) {
		m, err := search.ReadEmbedding(ctx, dir)
		if err != nil {
			t.Fatal(err)
		}
		var paths []string
		for _, s := range m.Shards {
			sh, err := search.ReadShard(ctx, dir, m, s)
			if err != nil {
				t.Fatal(err)
			}
			paths = append(paths, sh.Paths...)
		}
		feats, err := enc.EncodeFiles(ctx, paths...)
		if err != nil {
			t.Fatal(err)
		}
		labels := make([]int, len(paths))
		for i, p := range paths {
			c := filepath.Base(filepath.Dir(p))
			if _, ok := classes[c]; !ok {
				classes[c] = len(classes)
			}
			labels[i] = classes[c]
		}
		return knn.Features{Data: feats, Dim: enc.Dim()}, labels
	}
	bf, bl := inMemory(bank)
	qf, ql := inMemory(queries)
	want, err := eval.KNN(ctx, bf, bl, qf, ql, len(classes), eval.KNNSettings{K: e.K, WeightedK: e.WeightedK, Temperature: e.Temperature})
	if err != nil {
		t.Fatal(err)
	}
	if *rep.Model.KNN != *want {
		t.Errorf("embedded features, streamed bank: %+v\nin memory, one bank: %+v", *rep.Model.KNN, *want)
	}
	t.Logf("weighted kNN %.4f, majority %.4f, 1-NN %.4f, Euclidean 1-NN %.4f", want.Weighted, want.Majority, want.Top1NN, want.L2NN1)

	o.Queries = plain
	if _, err := runeval.EvaluateFeatures(ctx, o, &strings.Builder{}); err == nil || !strings.Contains(err.Error(), "--classes") {
		t.Errorf("queries without classes: %v", err)
	}
}
