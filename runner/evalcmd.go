package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/infomax/infomax/eval"
	"github.com/infomax/infomax/train"

	"github.com/spf13/cobra"

	"github.com/infomax/infomax/internal/fsutil"
)

type evalOptions struct {
	RunDirs []string
	Table   string // write the comparison table here too
	Curve   int    // measure the kNN curve from kept checkpoints, every that many epochs
}

func evalCmd() *cobra.Command {
	var o evalOptions
	cmd := &cobra.Command{
		Use:   "eval",
		Short: "evaluate trained runs: kNN, linear probe, raw-pixel baseline, retrieval grids, features",
		Long: `Evaluates the latest checkpoint of each --run-dir: kNN accuracy (cosine:
weighted k = 200, majority k = 20, 1-NN; Euclidean 1-NN), a linear probe, the
same for raw pixels, retrieval grids and the features as .npy. With several
--run-dir it prints them in one table (an ablation, e.g. alpha = 0 vs beta = 0).
With --curve N it first measures the kNN monitor's weighted kNN for each kept
checkpoint at the end of every N-th epoch that the run has not measured (a run
trained without eval.every_epochs, or with train.keep_checkpoints raised to
keep them), so report.json and knn_curve.png have the curve.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runEval(cmd.Context(), o, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringArrayVar(&o.RunDirs, "run-dir", nil, "a run folder (repeat to compare runs)")
	cmd.Flags().StringVar(&o.Table, "table", "", "also write the comparison table (Markdown) to this file")
	cmd.Flags().IntVar(&o.Curve, "curve", 0, "first measure the kNN curve from the kept checkpoints, every N epochs (0: no)")
	return cmd
}

func runEval(ctx context.Context, o evalOptions, out io.Writer) error {
	if o.Curve < 0 {
		return fmt.Errorf("eval: --curve %d: must be >= 0 (every that many epochs; 0: no curve)", o.Curve)
	}
	if len(o.RunDirs) == 0 {
		return errors.New("eval: pass --run-dir DIR (repeat it to compare runs)")
	}
	var reps []*eval.Report
	for _, dir := range o.RunDirs {
		rep, err := train.EvaluateRun(ctx, dir, o.Curve, out)
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
