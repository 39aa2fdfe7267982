package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/infomax/infomax/config"
	"github.com/infomax/infomax/exporter"
	"github.com/infomax/infomax/run"
)

// trainedOptions say which run's trained encoder to export, and where.
type trainedOptions struct {
	RunDir, Out, Format string
	Step                int64 // 0: the latest checkpoint
}

func exportCmd() *cobra.Command {
	var file string
	var force bool
	var t trainedOptions
	cmd := &cobra.Command{
		Use:   "export",
		Short: "export the config's SavedModel (only when missing or stale, unless --force), or with --run-dir a run's trained encoder",
		Long: `Without --run-dir: exports the config's SavedModel, the graph that training
starts from (only when missing or stale, unless --force).

With --run-dir RUN --out DIR: writes the run's trained encoder on its own, for
other runtimes: --format savedmodel (default) is a SavedModel with the
checkpoint's weights, a serving_default signature from uint8 images of the
run's shape to z_mean, and manifest.json (spec hash, step, input shape and
scaling); --format onnx is DIR/encoder.onnx (converted by tf2onnx) with the
manifest. The latest checkpoint, or --step N's. DIR is written whole or not at
all; an existing DIR must be such an export (it is replaced) or empty.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if t.RunDir != "" {
				if file != "" || force {
					return errors.New("export --run-dir exports a trained run as it is: --config and --force do not apply")
				}
				return runExportTrained(cmd.Context(), t, cmd.OutOrStdout(), cmd.ErrOrStderr())
			}
			if t.Out != "" || t.Step != 0 || cmd.Flags().Changed("format") {
				return errors.New("export: --out, --format and --step go with --run-dir (a trained run's encoder)")
			}
			cfg, err := config.Load(file, cmd.Flags())
			if err != nil {
				return err
			}
			return runExport(cmd.Context(), &cfg.Config, force, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	configFlags(cmd, &file)
	cmd.Flags().BoolVar(&force, "force", false, "export even if the SavedModel is up to date")
	cmd.Flags().StringVar(&t.RunDir, "run-dir", "", "a trained run: export its encoder with the checkpoint's weights")
	cmd.Flags().StringVar(&t.Out, "out", "", "with --run-dir: the folder to write")
	cmd.Flags().StringVar(&t.Format, "format", "savedmodel", "with --run-dir: savedmodel or onnx")
	cmd.Flags().Int64Var(&t.Step, "step", 0, "with --run-dir: the checkpoint of this step (0: the latest)")
	return cmd
}

func runExport(ctx context.Context, cfg *config.Config, force bool, stdout, stderr io.Writer) error {
	fresh, err := exporter.Fresh(cfg, cfg.ExportDir)
	if err != nil {
		return err
	}
	if fresh && !force {
		fmt.Fprintf(stdout, "export: %s is up to date\n", cfg.ExportDir)
		return nil
	}
	return exporter.Export(ctx, cfg, cfg.ExportDir, stdout, stderr)
}

func runExportTrained(ctx context.Context, o trainedOptions, stdout, stderr io.Writer) error {
	if o.Out == "" {
		return errors.New("export --run-dir: pass --out DIR, the folder to write the trained encoder into")
	}
	if o.Format != "savedmodel" && o.Format != "onnx" {
		return fmt.Errorf("export --format %q: want savedmodel or onnx", o.Format)
	}
	dir, err := run.Local(ctx, o.RunDir)
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	r, err := run.Open(dir)
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	prefix, step, err := r.CheckpointPrefix(o.Step)
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	return exporter.ExportTrained(ctx, r.ModelPath(), prefix, step, o.Out, o.Format, stdout, stderr)
}
