// Package run owns a run folder: its layout, its creation for training, its opening.
//
// Package run owns a run folder: what lives in it and under which names, how
// it is created for training and opened for everything else, and the
// options of every TensorFlow session a run opens.
//
//	RUN/config.yaml      the resolved config (data.path absolute)
//	RUN/model/           the SavedModel the run trains, with its manifest
//	RUN/checkpoints/     TensorFlow checkpoints and latest.json (package checkpoint)
//	RUN/metrics.jsonl    one line per logged step and per kNN monitor point
//	RUN/events.out.tfevents.*, loss.png, knn_curve.png
//	RUN/report.json, report.md, retrieval_*.png, features_*.npy, projector/  (package eval)
//
// A run folder holds everything needed to use it, and names nothing outside
// itself but its data: copied or moved anywhere, opened from any working
// directory, it trains on, evaluates, encodes and searches. Open never
// writes, so a read-only copy serves every reader; Create (training) is the
// only writer of the folder's own files.
//
// A run folder may also be a bucket's prefix (s3://, gs://): Fetch copies
// one into a read-only local cache for readers, and Remote trains one
// through a local work folder that it uploads as the run goes.
package run

import (
	"github.com/infomax/infomax/internal/store"

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
)

// Names inside a run folder.
const (
	ConfigFile     = "config.yaml"
	ModelDir       = "model"
	CheckpointsDir = "checkpoints"
	MetricsFile    = "metrics.jsonl"
)

// Run is a run folder, opened.
type Run struct {
	// Dir is the folder's absolute path.
	Dir string
	// Config is the run's config.yaml. Its data section may be changed
	// before LoadData (the data moved: data.path); its spec may not (the
	// model checks it).
	Config *config.Resolved
	// Hash is the spec hash of Config, which the model's manifest and every
	// checkpoint of the run carry too.
	Hash        string
	Checkpoints checkpoint.Dir
	// State is the latest complete checkpoint when the run was opened (nil:
	// none yet).
	State *checkpoint.State
	// Precision says what the run computes in and why, for a person:
	// "bfloat16 (auto: AMX)". Set by Create.
	Precision string
	// model is the folder of the run's SavedModel: Dir/model, or for a run
	// folder of the older layout, the export_dir its config names.
	model string
}

// ErrOldLayout means a run folder has no model/ of its own (it was trained
// before run folders carried their SavedModel) and its config's export_dir
// does not hold that model either.
var ErrOldLayout = errors.New("a run folder of the older layout (no model/ inside)")

// Open opens an existing run folder for reading: its config.yaml, its model
// (the manifest is checked against the config's spec when the model loads)
// and its latest checkpoint. It writes nothing.
func Open(dir string) (*Run, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if fi, err := os.Stat(abs); err != nil {
		return nil, fmt.Errorf("run folder %s: %w", dir, err)
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("run folder %s: not a folder", dir)
	}
	file := filepath.Join(abs, ConfigFile)
	if _, err := os.Stat(file); err != nil {
		return nil, fmt.Errorf("%s is not a run folder: it has no %s (`runner train --run-dir DIR` makes one)", dir, ConfigFile)
	}
	cfg, err := config.LoadRun(file, nil)
	if err != nil {
		return nil, err
	}
	r := newRun(abs, cfg)
	if r.State, err = r.Checkpoints.Latest(); err != nil {
		if errors.Is(err, checkpoint.ErrNone) {
			return nil, fmt.Errorf("%s: no checkpoint yet (training stopped before its first save): resume it with `runner train --run-dir %s --resume`", dir, dir)
		}
		return nil, err
	}
	if !cfg.SameWeights(r.State.ConfigHash) {
		return nil, fmt.Errorf("%s: the checkpoint was trained from spec %.12s, the run's %s says %.12s (was %s edited?)",
			dir, r.State.ConfigHash, ConfigFile, r.Hash, ConfigFile)
	}
	if r.model, err = r.findModel(); err != nil {
		return nil, err
	}
	return r, nil
}

func newRun(abs string, cfg *config.Resolved) *Run {
	_, hash := cfg.SpecJSON()
	return &Run{Dir: abs, Config: cfg, Hash: hash,
		Checkpoints: checkpoint.Dir{Path: filepath.Join(abs, CheckpointsDir), Keep: cfg.Train.KeepCheckpoints}}
}

// findModel is the folder of the run's SavedModel: model/, or for the older
// layout the export_dir of its config (relative to the working directory,
// as it was then) when that holds the run's spec.
func (r *Run) findModel() (string, error) {
	own := filepath.Join(r.Dir, ModelDir)
	if _, err := os.Stat(own); err == nil {
		man, err := graph.ReadManifest(own)
		if err != nil {
			return "", fmt.Errorf("%s: the run's model: %w", r.Dir, err)
		}
		if man.ConfigHash != r.Hash {
			return "", fmt.Errorf("%s: its model/ was exported from spec %.12s, its %s says %.12s (was %s edited?)", r.Dir, man.ConfigHash, ConfigFile, r.Hash, ConfigFile)
		}
		return own, nil
	}
	if old := r.Config.ExportDir; old != "" {
		if man, err := graph.ReadManifest(old); err == nil && man.ConfigHash == r.Hash {
			return old, nil
		}
	}
	return "", fmt.Errorf("%s: %w, and its export_dir %q does not hold its SavedModel (spec %.12s) from here: "+
		"update it with `runner upgrade --run-dir %s --export-dir EXPORT` (EXPORT: the folder `runner export --config %s` writes), "+
		"or run from the folder it was trained in", r.Dir, ErrOldLayout, r.Config.ExportDir, r.Hash, r.Dir, filepath.Join(r.Dir, ConfigFile))
}

// Session is the options of every TensorFlow session the run opens
// (training, encoding, kNN, the linear probe): its thread pools and device.
func (r *Run) Session() graph.Options {
	t := r.Config.Train
	return graph.Options{IntraOpThreads: t.IntraOpThreads, InterOpThreads: t.InterOpThreads, Device: r.Config.Device}
}

// CheckpointPrefix is the full prefix of the run's checkpoint of step (0:
// the latest when the run was opened) and its step; a step that has no kept
// checkpoint is an error that lists the kept ones.
func (r *Run) CheckpointPrefix(step int64) (string, int64, error) {
	if r.State == nil {
		return "", 0, fmt.Errorf("%s: no checkpoint yet", r.Dir)
	}
	if step < 0 {
		return "", 0, fmt.Errorf("step %d: want a checkpoint's step (0: the latest)", step)
	}
	if step == 0 || step == r.State.Step {
		return r.Checkpoints.PrefixPath(r.State.Prefix), r.State.Step, nil
	}
	p := r.Checkpoints.PrefixPath(checkpoint.Prefix(step))
	if _, err := os.Stat(p + ".index"); err != nil {
		return "", 0, fmt.Errorf("%s has no checkpoint of step %d (kept: %s)", r.Dir, step, strings.Join(r.State.Kept, ", "))
	}
	return p, step, nil
}

// ModelPath is the folder of the run's SavedModel.
func (r *Run) ModelPath() string { return r.model }

// LoadModel loads the run's SavedModel in a session with opts (Session(),
// changed as the caller needs: a precision, say), checks its manifest
// against the run's spec and restores the latest checkpoint, if there is one.
// The caller closes the model.
func (r *Run) LoadModel(opts graph.Options) (*graph.Model, error) {
	if r.model == "" {
		return nil, fmt.Errorf("%s: no model installed (a run being created)", r.Dir)
	}
	opts.ConfigHash = r.Hash
	m, err := graph.Load(r.model, opts)
	if err != nil {
		return nil, fmt.Errorf("the model of %s: %w", r.Dir, err)
	}
	if r.State != nil {
		if err := m.Restore(r.Checkpoints.PrefixPath(r.State.Prefix)); err != nil {
			m.Close()
			return nil, fmt.Errorf("%s: restoring its checkpoint at step %d: %w", r.Dir, r.State.Step, err)
		}
	}
	return m, nil
}

// Create prepares dir to train cfg: a new run folder, or with resume an
// existing one to continue. It checks the folder's state against resume and
// the spec, removes the remains of checkpoint saves that failed, and writes
// config.yaml (data.path and data.cache_dir made absolute, so that the run
// opens from anywhere). The model is installed by InstallModel when
// HasModel is false.
func Create(dir string, cfg *config.Resolved, resume bool, out io.Writer) (*Run, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if err := absolutePaths(cfg); err != nil {
		return nil, err
	}
	precision, err := precisionOf(abs, cfg, resume)
	if err != nil {
		return nil, err
	}
	r := newRun(abs, cfg)
	r.Precision = precision
	state, err := r.Checkpoints.Latest()
	switch {
	case err == nil && !resume:
		return nil, fmt.Errorf("%s already has a checkpoint at step %d: pass --resume to continue it, or choose another --run-dir", dir, state.Step)
	case err == nil && !cfg.SameWeights(state.ConfigHash):
		return nil, fmt.Errorf("%s was trained from another config (spec hash %.12s, now %.12s): resume with its own %s", dir, state.ConfigHash, r.Hash, filepath.Join(dir, ConfigFile))
	case err == nil:
		r.State = state
	case errors.Is(err, checkpoint.ErrNone) && resume:
		fmt.Fprintf(out, "train: --resume: %s has no checkpoint yet (the run stopped before its first save): starting at step 0\n", r.Checkpoints.Path)
	case errors.Is(err, checkpoint.ErrNone):
	default:
		return nil, fmt.Errorf("%s: its checkpoints: %w", dir, err)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return nil, fmt.Errorf("run folder: %w", r.readOnly(err))
	}
	if err := r.Checkpoints.Clean(); err != nil {
		return nil, fmt.Errorf("run folder: removing the remains of failed checkpoint saves: %w", r.readOnly(err))
	}
	if err := fsutil.WriteFileAtomic(filepath.Join(abs, ConfigFile), cfg.YAML()); err != nil {
		return nil, fmt.Errorf("run folder: %w", r.readOnly(err))
	}
	own := filepath.Join(abs, ModelDir)
	if man, err := graph.ReadManifest(own); err == nil && man.ConfigHash == r.Hash {
		r.model = own
	}
	return r, nil
}

// precisionOf settles cfg's model.precision against the run folder's (on
// resume) and says what it is and why. A run keeps the precision it was
// trained in when auto would choose another on this CPU (a run moved to a
// CPU of another kind); a precision given in the config or by
// --model.precision changes it: float32 and bfloat16 train the same float32
// variables, so the checkpoint's weights carry over (a new model/ is
// installed).
func precisionOf(abs string, cfg *config.Resolved, resume bool) (string, error) {
	p := cfg.Model.Precision
	var was string
	if resume {
		if old, err := config.LoadRun(filepath.Join(abs, ConfigFile), nil); err == nil {
			was = old.Model.Precision
		}
	}
	switch {
	case was == "" && cfg.PrecisionAuto != "":
		return fmt.Sprintf("%s (%s)", p, cfg.PrecisionAuto), nil
	case was == "":
		return fmt.Sprintf("%s (%s)", p, givenBy(cfg)), nil
	case was != p && cfg.PrecisionAuto != "":
		why := cfg.PrecisionAuto
		cfg.Model.Precision, cfg.PrecisionAuto = was, ""
		return fmt.Sprintf("%s (the run's, kept: %s would choose %s on this CPU; --model.precision %s changes it)", was, why, p, p), nil
	case was != p:
		return fmt.Sprintf("%s (changed from the run's %s by %s; the checkpoint's weights carry over)", p, was, givenBy(cfg)), nil
	}
	auto, why, err := config.AutoPrecision()
	if err != nil {
		return "", err
	}
	if auto != p {
		return fmt.Sprintf("%s (the run's; %s would choose %s on this CPU; --model.precision %s changes it)", p, why, auto, auto), nil
	}
	return fmt.Sprintf("%s (the run's; %s)", p, why), nil
}

// givenBy says who gave model.precision.
func givenBy(cfg *config.Resolved) string {
	switch cfg.Sources["model.precision"] {
	case config.FromFlag:
		return "--model.precision"
	case config.FromEnv:
		return "INFOMAX_MODEL_PRECISION"
	case config.FromFile:
		return "model.precision in " + filepath.Base(cfg.File)
	}
	return "model.precision"
}

// absolutePaths makes the config's local paths absolute, as the run folder
// records them.
func absolutePaths(cfg *config.Resolved) error {
	for _, p := range []*string{&cfg.Data.Path, &cfg.ExportDir} {
		if *p == "" || filepath.IsAbs(*p) || store.IsURL(*p) {
			continue
		}
		abs, err := filepath.Abs(*p)
		if err != nil {
			return err
		}
		*p = abs
	}
	if c := cfg.Data.CacheDir; c != "" && c != "off" && !filepath.IsAbs(c) {
		abs, err := filepath.Abs(c)
		if err != nil {
			return err
		}
		cfg.Data.CacheDir = abs
	}
	return nil
}

// HasModel says whether the run folder holds its SavedModel (of its spec).
func (r *Run) HasModel() bool { return r.model != "" }

// InstallModel copies the SavedModel exported to export (of the run's spec:
// checked) into the run folder as model/, whole or not at all.
func (r *Run) InstallModel(export string) error {
	man, err := graph.ReadManifest(export)
	if err != nil {
		return err
	}
	if man.ConfigHash != r.Hash {
		return fmt.Errorf("install %s into %s: it was exported from spec %.12s, the run's is %.12s", export, r.Dir, man.ConfigHash, r.Hash)
	}
	if r.State != nil && !r.Config.SameWeights(r.State.ConfigHash) {
		return fmt.Errorf("install %s into %s: the run has checkpoints of another spec already; its model stays", export, r.Dir)
	}
	own := filepath.Join(r.Dir, ModelDir)
	tmp, err := os.MkdirTemp(r.Dir, ".model-*")
	if err != nil {
		return fmt.Errorf("install the model: %w", err)
	}
	defer os.RemoveAll(tmp)
	copied := filepath.Join(tmp, ModelDir)
	if err := os.CopyFS(copied, os.DirFS(export)); err != nil {
		return fmt.Errorf("install the model from %s: %w", export, err)
	}
	if err := fsutil.SyncDir(copied); err != nil {
		return err
	}
	if err := os.RemoveAll(own); err != nil { // another spec's, from a run that never saved
		return err
	}
	if err := os.Rename(copied, own); err != nil {
		return fmt.Errorf("install the model: %w", err)
	}
	r.model = own
	return fsutil.SyncDir(r.Dir)
}

// Upgrade gives a run folder of the older layout its own model/: the
// SavedModel of its spec found in export (or, when export is "", in the
// export_dir its config names).
func Upgrade(dir, export string) (*Run, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	cfg, err := config.LoadRun(filepath.Join(abs, ConfigFile), nil)
	if err != nil {
		return nil, err
	}
	r := newRun(abs, cfg)
	if _, err := os.Stat(filepath.Join(abs, ModelDir)); err == nil {
		return nil, fmt.Errorf("%s has its model/ already: nothing to upgrade", dir)
	}
	if export != "" {
		cfg.ExportDir = export
	}
	if err := absolutePaths(cfg); err != nil {
		return nil, err
	}
	if err := r.InstallModel(cfg.ExportDir); err != nil {
		return nil, err
	}
	return r, fsutil.WriteFileAtomic(filepath.Join(abs, ConfigFile), cfg.YAML())
}

// StepsPerEpoch is the number of training steps in an epoch of images: the
// last partial batch of an epoch is dropped.
func StepsPerEpoch(images, batch int) (int64, error) {
	if batch < 1 || images/batch == 0 {
		return 0, fmt.Errorf("train.batch_size = %d is larger than the %d training images", batch, images)
	}
	return int64(images / batch), nil
}
