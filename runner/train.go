package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/infomax/infomax/checkpoint"
	"github.com/infomax/infomax/config"
	"github.com/infomax/infomax/data"
	"github.com/infomax/infomax/graph"
	"github.com/infomax/infomax/internal/fsutil"
	"github.com/infomax/infomax/internal/runload"
	"github.com/infomax/infomax/pyexport"
	"github.com/infomax/infomax/tboard"
)

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

// run is one training run's state.
type run struct {
	tb     *tboard.Writer
	cfg    *config.Resolved
	dir    string
	model  *graph.Model
	splits *data.Splits
	ckpts  checkpoint.Dir
	hash   string
	out    io.Writer
}

func runTrain(ctx context.Context, o trainOptions, out io.Writer) error {
	r, start, err := setUp(ctx, o, out)
	if err != nil {
		return err
	}
	defer r.model.Close()
	train, batch := r.splits.Train, r.cfg.Train.BatchSize
	perEpoch, total, err := schedule(train.Len(), batch, r.cfg.Train.Epochs, o.MaxSteps)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "train: %s, %d images of %dx%dx%d, batch %d, %d steps per epoch, %d steps (step %d now)\n",
		r.cfg.Data.Format, train.Len(), train.H, train.W, train.C, batch, perEpoch, total, start)
	log, err := r.newStepLog(start, total, perEpoch)
	if err != nil {
		return err
	}
	defer log.close()

	// The loop: a step, its log line, its checkpoint; Ctrl-C saves and
	// stops; a non-finite loss stops or rolls back to the last checkpoint.
	batches := prefetch(ctx, train, r.cfg.Seed, batch, perEpoch, start, total)
	defer func() { batches.stop() }()
	step, waited := start, time.Duration(0)
	began := time.Now()
	rollbacks, forced := 0, false
	for step < total {
		if ctx.Err() != nil {
			return r.interrupted(step, perEpoch, log.prog)
		}
		pixels := batches.next()
		losses, err := r.trainStep(pixels, step+1, &forced)
		batches.done(pixels)
		if err != nil {
			return fmt.Errorf("step %d: %w", step+1, err)
		}
		if term := losses.NonFinite(log.terms); term != "" {
			// These weights are already spoilt: never save them.
			log.prog.finish()
			if r.cfg.Train.OnNonFinite != "rollback" || rollbacks >= r.cfg.Train.MaxRollbacks {
				return r.nonFiniteError(step+1, term, losses, rollbacks)
			}
			st, err := r.rollBack(step+1, term, losses)
			if err != nil {
				return err
			}
			rollbacks++
			waited += batches.stop()
			step = st.Step
			batches = prefetch(ctx, train, r.cfg.Seed, batch, perEpoch, step, total)
			continue
		}
		step++
		if losses.Step != step {
			return fmt.Errorf("step %d: the graph's step counter says %d: the checkpoint and latest.json disagree", step, losses.Step)
		}
		if err := log.step(step, losses, waited+batches.waited); err != nil {
			return err
		}
		if step%int64(r.cfg.Train.CheckpointEvery) == 0 || step == total {
			if _, err := r.save(step, perEpoch); err != nil {
				return err
			}
		}
	}
	log.prog.finish()
	wall := time.Since(began)
	fmt.Fprintf(out, "train: %d steps in %s; waiting for data %.2f%% of that time\n",
		step-start, wall.Round(time.Second), 100*(waited+batches.waited).Seconds()/wall.Seconds())
	return r.finish(ctx, step, log.terms)
}

// schedule is the number of steps per epoch (the last partial batch of an
// epoch is dropped) and in all (maxSteps, if set, stops earlier).
func schedule(images, batch, epochs int, maxSteps int64) (perEpoch, total int64, err error) {
	perEpoch = int64(images / batch)
	if perEpoch == 0 {
		return 0, 0, fmt.Errorf("train.batch_size = %d is larger than the %d training images", batch, images)
	}
	total = int64(epochs) * perEpoch
	if maxSteps > 0 && maxSteps < total {
		total = maxSteps
	}
	return perEpoch, total, nil
}

// trainStep runs one step (with NaN noise at train.force_nonfinite_at, once).
func (r *run) trainStep(pixels []byte, step int64, forced *bool) (graph.Losses, error) {
	if step == r.cfg.Train.ForceNonFiniteAt && !*forced {
		*forced = true
		return r.forceNonFinite(pixels)
	}
	return r.model.TrainStep(pixels)
}

// interrupted saves the run where Ctrl-C stopped it and says how to resume.
func (r *run) interrupted(step, perEpoch int64, prog *progress) error {
	if _, err := r.save(step, perEpoch); err != nil {
		return err
	}
	prog.finish()
	fmt.Fprintf(r.out, "\ntrain: stopped at step %d, checkpoint written; resume with:\n  go run ./runner train --run-dir %s --resume\n", step, r.dir)
	return fmt.Errorf("training stopped at step %d: %w", step, errInterrupted)
}

// finish plots the losses and evaluates the trained encoder.
func (r *run) finish(ctx context.Context, step int64, terms []string) error {
	if err := plotLosses(r.dir, terms); err != nil {
		return err
	}
	fmt.Fprintf(r.out, "train: loss curves in %s\n", filepath.Join(r.dir, "loss.png"))
	rep, err := r.evaluate(ctx, step, r.out)
	if err != nil || rep == nil {
		return err
	}
	return r.logReport(rep)
}

// stepLog writes every train.log_every steps (and the first and last) one
// line to metrics.jsonl, TensorBoard and the terminal.
type stepLog struct {
	r            *run
	metrics      *metricsFile
	prog         *progress
	terms        []string
	start, total int64
	perEpoch     int64
	lastLog      time.Time
	lastStep     int64
	lastWait     time.Duration
}

func (r *run) newStepLog(start, total, perEpoch int64) (*stepLog, error) {
	metrics, err := openMetrics(r.dir, start)
	if err != nil {
		return nil, err
	}
	if r.tb, err = tboard.NewWriter(r.dir); err != nil {
		metrics.Close()
		return nil, fmt.Errorf("TensorBoard events: %w", err)
	}
	return &stepLog{r: r, metrics: metrics, prog: newProgress(r.out, total, start), terms: r.model.Manifest.LossTerms,
		start: start, total: total, perEpoch: perEpoch, lastLog: time.Now(), lastStep: start}, nil
}

func (l *stepLog) close() {
	l.prog.finish()
	l.r.tb.Close()
	l.metrics.Close()
}

// step records step's losses; waited is the data wait so far.
func (l *stepLog) step(step int64, losses graph.Losses, waited time.Duration) error {
	l.prog.step(step)
	if step%int64(l.r.cfg.Train.LogEvery) != 0 && step != l.total && step != l.start+1 {
		return nil
	}
	batch := l.r.cfg.Train.BatchSize
	now := time.Now()
	ips := float64((step-l.lastStep)*int64(batch)) / now.Sub(l.lastLog).Seconds()
	eta := time.Duration(float64(l.total-step) * float64(batch) / ips * float64(time.Second))
	wait := (waited - l.lastWait).Seconds() / now.Sub(l.lastLog).Seconds()
	l.lastLog, l.lastStep, l.lastWait = now, step, waited
	epoch := float64(step) / float64(l.perEpoch)
	if err := l.metrics.write(step, epoch, losses, ips, wait, l.terms); err != nil {
		return fmt.Errorf("metrics.jsonl: %w", err)
	}
	if err := l.r.logScalars(step, losses, ips, wait); err != nil {
		return fmt.Errorf("TensorBoard events: %w", err)
	}
	text := termsText(losses, l.terms)
	l.prog.log(fmt.Sprintf("step %d/%d  epoch %.2f  loss %.4f%s  %.0f img/s  ETA %s", step, l.total, epoch, losses.Loss, text, ips, eta.Round(time.Second)),
		fmt.Sprintf("epoch %.2f  loss %.4f%s  %.0f img/s", epoch, losses.Loss, text, ips))
	return nil
}

// forceNonFinite runs the step with NaN noise (train.force_nonfinite_at, a
// test hook): z, and so every loss term, becomes NaN.
func (r *run) forceNonFinite(pixels []byte) (graph.Losses, error) {
	n := len(pixels) / r.model.Manifest.ImageBytes()
	eps := make([]float32, n*r.model.Manifest.FeatureDim)
	for i := range eps {
		eps[i] = float32(math.NaN())
	}
	perm := make([]int32, n)
	for i := range perm {
		perm[i] = int32((i + 1) % n)
	}
	return r.model.TrainStepWithNoise(pixels, eps, perm, perm)
}

func (r *run) nonFiniteError(step int64, term string, l graph.Losses, rollbacks int) error {
	last := "none yet"
	if st, err := r.ckpts.Latest(); err == nil {
		last = fmt.Sprintf("%s (step %d)", st.Prefix, st.Step)
	}
	v := l.Loss
	if term != "loss" {
		v = l.Terms[term]
	}
	return fmt.Errorf("step %d: loss term %q is %v after %d rollbacks: stopped; no checkpoint of these weights was written (last good checkpoint: %s). "+
		"Resume with a lower optimizer.learning_rate, or set train.on_nonfinite: rollback", step, term, v, rollbacks, last)
}

// rollBack restores the last good checkpoint and lowers the learning rate.
func (r *run) rollBack(step int64, term string, l graph.Losses) (*checkpoint.State, error) {
	st, err := r.ckpts.Latest()
	if err != nil {
		return nil, fmt.Errorf("step %d: loss term %q is not finite and there is no checkpoint to roll back to: %w", step, term, err)
	}
	if err := r.model.Restore(r.ckpts.PrefixPath(st.Prefix)); err != nil {
		return nil, err
	}
	lr := l.LearningRate * r.cfg.Train.LRBackoff
	if err := r.model.SetLearningRate(lr); err != nil {
		return nil, err
	}
	fmt.Fprintf(r.out, "train: step %d: loss term %q is not finite; restored %s (step %d) and lowered the learning rate to %g\n",
		step, term, st.Prefix, st.Step, lr)
	r.tb.Scalars(st.Step, map[string]float64{"rollback/learning_rate": lr})
	return st, nil
}

// defaultConfig is what `runner train` trains with no --config: the
// Fashion-MNIST default, as `make train` does.
const defaultConfig = "configs/fashion_mnist.yaml"

// setUp resolves the config, prepares the run folder, exports the SavedModel
// if it is missing or stale, loads it and the data, and restores the latest
// checkpoint; it returns the step to start from.
func setUp(ctx context.Context, o trainOptions, out io.Writer) (*run, int64, error) {
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
	r := &run{cfg: cfg, dir: dir, hash: hash, out: out, ckpts: checkpoint.Dir{Path: filepath.Join(dir, "checkpoints"), Keep: cfg.Train.KeepCheckpoints}}

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
	if r.splits, err = loadData(&cfg.Config, r.model.Manifest, out); err != nil {
		return fail(err)
	}
	if state == nil {
		return r, 0, nil
	}
	if err := r.model.Restore(r.ckpts.PrefixPath(state.Prefix)); err != nil {
		return fail(err)
	}
	fmt.Fprintf(out, "train: resumed %s from %s (step %d, epoch %d, position %d)\n", dir, state.Prefix, state.Step, state.Epoch, state.EpochStep)
	return r, state.Step, nil
}

// configFile is the config to train with: --config, else the run folder's
// own config.yaml on --resume, else the default.
func configFile(o trainOptions, out io.Writer) (string, error) {
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
		return "", fmt.Errorf("no --config given, and the default %s was not found: %w", defaultConfig, err)
	}
	fmt.Fprintf(out, "train: no --config given: training the default, %s\n", defaultConfig)
	return filepath.Join(root, defaultConfig), nil
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
	why, err = pyexport.Stale(cfg, cfg.ExportDir)
	if err != nil || why == "" || !pyexport.OtherSpec(cfg, cfg.ExportDir) {
		return cfg.ExportDir, why, err
	}
	_, hash := cfg.SpecJSON()
	alt := strings.TrimRight(cfg.ExportDir, "/") + "-" + hash[:12]
	fmt.Fprintf(out, "train: %s holds the SavedModel of another spec; this config's is %s\n", cfg.ExportDir, alt)
	why, err = pyexport.Stale(cfg, alt)
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

func (r *run) save(step, perEpoch int64) (*checkpoint.State, error) {
	return r.ckpts.Save(r.model, checkpoint.State{
		Step: step, Epoch: int(step / perEpoch), EpochStep: int(step % perEpoch), ConfigHash: r.hash,
	})
}

func termsText(l graph.Losses, names []string) string {
	var b strings.Builder
	for _, n := range names {
		fmt.Fprintf(&b, "  %s %.4f", n, l.Terms[n])
	}
	return b.String()
}

// metricsFile appends one JSON object per logged step to metrics.jsonl.
type metricsFile struct {
	f *os.File
	w *bufio.Writer
}

// openMetrics opens DIR/metrics.jsonl for appending, first dropping lines
// beyond step start (logged after the checkpoint a resume starts from).
func openMetrics(dir string, start int64) (*metricsFile, error) {
	path := filepath.Join(dir, "metrics.jsonl")
	if raw, err := os.ReadFile(path); err == nil {
		var keep []byte
		for _, line := range strings.SplitAfter(string(raw), "\n") {
			var rec struct {
				Step int64 `json:"step"`
			}
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Step <= start && strings.HasSuffix(line, "\n") {
				keep = append(keep, line...)
			}
		}
		if err := fsutil.WriteFileAtomic(path, keep); err != nil {
			return nil, err
		}
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, err
	}
	return &metricsFile{f: f, w: bufio.NewWriter(f)}, nil
}

func (m *metricsFile) write(step int64, epoch float64, l graph.Losses, ips, dataWait float64, names []string) error {
	rec := map[string]any{"step": step, "epoch": epoch, "loss": l.Loss, "images_per_sec": ips, "data_wait": dataWait, "learning_rate": l.LearningRate}
	for _, n := range names {
		rec[n] = l.Terms[n]
	}
	line, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	m.w.Write(append(line, '\n'))
	return m.w.Flush()
}

func (m *metricsFile) Close() error { return m.f.Close() }
