package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/infomax/infomax/config"
	"github.com/infomax/infomax/exporter"
	"github.com/infomax/infomax/internal/store"
	"github.com/infomax/infomax/run"
	"github.com/infomax/infomax/train"
)

// DefaultConfig is what `runner train` trains with no --config: the
// Fashion-MNIST default, as `make train` does.
const DefaultConfig = "configs/fashion_mnist.yaml"

// trainOptions are the flags of `runner train`.
type trainOptions struct {
	ConfigFile string
	RunDir     string
	MaxSteps   int64
	Resume     bool
	SkipBad    bool           // same as data.skip_bad
	Flags      *pflag.FlagSet // config overrides; may be nil
}

func trainCmd() *cobra.Command {
	var o trainOptions
	cmd := &cobra.Command{
		Use:   "train",
		Short: "train on the config's data set, writing checkpoints, metrics and a kNN report",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.Flags = cmd.Flags()
			return runTrain(cmd.Context(), o, cmd.OutOrStdout())
		},
	}
	configFlags(cmd, &o.ConfigFile)
	cmd.Flags().StringVar(&o.RunDir, "run-dir", "", "folder for checkpoints, metrics and the report (default runs/<name>); s3://B/P or gs://B/P keeps it in a bucket")
	cmd.Flags().Int64Var(&o.MaxSteps, "max-steps", 0, "stop after this many steps in all (0: the config's epochs)")
	cmd.Flags().BoolVar(&o.Resume, "resume", false, "continue from the run folder's latest checkpoint")
	cmd.Flags().BoolVar(&o.SkipBad, "skip-bad", false, "leave out images that fail to decode, and report them (same as --data.skip_bad)")
	return cmd
}

// runTrain is `runner train`: it resolves the config (defaults, file,
// environment, flags) and package train does the rest.
func runTrain(ctx context.Context, o trainOptions, out io.Writer) error {
	file, err := configFile(ctx, o, out)
	if err != nil {
		return err
	}
	cfg, err := config.Load(file, o.Flags)
	if err != nil {
		return err
	}
	if err := cfg.CheckData(); err != nil {
		return fmt.Errorf("config %s: %w", file, err)
	}
	if o.SkipBad {
		cfg.Data.SkipBad = true
	}
	// Training's freed Go heap (its read-ahead window: up to 117 MiB for
	// Tiny ImageNet) goes back to the system before the evaluation, which
	// would otherwise peak above training (docs/data.md).
	return train.Fit(ctx, cfg, train.Options{RunDir: o.RunDir, MaxSteps: o.MaxSteps, Resume: o.Resume, BeforeEvaluation: debug.FreeOSMemory, Command: selfCommand()}, out)
}

// configFile is the config to train with: --config, else the run folder's
// own config.yaml on --resume, else the default.
func configFile(ctx context.Context, o trainOptions, out io.Writer) (string, error) {
	switch {
	case o.ConfigFile != "":
		return o.ConfigFile, nil
	case o.Resume && store.IsURL(o.RunDir):
		// The bucket's run, pulled into its work folder (training finds
		// it there).
		local, err := run.Pull(ctx, o.RunDir, out)
		if err != nil {
			return "", err
		}
		return filepath.Join(local, run.ConfigFile), nil
	case o.Resume && o.RunDir != "":
		file := filepath.Join(o.RunDir, run.ConfigFile)
		if _, err := os.Stat(file); err != nil {
			return "", fmt.Errorf("--resume: %s has no %s, so it holds no run to continue (was it stopped before it started?): start it with --config FILE --run-dir %s", o.RunDir, run.ConfigFile, o.RunDir)
		}
		return file, nil
	}
	root, err := exporter.Root()
	if err != nil {
		return "", fmt.Errorf("no --config given, and the default %s was not found: %w", DefaultConfig, err)
	}
	fmt.Fprintf(out, "train: no --config given: training the default, %s\n", DefaultConfig)
	return filepath.Join(root, DefaultConfig), nil
}

// selfCommand is how this process was started, for the hints training
// prints: go run ./runner under go run (or go test), else the path it was
// run by.
func selfCommand() []string {
	exe, _ := os.Executable()
	return runnerCommand(exe, os.Args[0])
}

// runnerCommand is selfCommand's rule: a binary that go run (or go test)
// built lives in a go-build folder under the temporary directory (nil: the
// go run default); anything else is named as it was started (a bare name
// was found on PATH, a relative path works from where it was started).
func runnerCommand(exe, arg0 string) []string {
	if exe == "" || arg0 == "" || strings.Contains(filepath.ToSlash(exe), "/go-build") {
		return nil
	}
	return []string{arg0}
}
