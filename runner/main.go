// Command runner trains and evaluates InfoMax models from Go.
//
//	go run ./runner train  [--config configs/fashion_mnist.yaml] [--run-dir DIR] [--max-steps N] [--resume]
//	go run ./runner eval   --run-dir DIR [--run-dir DIR2 ...] [--table FILE]
//	go run ./runner index  --run-dir DIR --images FOLDER --out FILE
//	go run ./runner search --index FILE --query IMAGE [-k 9] [--strip FILE]
//	go run ./runner export --config FILE
//	go run ./runner config --config FILE
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

	"github.com/infomax/infomax/config"
	"github.com/infomax/infomax/train"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newRoot().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "runner:", err)
		if errors.Is(err, train.ErrInterrupted) {
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
	root.AddCommand(exportCmd(), trainCmd(), evalCmd(), indexCmd(), searchCmd(), configCmd(), dataCmd())
	return root
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
