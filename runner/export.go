package main

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/infomax/infomax/config"
	"github.com/infomax/infomax/pyexport"
)

func exportCmd() *cobra.Command {
	var file string
	var force bool
	cmd := &cobra.Command{
		Use:   "export",
		Short: "export the config's SavedModel (only when missing or stale, unless --force)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(file, cmd.Flags())
			if err != nil {
				return err
			}
			return runExport(cmd.Context(), &cfg.Config, force, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	configFlags(cmd, &file)
	cmd.Flags().BoolVar(&force, "force", false, "export even if the SavedModel is up to date")
	return cmd
}

func runExport(ctx context.Context, cfg *config.Config, force bool, stdout, stderr io.Writer) error {
	fresh, err := pyexport.Fresh(cfg, cfg.ExportDir)
	if err != nil {
		return err
	}
	if fresh && !force {
		fmt.Fprintf(stdout, "export: %s is up to date\n", cfg.ExportDir)
		return nil
	}
	return pyexport.Export(ctx, cfg, cfg.ExportDir, stdout, stderr)
}
