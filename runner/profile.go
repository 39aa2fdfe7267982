package main

import (
	"cmp"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/infomax/infomax/config"
	"github.com/infomax/infomax/exporter"
)

// profileCmd is `runner profile`: where a training step of the config's
// model spends its time, on this CPU.
func profileCmd() *cobra.Command {
	var file string
	var steps int
	cmd := &cobra.Command{
		Use:   "profile",
		Short: "time a training step of the config's model op by op on this CPU (exporting it first if needed)",
		Long: `Exports the config's SavedModel when it is missing or stale (as train does),
then runs its train_step on batches of train.batch_size seeded random images
with the config's thread pools, and traces --steps steps: the time of each
kind of op (convolution forward and backward, matrix products, batch norm,
Adam, …) and of the 15 slowest nodes with their shapes. The first line names
the CPU, its bfloat16 flags (amx_bf16, avx512_bf16) and whether TensorFlow's
oneDNN kernels are on. model.precision auto is resolved for this CPU, as train
does; --model.precision float32 or bfloat16 profiles the other.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if steps < 1 {
				return fmt.Errorf("--steps %d: want at least 1", steps)
			}
			cfg, err := config.Load(file, cmd.Flags())
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "profile: %s, precision %s (%s), batch %d\n", cfg.Name, cfg.Model.Precision, cmp.Or(cfg.PrecisionAuto, "given"), cfg.Train.BatchSize)
			if err := runExport(cmd.Context(), &cfg.Config, false, out, cmd.ErrOrStderr()); err != nil {
				return err
			}
			t := cfg.Train
			return exporter.Profile(cmd.Context(), cfg.ExportDir, t.BatchSize, steps, t.IntraOpThreads, t.InterOpThreads, out, cmd.ErrOrStderr())
		},
	}
	configFlags(cmd, &file)
	cmd.Flags().IntVar(&steps, "steps", 20, "how many steps to trace (after a warm-up of half as many, at least 10)")
	return cmd
}
