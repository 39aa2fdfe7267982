package train

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/infomax/infomax/checkpoint"
	"github.com/infomax/infomax/config"
	"github.com/infomax/infomax/graph"
	"github.com/infomax/infomax/internal/fsutil"
	"github.com/infomax/infomax/internal/runload"
	"github.com/infomax/infomax/pyexport"
)

// DefaultConfig is what `runner train` trains with no --config: the
// Fashion-MNIST default, as `make train` does.
const DefaultConfig = "configs/fashion_mnist.yaml"

// setUp resolves the config, prepares the run folder, exports the SavedModel
// if it is missing or stale, loads it and the data, and restores the latest
// checkpoint; it returns the step to start from.
func setUp(ctx context.Context, o Options, out io.Writer) (*run, int64, error) {
	file, err := configFile(o, out)
	if err != nil {
		return nil, 0, err
	}
	cfg, err := config.Load(file, o.Flags)
	if err != nil {
		return nil, 0, err
	}
	if err := cfg.CheckData(); err != nil {
		return nil, 0, fmt.Errorf("config %s: %w", file, err)
	}
	if o.SkipBad {
		cfg.Data.SkipBad = true
	}
	dir := o.RunDir
	if dir == "" {
		dir = filepath.Join("runs", cfg.Name)
	}
	_, hash := cfg.SpecJSON()
	r := &run{cfg: cfg, dir: dir, hash: hash, out: out, lrScale: 1, ckpts: checkpoint.Dir{Path: filepath.Join(dir, "checkpoints"), Keep: cfg.Train.KeepCheckpoints}}

	// The run folder first: it is cheap to check, and a run killed during
	// start-up then still holds the config it was started with.
	state, err := r.checkResume(o.Resume)
	if err != nil {
		return nil, 0, err
	}
	export, why, err := exportDirFor(&cfg.Config, out)
	if err != nil {
		return nil, 0, fmt.Errorf("the SavedModel of %s: %w", file, err)
	}
	cfg.ExportDir = export // config.yaml records the SavedModel the run uses
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, 0, fmt.Errorf("run folder: %w", err)
	}
	if err := fsutil.WriteFileAtomic(filepath.Join(dir, "config.yaml"), cfg.YAML()); err != nil {
		return nil, 0, fmt.Errorf("run folder: %w", err)
	}
	if why != "" {
		fmt.Fprintf(out, "train: exporting the SavedModel for %s to %s: %s\n", file, export, why)
		if err := pyexport.Export(ctx, &cfg.Config, export, out, out); err != nil {
			return nil, 0, fmt.Errorf("%w (export alone: go run ./runner export --config %s)", err, file)
		}
	}
	r.model, err = runload.Model(cfg)
	if err != nil {
		return nil, 0, err
	}
	fail := func(err error) (*run, int64, error) {
		r.model.Close()
		return nil, 0, err
	}
	fmt.Fprintln(out, devicesLine(r.model, cfg.Device))
	if err := r.loadData(out); err != nil {
		return fail(err)
	}
	if tr, te := r.labelledCounts(); cfg.Eval.EveryEpochs > 0 && (tr == 0 || te == 0) {
		return fail(fmt.Errorf("eval.every_epochs = %d: the kNN monitor needs labelled training and test images, and %s has %d and %d: set eval.every_epochs: 0 (or --eval.every_epochs 0)",
			cfg.Eval.EveryEpochs, cfg.Data.Path, tr, te))
	}
	if state == nil {
		return r, 0, nil
	}
	if err := r.model.Restore(r.ckpts.PrefixPath(state.Prefix)); err != nil {
		return fail(err)
	}
	if state.LRScale > 0 {
		r.lrScale = state.LRScale
	}
	fmt.Fprintf(out, "train: resumed %s from %s (step %d, epoch %d, position %d)\n", dir, state.Prefix, state.Step, state.Epoch, state.EpochStep)
	return r, state.Step, nil
}

// configFile is the config to train with: --config, else the run folder's
// own config.yaml on --resume, else the default.
func configFile(o Options, out io.Writer) (string, error) {
	switch {
	case o.ConfigFile != "":
		return o.ConfigFile, nil
	case o.Resume && o.RunDir != "":
		file := filepath.Join(o.RunDir, "config.yaml")
		if _, err := os.Stat(file); err != nil {
			return "", fmt.Errorf("--resume: %s has no config.yaml, so it holds no run to continue (was it stopped before it started?): start it with --config FILE --run-dir %s", o.RunDir, o.RunDir)
		}
		return file, nil
	}
	root, err := pyexport.Root()
	if err != nil {
		return "", fmt.Errorf("no --config given, and the default %s was not found: %w", DefaultConfig, err)
	}
	fmt.Fprintf(out, "train: no --config given: training the default, %s\n", DefaultConfig)
	return filepath.Join(root, DefaultConfig), nil
}

// checkResume returns the checkpoint to resume from (nil: start at step 0),
// or an error when the folder's state and --resume disagree.
func (r *run) checkResume(resume bool) (*checkpoint.State, error) {
	state, err := r.ckpts.Latest()
	switch {
	case err == nil && !resume:
		return nil, fmt.Errorf("%s already has a checkpoint at step %d: pass --resume to continue it, or choose another --run-dir", r.dir, state.Step)
	case err == nil && state.ConfigHash != r.hash:
		return nil, fmt.Errorf("%s was trained from another config (spec hash %.12s, now %.12s): resume with its own %s", r.dir, state.ConfigHash, r.hash, filepath.Join(r.dir, "config.yaml"))
	case err == nil:
		return state, nil
	case errors.Is(err, checkpoint.ErrNone) && resume:
		fmt.Fprintf(r.out, "train: --resume: %s has no checkpoint yet (the run stopped before its first save): starting at step 0\n", r.ckpts.Path)
		return nil, nil
	case errors.Is(err, checkpoint.ErrNone):
		return nil, nil
	default:
		return nil, err
	}
}

// exportDirFor picks the folder of the SavedModel for cfg's spec, and says
// why it must be exported ("" when it is there already). Exports are never
// overwritten under another run: when cfg.ExportDir holds the SavedModel of
// another spec (a flag such as --loss.alpha 0 changed the spec), this
// spec's goes beside it, to EXPORT_DIR-<spec hash, 12 digits>.
func exportDirFor(cfg *config.Config, out io.Writer) (dir, why string, err error) {
	why, other, err := pyexport.Stale(cfg, cfg.ExportDir)
	if err != nil || !other {
		return cfg.ExportDir, why, err
	}
	_, hash := cfg.SpecJSON()
	alt := strings.TrimRight(cfg.ExportDir, "/") + "-" + hash[:12]
	fmt.Fprintf(out, "train: %s holds the SavedModel of another spec; this config's is %s\n", cfg.ExportDir, alt)
	why, _, err = pyexport.Stale(cfg, alt)
	return alt, why, err
}

// devicesLine says which devices TensorFlow sees and which one runs.
func devicesLine(m *graph.Model, device string) string {
	var devs []string
	for _, d := range m.Devices {
		devs = append(devs, d.Type+" "+d.Name)
	}
	line := fmt.Sprintf("devices: %s; device %s: running on %s", strings.Join(devs, ", "), device, m.Using)
	if (device == "auto" || device == "") && m.Using != "GPU" {
		line += " (TensorFlow sees no GPU: this build is CPU-only or no GPU is visible; see the README's GPU section)"
	}
	return line
}
