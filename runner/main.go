// Command runner trains and evaluates InfoMax models from Go.
//
//	go run ./runner train  [--config configs/fashion_mnist.yaml] [--run-dir DIR] [--max-steps N] [--resume]
//	go run ./runner eval   --run-dir DIR [--run-dir DIR2 ...] [--table FILE] [--out DIR]
//	go run ./runner index  --run-dir DIR --images FOLDER --out FILE
//	go run ./runner search --index FILE --query IMAGE [-k 9] [--strip FILE]
//	go run ./runner export --config FILE
//	go run ./runner config --config FILE
//	go run ./runner upgrade --run-dir DIR [--export-dir EXPORT]
//	go run ./runner data fetch cifar10|fashion-mnist|tiny-imagenet [--dir D]
//	go run ./runner data shards --format F --path FOLDER|ZIP --out DIR [--per-shard 1000]
//
// train with no --config trains configs/fashion_mnist.yaml, and exports its
// SavedModel first when it is missing or stale. TensorFlow's own log lines are
// off unless --verbose (or INFOMAX_VERBOSE=1) is given.
//
// Every config key can be overridden by a flag (--train.batch_size 32) or an
// environment variable (INFOMAX_TRAIN_BATCH_SIZE=32). The commands are thin:
// each builds its options and calls a function that tests call directly.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	_ "github.com/infomax/infomax/buckets" // s3:// and gs:// paths
	"github.com/infomax/infomax/config"
	"github.com/infomax/infomax/run"
	_ "github.com/infomax/infomax/tflog"    // TensorFlow's log lines off unless --verbose
	_ "github.com/infomax/infomax/tfonednn" // TensorFlow's oneDNN kernels on every CPU
	"github.com/infomax/infomax/train"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newRoot().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "runner:", err)
		if errors.Is(err, train.ErrInterrupted) || errors.Is(err, context.Canceled) {
			os.Exit(130)
		}
		os.Exit(1)
	}
}

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "runner",
		Short:         "Deep InfoMax (the seed's variant) on TensorFlow, from Go",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	// Read by package tflog before TensorFlow loads (see there); declared
	// here so that cobra accepts it on every command.
	root.PersistentFlags().Bool("verbose", false, "show TensorFlow's own log lines (same as INFOMAX_VERBOSE=1)")
	root.AddCommand(exportCmd(), trainCmd(), evalCmd(), indexCmd(), searchCmd(), configCmd(), dataCmd(), upgradeCmd(), profileCmd())
	return root
}

// noArgs refuses positional arguments: every command but `data fetch` takes
// flags only, and an argument is most often a value meant for a bool flag
// (--eval.after_training false: a bool flag takes no separate value).
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	if a := args[0]; a == "true" || a == "false" {
		return fmt.Errorf("%s: unexpected argument %q: a bool flag takes its value after '=' (write --flag=%s, not --flag %s)", cmd.CommandPath(), a, a, a)
	}
	return fmt.Errorf("%s: unexpected argument %q: it takes flags only (see --help)", cmd.CommandPath(), args[0])
}

func upgradeCmd() *cobra.Command {
	var dir, export string
	cmd := &cobra.Command{
		Use:   "upgrade",
		Short: "give a run folder of the older layout its own copy of its SavedModel (model/)",
		Long: `Run folders trained before they carried their SavedModel name it by the
config's export_dir, relative to the folder they were trained from. upgrade
copies that SavedModel (or --export-dir's) into the run folder as model/ and
records absolute paths in its config.yaml, so that it opens from anywhere.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := run.Upgrade(dir, export)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "upgrade: %s now holds its SavedModel in %s\n", r.Dir, r.ModelPath())
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "run-dir", "", "the run folder")
	cmd.Flags().StringVar(&export, "export-dir", "", "the SavedModel of the run's spec (default: its config's export_dir)")
	cmd.MarkFlagRequired("run-dir")
	return cmd
}

// configFlags adds --config and one flag per config key.
func configFlags(cmd *cobra.Command, file *string) {
	cmd.Flags().StringVar(file, "config", "", "YAML config file (configs/*.yaml)")
	config.AddFlags(cmd.Flags())
}

func configCmd() *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "config",
		Short: "print the resolved config and where each value came from",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(file, cmd.Flags())
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "%s", cfg.YAML())
			fmt.Fprintln(out, "# sources:")
			for _, k := range config.Keys() {
				fmt.Fprintf(out, "#   %-26s %s\n", k, cfg.Sources[k])
			}
			_, hash := cfg.SpecJSON()
			fmt.Fprintf(out, "# spec hash: %s\n", hash)
			return nil
		},
	}
	configFlags(cmd, &file)
	return cmd
}
