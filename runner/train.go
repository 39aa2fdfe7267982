package main

import (
	"context"
	"io"

	"github.com/spf13/cobra"

	"github.com/infomax/infomax/train"
)

// trainOptions are train.Options (the flags fill them).
type trainOptions = train.Options

func trainCmd() *cobra.Command {
	var o trainOptions
	cmd := &cobra.Command{
		Use:   "train",
		Short: "train on the config's data set, writing checkpoints, metrics and a kNN report",
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.Flags = cmd.Flags()
			return runTrain(cmd.Context(), o, cmd.OutOrStdout())
		},
	}
	configFlags(cmd, &o.ConfigFile)
	cmd.Flags().StringVar(&o.RunDir, "run-dir", "", "folder for checkpoints, metrics and the report (default runs/<name>)")
	cmd.Flags().Int64Var(&o.MaxSteps, "max-steps", 0, "stop after this many steps in all (0: the config's epochs)")
	cmd.Flags().BoolVar(&o.Resume, "resume", false, "continue from the run folder's latest checkpoint")
	cmd.Flags().BoolVar(&o.SkipBad, "skip-bad", false, "leave out images that fail to decode, and report them (same as --data.skip_bad)")
	return cmd
}

// runTrain is `runner train`: package train does the work.
func runTrain(ctx context.Context, o trainOptions, out io.Writer) error {
	return train.Run(ctx, o, out)
}
