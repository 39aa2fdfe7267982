package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"

	"github.com/infomax/infomax/eval"
	"github.com/infomax/infomax/runeval"

	"github.com/spf13/cobra"

	"github.com/infomax/infomax/internal/fsutil"
)

type evalOptions struct {
	RunDirs  []string
	Table    string // write the comparison table here too
	Curve    int    // measure the kNN curve from kept checkpoints, every that many epochs
	Out      string // write the report here instead of the run folder
	DataPath string // the data set, when it is no longer where the run's config.yaml says
	MLPProbe int    // train the MLP probe this many epochs (0: as the run's config says)
	// Features and Bank are sharded folders with classes (embed's output):
	// score the first against the second instead of a run's own data.
	Features, Bank string
	Probe          *int // the linear probe's epochs with --features (nil: as the run's config says)
}

func evalCmd() *cobra.Command {
	var o evalOptions
	var probe int
	cmd := &cobra.Command{
		Use:   "eval",
		Short: "evaluate trained runs: kNN, linear (and MLP) probe, raw-pixel baseline, retrieval grids, features",
		Long: `Evaluates the latest checkpoint of each --run-dir: kNN accuracy (cosine:
weighted k = 200, majority k = 20, 1-NN; Euclidean 1-NN), a linear probe, the
same for raw pixels, retrieval grids and the features as .npy. With several
--run-dir it prints them in one table (an ablation, e.g. alpha = 0 vs beta = 0).
With --curve N it first measures the kNN monitor's weighted kNN for each kept
checkpoint at the end of every N-th epoch that the run has not measured (a run
trained without eval.every_epochs, or with train.keep_checkpoints raised to
keep them), so report.json and knn_curve.png have the curve.

The report goes into the run folder, or with --out into another folder (a
read-only run folder, or one evaluated on other data through --data.path).

With --features QUERIES --bank BANK --out DIR it scores features embedded at
scale instead (embed's output folders, with classes from embed --classes;
local, s3:// or gs://): the same kNN classifiers and probes, with the
evaluation settings of the run that made the features. The bank is streamed
through the search in blocks, so it need not fit in memory; the probes, when
on, hold it (--eval.probe_epochs 0 turns the linear probe off).

--eval.probe_epochs and --eval.mlp_probe_epochs set the probes' training for
this evaluation only (the run's config is not changed): a probe trained
longer tells whether its figure is the features' or its optimiser's.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cmd.Flags().Changed("eval.probe_epochs") {
				o.Probe = &probe
			}
			return runEval(cmd.Context(), o, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringArrayVar(&o.RunDirs, "run-dir", nil, "a run folder (repeat to compare runs)")
	cmd.Flags().StringVar(&o.Table, "table", "", "also write the comparison table (Markdown) to this file")
	cmd.Flags().IntVar(&o.Curve, "curve", 0, "first measure the kNN curve from the kept checkpoints, every N epochs (0: no)")
	cmd.Flags().StringVar(&o.Out, "out", "", "write the report, grids and features here instead of the run folder (with several --run-dir: OUT/<run folder's name>)")
	cmd.Flags().IntVar(&o.MLPProbe, "eval.mlp_probe_epochs", 0, "also train the Deep InfoMax paper's MLP probe (200 hidden units) this many epochs (0: as the run's config says)")
	cmd.Flags().StringVar(&o.Features, "features", "", "score these embedded features (embed's output with classes) instead of a run's data")
	cmd.Flags().StringVar(&o.Bank, "bank", "", "with --features: the embedded features that are the kNN bank and the probes' training set")
	cmd.Flags().IntVar(&probe, "eval.probe_epochs", 0, "train the linear probe this many epochs (0: none; default: as the run's config says)")
	cmd.Flags().StringVar(&o.DataPath, "data.path", "", "the data set's path, when it is no longer where the run's config.yaml says")
	return cmd
}

func runEval(ctx context.Context, o evalOptions, out io.Writer) error {
	if o.Curve < 0 {
		return fmt.Errorf("eval: --curve %d: must be >= 0 (every that many epochs; 0: no curve)", o.Curve)
	}
	if o.MLPProbe < 0 {
		return fmt.Errorf("eval: --eval.mlp_probe_epochs %d: must be >= 0 (0: as the run's config says)", o.MLPProbe)
	}
	if o.Probe != nil && *o.Probe < 0 {
		return fmt.Errorf("eval: --eval.probe_epochs %d: must be >= 0 (0: no linear probe)", *o.Probe)
	}
	ov := runeval.Overrides{ProbeEpochs: o.Probe, MLPProbeEpochs: o.MLPProbe}
	if o.Features != "" || o.Bank != "" {
		switch {
		case o.Features == "" || o.Bank == "" || o.Out == "":
			return errors.New("eval: --features QUERIES needs --bank BANK and --out DIR")
		case len(o.RunDirs) > 0 || o.Curve > 0 || o.DataPath != "":
			return errors.New("eval: --features evaluates embedded features, not runs: leave out --run-dir, --curve and --data.path")
		}
		_, err := runeval.OpenFeatures(ctx, o.Features, o.Bank, o.Out, ov, out)
		if err != nil {
			return fmt.Errorf("eval --features %s: %w", o.Features, err)
		}
		return nil
	}
	if len(o.RunDirs) == 0 {
		return errors.New("eval: pass --run-dir DIR (repeat it to compare runs), or --features with --bank")
	}
	var reps []*eval.Report
	for _, dir := range o.RunDirs {
		ro := runeval.Options{Out: o.Out, Curve: o.Curve, Overrides: ov}
		if o.Out != "" && len(o.RunDirs) > 1 {
			ro.Out = filepath.Join(o.Out, filepath.Base(filepath.Clean(dir)))
		}
		rep, err := runeval.EvaluateFolder(ctx, dir, o.DataPath, ro, out)
		if err != nil {
			return fmt.Errorf("eval %s: %w", dir, err)
		}
		if rep != nil {
			reps = append(reps, rep)
		}
	}
	if len(reps) > 1 || o.Table != "" {
		t := eval.CompareTable(reps)
		fmt.Fprint(out, "\n"+t)
		if o.Table != "" {
			return fsutil.WriteFileAtomic(o.Table, []byte(t))
		}
	}
	return nil
}
