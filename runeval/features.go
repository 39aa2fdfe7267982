package runeval

import (
	"cmp"
	"errors"

	"context"
	"fmt"
	"io"
	"iter"
	"slices"
	"time"

	"github.com/infomax/infomax/config"
	"github.com/infomax/infomax/eval"
	"github.com/infomax/infomax/exporter"
	"github.com/infomax/infomax/graph"
	"github.com/infomax/infomax/internal/store"
	"github.com/infomax/infomax/knn"
	"github.com/infomax/infomax/report"
	"github.com/infomax/infomax/run"
	"github.com/infomax/infomax/search"
)

// FeaturesOptions say which sharded features EvaluateFeatures scores and
// how.
type FeaturesOptions struct {
	// Queries and Bank are sharded folders with classes (embed --classes),
	// local or in an object store: the queries are classified by their
	// nearest bank rows, and the probes train on the bank.
	Queries, Bank string
	Dir           string // report.json and report.md go here (a folder or a store prefix)
	Eval          config.Eval
	Seed          int64
	// BankBlockBytes bounds the bank features the kNN search holds at once
	// (0: DefaultBankBlockBytes); a shard larger than it is one block. The
	// probes, when on, hold the whole bank.
	BankBlockBytes int64
	Session        graph.Options
	ProbeGraph     func(ctx context.Context, dim, classes, hidden int) (string, error)
}

// DefaultBankBlockBytes is the bank a features evaluation holds at once
// for its kNN search (about 65,000 features of 256 dimensions).
const DefaultBankBlockBytes = 64 << 20

// OpenFeatures evaluates sharded features (`runner eval --features`) with
// the evaluation settings of the run that made them (its config.yaml's
// eval section, threads and device), or the defaults when that run folder
// is not here, changed by v.
func OpenFeatures(ctx context.Context, queries, bank, dir string, v Overrides, out io.Writer) (*eval.Report, error) {
	m, err := search.ReadEmbedding(ctx, bank)
	if err != nil {
		return nil, fmt.Errorf("--bank: %w", err)
	}
	modelDir := "" // the probe's program: the making run's, if it opens here, else the source tree's
	o := FeaturesOptions{Queries: queries, Bank: bank, Dir: dir, Eval: config.Defaults().Eval, Seed: config.Defaults().Seed,
		ProbeGraph: func(ctx context.Context, dim, classes, hidden int) (string, error) {
			program, err := exporter.ProbeProgram(modelDir)
			if err != nil {
				return "", err
			}
			return exporter.ExportProbe(ctx, program, dim, classes, hidden, out)
		}}
	local, err := run.Local(ctx, m.Run)
	var r *run.Run
	if err == nil {
		r, err = run.Open(local)
	}
	if err == nil {
		o.Eval, o.Seed, o.Session = r.Config.Eval, r.Config.Seed, r.Session()
		modelDir = r.ModelPath()
		fmt.Fprintf(out, "eval: the evaluation settings of %s (weighted k %d, t %g; majority k %d; probe %d epochs)\n",
			r.Dir, o.Eval.WeightedK, o.Eval.Temperature, o.Eval.K, o.Eval.ProbeEpochs)
	} else {
		fmt.Fprintf(out, "eval: %s does not open here (%v): the default evaluation settings\n", m.Run, err)
	}
	v.apply(&o.Eval)
	return EvaluateFeatures(ctx, o, out)
}

// errStop ends a shard walk whose reader stopped.
var errStop = errors.New("stopped")

// labelledShards reads the shards of a sharded folder in order, keeping
// the images with a class (as indices into classes); it says how many it
// left out.
type labelledShards struct {
	ctx     context.Context
	dir     string
	m       *search.Embedding
	classes map[string]int
	skipped int
}

func (l *labelledShards) each(fn func(f knn.Features, labels []int) error) error {
	l.skipped = 0
	for _, name := range l.m.Shards {
		sh, err := search.ReadShard(l.ctx, l.dir, l.m, name)
		if err != nil {
			return err
		}
		d := sh.Features.Dim
		keep := knn.Features{Dim: d, Data: sh.Features.Data[:0]}
		var labels []int
		for i, c := range sh.Labels {
			if c == "" {
				l.skipped++
				continue
			}
			keep.Data = append(keep.Data, sh.Features.Data[i*d:(i+1)*d]...) // in place: i ≥ rows kept
			labels = append(labels, l.classes[c])
		}
		if err := fn(keep, labels); err != nil {
			return err
		}
	}
	return nil
}

// EvaluateFeatures scores sharded features by the kNN classifiers of a run's
// report (cosine weighted, majority and 1-NN; Euclidean 1-NN) and, when
// asked, the linear and MLP probes, and writes report.json and report.md
// into o.Dir. The queries are held in memory; the bank is streamed shard by
// shard through the search, a block of at most o.BankBlockBytes at a time,
// once per metric.
func EvaluateFeatures(ctx context.Context, o FeaturesOptions, out io.Writer) (*eval.Report, error) {
	t0 := time.Now()
	mq, err := search.ReadEmbedding(ctx, o.Queries)
	if err != nil {
		return nil, fmt.Errorf("queries: %w", err)
	}
	mb, err := search.ReadEmbedding(ctx, o.Bank)
	if err != nil {
		return nil, fmt.Errorf("bank: %w", err)
	}
	for _, c := range []struct {
		name, dir string
		m         *search.Embedding
	}{{"queries", o.Queries, mq}, {"bank", o.Bank, mb}} {
		if c.m.Labels == "" {
			return nil, fmt.Errorf("%s %s: its images have no classes: embed them with --classes folders (or a path,class file)", c.name, c.dir)
		}
	}
	if mq.Dim != mb.Dim || mq.ConfigHash != mb.ConfigHash || mq.Step != mb.Step {
		return nil, fmt.Errorf("the queries (%s: spec %.12s, step %d, dimension %d) and the bank (%s: spec %.12s, step %d, dimension %d) were made by different models: embed both with one run",
			o.Queries, mq.ConfigHash, mq.Step, mq.Dim, o.Bank, mb.ConfigHash, mb.Step, mb.Dim)
	}
	if fq, fb := cmp.Or(mq.Feature, search.FeatureZMean), cmp.Or(mb.Feature, search.FeatureZMean); fq != fb {
		return nil, fmt.Errorf("the queries (%s) are %s features, the bank (%s) %s: embed both with one --features", o.Queries, fq, o.Bank, fb)
	}
	names := slices.Compact(slices.Sorted(slices.Values(append(slices.Clone(mb.Classes), mq.Classes...))))
	classes := map[string]int{}
	for i, c := range names {
		classes[c] = i
	}
	qs := &labelledShards{ctx: ctx, dir: o.Queries, m: mq, classes: classes}
	queries := knn.Features{Dim: mq.Dim}
	var queryLabels []int
	if err := qs.each(func(f knn.Features, labels []int) error {
		queries.Data = append(queries.Data, f.Data...)
		queryLabels = append(queryLabels, labels...)
		return nil
	}); err != nil {
		return nil, err
	}
	bankRows := mb.Images - mb.Unlabelled
	if len(queryLabels) == 0 || bankRows < 1 {
		return nil, fmt.Errorf("%d labelled queries and %d labelled bank images: want some of each", len(queryLabels), bankRows)
	}
	e := o.Eval
	probes := e.ProbeEpochs > 0 || e.MLPProbeEpochs > 0
	block := o.BankBlockBytes
	if block <= 0 {
		block = DefaultBankBlockBytes
	}
	bs := &labelledShards{ctx: ctx, dir: o.Bank, m: mb, classes: classes}
	var bankLabels []int
	var bankAll knn.Features // for the probes
	blocks := func(first bool) iter.Seq2[knn.Rows, error] {
		return func(yield func(knn.Rows, error) bool) {
			pending := knn.Features{Dim: mb.Dim}
			stopped := false
			err := bs.each(func(f knn.Features, labels []int) error {
				if first {
					bankLabels = append(bankLabels, labels...)
					if probes {
						bankAll.Data = append(bankAll.Data, f.Data...)
					}
				}
				pending.Data = append(pending.Data, f.Data...)
				if int64(len(pending.Data))*4 >= block {
					if !yield(pending, nil) {
						stopped = true
						return errStop
					}
					pending = knn.Features{Dim: mb.Dim}
				}
				return nil
			})
			if stopped {
				return
			}
			if err != nil {
				yield(nil, err)
				return
			}
			if pending.Len() > 0 {
				yield(pending, nil)
			}
		}
	}
	t1 := time.Now()
	first := true
	res, err := eval.KNNWith(func(m knn.Metric, k int) (*knn.Neighbours, error) {
		defer func() { first = false }()
		return knn.SearchBlocks(ctx, blocks(first), queries, k, knn.Options{Metric: m, Session: o.Session})
	}, bankRows, &bankLabels, queryLabels, len(names), eval.KNNSettings{K: e.K, WeightedK: e.WeightedK, Temperature: e.Temperature})
	if err != nil {
		return nil, err
	}
	rep := eval.Report{Run: mb.Run, Data: "features", DataPath: o.Queries, Bank: o.Bank, Step: mb.Step, ConfigHash: mb.ConfigHash, Precision: precisions(mq.Precision, mb.Precision),
		Feature: "z_mean", FeatureDim: mb.Dim, TrainSize: len(bankLabels), TestSize: len(queryLabels), Classes: len(names),
		Model: eval.Scores{KNN: res}, KNNSec: time.Since(t1).Seconds(), KNNBlockBytes: block,
		Time: time.Now().UTC().Format(time.RFC3339)}
	if probes {
		bankAll.Dim = mb.Dim
		rep.Model.Probe, rep.Model.MLP, err = eval.Probes(ctx, bankAll, bankLabels, queries, queryLabels, eval.Settings{
			Classes: len(names), ProbeEpochs: e.ProbeEpochs, ProbeBatch: e.ProbeBatchSize, MLPProbeEpochs: e.MLPProbeEpochs,
			Seed: o.Seed, Session: o.Session, ProbeGraph: o.ProbeGraph,
		})
		if err != nil {
			return nil, err
		}
	}
	if err := report.WriteReport(ctx, o.Dir, &rep); err != nil {
		return nil, err
	}
	fmt.Fprint(out, rep.Markdown())
	fmt.Fprintf(out, "report: %s, report.md (%d queries and %d bank images with classes; %d and %d without, left out; kNN %.1fs, all %.1fs)\n",
		store.Join(o.Dir, "report.json"), len(queryLabels), len(bankLabels), qs.skipped, bs.skipped, rep.KNNSec, time.Since(t0).Seconds())
	return &rep, nil
}

// precisions is what a report of queries and bank embedded in precisions q
// and b says: one precision, or both ("queries bfloat16, bank float32").
func precisions(q, b string) string {
	if q == b {
		return b
	}
	return fmt.Sprintf("queries %s, bank %s", cmp.Or(q, "unrecorded"), cmp.Or(b, "unrecorded"))
}
