// Package eval scores features: kNN, probes and baselines, writing nothing.
//
// It works on plain float32 arrays of a labelled training split (the kNN
// bank and the probes' training set) and test split: kNN accuracies by
// cosine votes and Euclidean 1-NN (package knn), the linear probe and the
// Deep InfoMax paper's MLP probe (small SavedModels trained from Go), the
// same for raw pixels, and the neighbours the retrieval grids show. Evaluate
// returns them as a Report; package report writes it, package runeval joins
// the two for a run folder.
package eval

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/infomax/infomax/graph"
	"github.com/infomax/infomax/knn"
	"github.com/infomax/infomax/run"
)

// Split is one labelled split: its features, its labels and, for the
// retrieval grids and the raw-pixel baseline, its images (N·H·W·C uint8).
// A streamed split has no Images (and so no raw-pixel baseline): Fetch
// reads the few images the grids show.
type Split struct {
	Features knn.Features
	Labels   []int
	Images   []byte
	H, W, C  int
	Fetch    func(idx []int) (map[int][]byte, error)
	// Free frees Features when they live outside Go's heap (a streamed
	// evaluation's); nil: nothing to free.
	Free func()
}

// Release frees what the split holds outside Go's heap; the split must not
// be used after.
func (s Split) Release() {
	if s.Free != nil {
		s.Free()
	}
}

// ImagesOf returns the images idx (for the grids and the projector's
// sprite): from Images, or read again through Fetch.
func (s Split) ImagesOf(idx []int) (map[int][]byte, error) {
	if s.Images == nil && s.Fetch != nil {
		return s.Fetch(idx)
	}
	per := s.H * s.W * s.C
	out := map[int][]byte{}
	for _, i := range idx {
		out[i] = s.Images[i*per : (i+1)*per]
	}
	return out, nil
}

// Pixels are the baseline features of a split: its pixels scaled as the
// model's input is (x·scale + offset, e.g. x/255 − 0.5), so that cosine
// similarity sees what the encoder sees.
func (s Split) Pixels(scale, offset float32) PixelRows {
	return PixelRows{Images: s.Images, Dim: s.H * s.W * s.C, Scale: scale, Offset: offset}
}

// PixelRows are images as feature rows, each pixel x as x·Scale + Offset,
// made as a search or the probe reads them: a float32 copy of a split's
// pixels would take 4 times its bytes (4.9 GB for Tiny ImageNet's training
// split). Index, if set, picks the images used (a sample), in its order.
type PixelRows struct {
	Images        []byte
	Dim           int
	Scale, Offset float32
	Index         []int
}

func (p PixelRows) Len() int {
	if p.Index != nil {
		return len(p.Index)
	}
	return len(p.Images) / p.Dim
}

func (p PixelRows) Width() int { return p.Dim }

func (p PixelRows) Row(i int, dst []float32) {
	if p.Index != nil {
		i = p.Index[i]
	}
	for j, v := range p.Images[i*p.Dim : (i+1)*p.Dim] {
		dst[j] = float32(v)*p.Scale + p.Offset
	}
}

// PixelSample is the seeded sample of training images the raw-pixel
// baseline uses when their pixels as float32 would pass maxBytes (nil: all
// of them), sorted.
func PixelSample(n, dim int, maxBytes int64, seed int64) []int {
	per := int64(4 * dim)
	if maxBytes <= 0 || int64(n)*per <= maxBytes {
		return nil
	}
	m := int(max(1, maxBytes/per))
	idx := rand.New(rand.NewPCG(uint64(seed), 0x91c5)).Perm(n)[:m]
	slices.Sort(idx)
	return idx
}

// Settings say what Evaluate computes.
type Settings struct {
	Classes                 int
	K, WeightedK            int
	Temperature             float64
	ProbeEpochs, ProbeBatch int // ProbeEpochs 0: no linear probe
	// MLPProbeEpochs trains the Deep InfoMax paper's classifier (an MLP
	// with MLPHidden hidden units) on the features (not on raw pixels);
	// 0: none.
	MLPProbeEpochs int
	// ConvFeatures, if set and MLPProbeEpochs > 0, gives the training and
	// test splits' last convolutional feature maps (the encode_conv
	// signature, rows of h·w·ConvChannels values): the kNN votes and the
	// probes are scored once more on them flattened, and on them averaged
	// over their positions (Scores.Conv, Scores.ConvAvg); release frees
	// them.
	ConvFeatures             func(ctx context.Context) (train, test knn.Features, release func(), err error)
	ConvChannels             int
	Seed                     int64
	GridRows, GridNeighbours int // GridRows 0: no retrieval grids
	PixelScale, PixelOffset  float32
	// ProbeGraph returns the folder of a probe's exported graph for dim
	// features, the given classes and hidden units (0: the linear probe;
	// exporter.ExportProbe).
	ProbeGraph func(ctx context.Context, dim, classes, hidden int) (string, error)
	// Session sets up every TensorFlow session of the evaluation (kNN, the
	// probe): the run's threads and device.
	Session graph.Options
	// PixelBankBytes bounds the raw-pixel baseline's bank (the training
	// images as float32, held once in TensorFlow for the kNN search): past
	// it, a seeded sample of the training images (PixelSample), which the
	// report says (eval.raw_pixel_mib; 0: all).
	PixelBankBytes int64
	// Pixels, if set, are the raw-pixel figures already (a cache of the
	// caller's: they depend on the data and these settings only), and
	// Evaluate does not compute them again.
	Pixels *Scores
}

// Evaluate computes every figure of the features of a labelled training
// split (the kNN bank and the probe's training set) and test split: kNN
// accuracies, the probes, the same for raw pixels, and the neighbours the
// retrieval grids show. It writes nothing (package report does) and returns
// the report with rep's identifying fields kept (Run, Data, Step, …). A
// cancelled ctx stops it between pieces.
func Evaluate(ctx context.Context, rep Report, train, test Split, s Settings) (*Report, error) {
	t1 := time.Now()
	model, err := scores(ctx, train.Features, train.Labels, test.Features, test.Labels, s)
	if err != nil {
		return nil, err
	}
	rep.KNNSec = time.Since(t1).Seconds()
	for _, p := range []*ProbeResult{model.Probe, model.MLP} {
		if p != nil {
			rep.KNNSec -= p.Seconds
		}
	}
	if s.MLPProbeEpochs > 0 && s.ConvFeatures != nil {
		if err := convScores(ctx, model, train.Labels, test.Labels, s); err != nil {
			return nil, err
		}
	}
	if rep.Pixels = s.Pixels; rep.Pixels == nil && train.Images != nil && test.Images != nil {
		if rep.Pixels, err = pixelScores(ctx, train, test, s); err != nil {
			return nil, err
		}
	}
	rep.Model = *model
	if n := len(rep.KNNCurve); n > 0 && rep.KNNCurve[n-1].Step != rep.Step {
		rep.KNNCurve = append(rep.KNNCurve, run.CurvePoint{Step: rep.Step, Epoch: rep.Epoch, Weighted: model.KNN.Weighted, Seconds: rep.EncodeSec + rep.KNNSec})
	}
	rep.TrainSize, rep.TestSize, rep.Classes = len(train.Labels), len(test.Labels), s.Classes
	rep.FeatureDim = train.Features.Dim
	rep.Time = time.Now().UTC().Format(time.RFC3339)
	rep.KNNBlockBytes = int64(min(knn.ChunkFor(len(train.Labels)), len(test.Labels))) * int64(len(train.Labels)) * 4
	if rep.Retrievals, err = retrievals(ctx, s, train, test); err != nil {
		return nil, err
	}
	return &rep, nil
}

// MLPHidden is the MLP probe's hidden layer: the Deep InfoMax paper's 200 units.
const MLPHidden = 200

// scores runs kNN and, if asked, the probes on one kind of features.
func scores(ctx context.Context, bank knn.Rows, bankLabels []int, queries knn.Rows, queryLabels []int, s Settings) (*Scores, error) {
	knn, err := KNN(ctx, bank, bankLabels, queries, queryLabels, s.Classes, KNNSettings{
		K: s.K, WeightedK: s.WeightedK, Temperature: s.Temperature, Session: s.Session,
	})
	if err != nil {
		return nil, fmt.Errorf("kNN of %d queries against a bank of %d: %w", queries.Len(), bank.Len(), err)
	}
	sc := &Scores{KNN: knn}
	if sc.Probe, sc.MLP, err = Probes(ctx, bank, bankLabels, queries, queryLabels, s); err != nil {
		return nil, err
	}
	return sc, nil
}

// Probes trains the probes s asks for (none: nil) on the bank and
// tests them on the queries.
func Probes(ctx context.Context, bank knn.Rows, bankLabels []int, queries knn.Rows, queryLabels []int, s Settings) (linear, mlp *ProbeResult, err error) {
	for _, p := range []struct {
		epochs, hidden int
		dst            **ProbeResult
	}{{s.ProbeEpochs, 0, &linear}, {s.MLPProbeEpochs, MLPHidden, &mlp}} {
		if p.epochs == 0 {
			continue
		}
		if ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
		name := "linear probe"
		if p.hidden > 0 {
			name = fmt.Sprintf("MLP probe (%d hidden units)", p.hidden)
		}
		dir, err := s.ProbeGraph(ctx, bank.Width(), s.Classes, p.hidden)
		if err != nil {
			return nil, nil, fmt.Errorf("%s on %d features, %d classes: %w", name, bank.Width(), s.Classes, err)
		}
		*p.dst, err = TrainProbe(dir, bank, bankLabels, queries, queryLabels, ProbeSettings{
			Epochs: p.epochs, BatchSize: min(s.ProbeBatch, bank.Len()), Seed: s.Seed, Session: s.Session,
		})
		if err != nil {
			return nil, nil, fmt.Errorf("%s on %d features, %d classes: %w", name, bank.Width(), s.Classes, err)
		}
	}
	return linear, mlp, nil
}

// convScores scores the last convolutional feature maps (s.ConvFeatures),
// which live only while they are scored (50,000 CIFAR-10 maps of 4×4×256
// are 819 MB): the kNN votes and the probes on the maps flattened
// (sc.Conv, and sc.MLPConv as before the field) and averaged over their
// positions (sc.ConvAvg).
func convScores(ctx context.Context, sc *Scores, trainLabels, testLabels []int, s Settings) error {
	train, test, release, err := s.ConvFeatures(ctx)
	if err != nil {
		return fmt.Errorf("the last convolutional map: %w", err)
	}
	defer release()
	if train.Len() != len(trainLabels) || test.Len() != len(testLabels) {
		return fmt.Errorf("the last convolutional map: %d and %d maps for %d and %d labels", train.Len(), test.Len(), len(trainLabels), len(testLabels))
	}
	c := s.ConvChannels
	if c < 1 || train.Dim%c != 0 {
		return fmt.Errorf("the last convolutional map: %d values a map, %d channels", train.Dim, c)
	}
	if sc.Conv, err = scores(ctx, train, trainLabels, test, testLabels, s); err != nil {
		return fmt.Errorf("the last convolutional map, flattened: %w", err)
	}
	sc.Conv.Dim = train.Dim
	sc.MLPConv, sc.ConvDim = sc.Conv.MLP, train.Dim
	trainAvg, testAvg := AveragePositions(train, c), AveragePositions(test, c)
	if sc.ConvAvg, err = scores(ctx, trainAvg, trainLabels, testAvg, testLabels, s); err != nil {
		return fmt.Errorf("the last convolutional map, averaged: %w", err)
	}
	sc.ConvAvg.Dim = c
	return nil
}

// AveragePositions is each row of maps (h·w positions of c channels,
// row-major h×w×c) averaged over its positions (graph.AveragePositions, as
// encoder.ConvAvg computes them): c values a row.
func AveragePositions(maps knn.Features, c int) knn.Features {
	out := knn.Features{Dim: c, Data: make([]float32, maps.Len()*c)}
	graph.AveragePositions(out.Data, maps.Data, c)
	return out
}

// pixelScores are the raw-pixel figures.
func pixelScores(ctx context.Context, train, test Split, s Settings) (*Scores, error) {
	bank, labels := train.Pixels(s.PixelScale, s.PixelOffset), train.Labels
	if bank.Index = PixelSample(bank.Len(), bank.Dim, s.PixelBankBytes, s.Seed); bank.Index != nil {
		labels = make([]int, len(bank.Index))
		for i, k := range bank.Index {
			labels[i] = train.Labels[k]
		}
	}
	s.MLPProbeEpochs = 0 // the MLP probe is the features' (as in the paper's Table 1)
	sc, err := scores(ctx, bank, labels, test.Pixels(s.PixelScale, s.PixelOffset), test.Labels, s)
	if err != nil {
		return nil, fmt.Errorf("raw-pixel baseline: %w", err)
	}
	sc.BankImages, sc.BankOf = bank.Len(), len(train.Labels)
	return sc, nil
}

// Retrieval is one retrieval grid's content: test queries (rows of the test
// split) and, for each, its K nearest training images (rows of the training
// split, nearest first) by one metric.
type Retrieval struct {
	Metric     knn.Metric
	Queries    []int
	Neighbours []int // len(Queries)·K
	K          int
}

// retrievals finds what the retrieval grids show: GridRows random test
// queries (seeded) with their nearest training images, by cosine similarity
// and by Euclidean distance.
func retrievals(ctx context.Context, s Settings, train, test Split) ([]Retrieval, error) {
	if s.GridRows == 0 {
		return nil, nil
	}
	n := len(test.Labels)
	rng := rand.New(rand.NewPCG(uint64(s.Seed), 0x9e1d))
	picks := rng.Perm(n)[:min(s.GridRows, n)]
	queries := test.Features
	q := knn.Features{Dim: queries.Dim}
	for _, p := range picks {
		q.Data = append(q.Data, queries.Data[p*queries.Dim:(p+1)*queries.Dim]...)
	}
	k := min(s.GridNeighbours, train.Features.Len())
	var out []Retrieval
	for _, metric := range []knn.Metric{knn.Cosine, knn.L2} {
		nb, err := knn.Search(ctx, train.Features, q, k, knn.Options{Metric: metric, Session: s.Session})
		if err != nil {
			return nil, fmt.Errorf("retrieval grids, %s: %w", metric, err)
		}
		r := Retrieval{Metric: metric, Queries: picks, K: k}
		for _, ix := range nb.Index {
			r.Neighbours = append(r.Neighbours, int(ix))
		}
		out = append(out, r)
	}
	return out, nil
}
