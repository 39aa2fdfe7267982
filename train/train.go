// Package train is the training loop over a run folder.
//
// Package train is the training loop over a run folder (package run): given
// a resolved config, it prepares the folder, exports the SavedModel when the
// folder has none of its spec, loads the data, runs the training steps with a
// prefetched, seeded batch stream, logs every step through the run's Log and
// a progress bar, writes checkpoints, survives Ctrl-C, crashes and
// non-finite losses, runs the kNN monitor, and ends with the evaluation
// (runeval.Evaluate). `runner train` is a thin layer over Fit.
package train

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"strings"
	"time"

	"github.com/infomax/infomax/checkpoint"
	"github.com/infomax/infomax/config"
	"github.com/infomax/infomax/data"
	"github.com/infomax/infomax/graph"
	"github.com/infomax/infomax/internal/memstat"
	"github.com/infomax/infomax/report"
	"github.com/infomax/infomax/run"
	"github.com/infomax/infomax/runeval"
)

// Options of one training run; the config is resolved by the caller
// (config.Load: defaults, file, environment, flags).
type Options struct {
	RunDir   string // default runs/<config name>; s3://… or gs://… for a run folder in a bucket (run.Remote)
	MaxSteps int64  // stop after this many steps in all (0: the config's epochs)
	Resume   bool   // continue the run folder's latest checkpoint
	// BeforeEvaluation, if set, is called once training's data and batches
	// are released and before the evaluation after training: where a main
	// program may hand freed memory back to the system (the runner calls
	// debug.FreeOSMemory), a process-wide choice this package leaves to it.
	BeforeEvaluation func()
	// Command is how the hints this package prints (resume, evaluate,
	// export) start the runner, word by word (each quoted for the shell):
	// go run ./runner when empty; the runner sets its own path when it is a
	// built binary.
	Command []string
}

// command is o.Command as a shell would take it, or "go run ./runner".
func (o Options) command() string {
	if len(o.Command) == 0 {
		return "go run ./runner"
	}
	words := make([]string, len(o.Command))
	for i, w := range o.Command {
		words[i] = shellQuote(w)
	}
	return strings.Join(words, " ")
}

// trainer is one training run's state.
type trainer struct {
	run     *run.Run
	cfg     *config.Resolved
	model   *graph.Model
	data    *run.Data
	log     *run.Log
	out     io.Writer
	command string      // Options.command(), for the hints
	lrScale float64     // a scheduled learning rate's multiplier after rollbacks (1: none)
	shown   string      // the run folder as the user named it (a bucket's URL, or the local folder)
	remote  *run.Remote // the run folder in a bucket, when it is there
}

// ErrInterrupted ends a run stopped by a signal (a cancelled ctx) after its
// checkpoint is written.
var ErrInterrupted = errors.New("interrupted")

// Fit trains cfg as o says, printing progress and the final report to out.
func Fit(ctx context.Context, cfg *config.Resolved, o Options, out io.Writer) (err error) {
	r, start, err := setUp(ctx, cfg, o, out)
	if err != nil {
		return err
	}
	defer r.model.Close()
	if r.remote != nil {
		defer func() { err = r.closeRemote(err) }()
	}
	return r.fit(ctx, start, o)
}

// closeRemote waits for the uploads of a run in a bucket and says where
// the run stands there; an upload error is the run's error unless it has
// one already (then it is printed).
func (r *trainer) closeRemote(err error) error {
	fmt.Fprintf(r.out, "train: uploading the rest of the run to %s\n", r.remote.URL)
	uerr := r.remote.Close()
	if uerr != nil && err != nil {
		fmt.Fprintf(r.out, "train: %v\n", uerr)
		return err
	}
	if uerr != nil {
		return uerr
	}
	if st := r.remote.Uploaded(); st != nil {
		fmt.Fprintf(r.out, "train: %s holds the run, its latest checkpoint at step %d\n", r.remote.URL, st.Step)
	}
	return err
}

// fit is Fit's training and evaluation, from step start.
func (r *trainer) fit(ctx context.Context, start int64, o Options) error {
	batch := r.cfg.Train.BatchSize
	images, _ := r.data.TrainingImages()
	perEpoch, total, err := schedule(images, batch, r.cfg.Train.Epochs, o.MaxSteps)
	if err != nil {
		return err
	}
	full := int64(r.cfg.Train.Epochs) * perEpoch // the learning rate schedule's length (--max-steps stops early within it)
	in := r.model.Manifest.Input.Shape
	fmt.Fprintf(r.out, "train: %s, %d images of %dx%dx%d, batch %d, %d steps per epoch, %d steps (step %d now)\n",
		r.cfg.Data.Format, images, in[0], in[1], in[2], batch, perEpoch, total, start)
	log, err := r.newStepLog(start, total, perEpoch)
	if err != nil {
		return err
	}
	defer log.close()
	r.log = log.log

	began := time.Now()
	// A run stopped during the kNN monitor measures that point first.
	if r.monitorDue(start, perEpoch, total) {
		curve, err := r.run.Curve(start)
		if err != nil {
			return err
		}
		if len(curve) == 0 || curve[len(curve)-1].Step != start {
			if err := r.runMonitor(ctx, log, start, perEpoch); err != nil {
				return err
			}
		}
	}

	// The loop: a step, its log line, its checkpoint; Ctrl-C saves and
	// stops; a non-finite loss stops or rolls back to the last checkpoint.
	batches := r.batches(ctx, perEpoch, start, total)
	defer func() {
		if batches != nil {
			batches.stop()
		}
	}()
	step, waited := start, time.Duration(0)
	rollbacks, forced := 0, false
	for step < total {
		if ctx.Err() != nil {
			return r.interrupted(step, perEpoch, log.prog)
		}
		pixels, err := batches.next()
		if err != nil {
			return fmt.Errorf("step %d: its batch: %w", step, err)
		}
		if err := r.scheduleLR(step+1, full); err != nil {
			return fmt.Errorf("step %d: %w", step+1, err)
		}
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
			st, err := r.rollBack(step+1, term, losses, full)
			if err != nil {
				return err
			}
			rollbacks++
			waited += batches.stop()
			step = st.Step
			batches = r.batches(ctx, perEpoch, step, total)
			continue
		}
		step++
		if losses.Step != step {
			return fmt.Errorf("step %d: the graph's step counter says %d: the checkpoint and latest.json disagree", step, losses.Step)
		}
		if err := log.step(step, losses, waited+batches.waited); err != nil {
			return fmt.Errorf("step %d: logging it in %s: %w", step, r.run.Dir, err)
		}
		if step%int64(r.cfg.Train.CheckpointEvery) == 0 || step == total {
			if _, err := r.save(step, perEpoch); err != nil {
				return fmt.Errorf("step %d: saving the checkpoint into %s: %w", step, r.run.Checkpoints.Path, err)
			}
		}
		if r.monitorDue(step, perEpoch, total) {
			if err := r.runMonitor(ctx, log, step, perEpoch); err != nil {
				return fmt.Errorf("step %d: the kNN monitor: %w", step, err)
			}
		}
	}
	log.prog.finish()
	wall := time.Since(began) - log.monitored
	// The batches' reader holds its read-ahead window (up to the shuffle
	// buffer's images): end it before the evaluation after training.
	waited += batches.stop()
	batches = nil
	fmt.Fprintf(r.out, "train: %d steps in %s (%.0f images/s); waiting for data %.2f%% of that time; peak resident memory %.0f MiB\n",
		step-start, wall.Round(time.Second), float64((step-start)*int64(batch))/wall.Seconds(),
		100*waited.Seconds()/wall.Seconds(), memstat.PeakMiB())
	if log.monitored > 0 {
		fmt.Fprintf(r.out, "train: and %s in the kNN monitor\n", log.monitored.Round(time.Second))
	}
	if r.data.Streams != nil {
		data.PrintBad(r.out, r.data.Streams.Train.Bad(), "skipped, each in its batch replaced by a copy of another image of the batch")
	}
	if o.BeforeEvaluation != nil && r.cfg.Eval.AfterTraining {
		o.BeforeEvaluation()
	}
	return r.finish(ctx, step, log.terms)
}

// runMonitor measures and logs one point of the kNN curve; Ctrl-C during it
// stops the run as during a step (checkpoint written; the resumed run
// measures the point again).
func (r *trainer) runMonitor(ctx context.Context, log *stepLog, step, perEpoch int64) error {
	t0 := time.Now()
	defer func() {
		// Its time is not training's: not in the images/s of the next log
		// line nor in the run's.
		d := time.Since(t0)
		log.monitored += d
		log.lastLog = log.lastLog.Add(d)
	}()
	p, err := runeval.Monitor(ctx, r.run, r.model, r.data, step, perEpoch)
	if ctx.Err() != nil {
		return r.interrupted(step, perEpoch, log.prog)
	}
	if err != nil {
		return err
	}
	if err := log.log.Point(p); err != nil {
		return err
	}
	line := runeval.PointLine(p)
	log.prog.log(line, line)
	return nil
}

// schedule is the number of steps per epoch (the last partial batch of an
// epoch is dropped) and in all (maxSteps, if set, stops earlier).
func schedule(images, batch, epochs int, maxSteps int64) (perEpoch, total int64, err error) {
	if perEpoch, err = run.StepsPerEpoch(images, batch); err != nil {
		return 0, 0, err
	}
	total = int64(epochs) * perEpoch
	if maxSteps > 0 && maxSteps < total {
		total = maxSteps
	}
	return perEpoch, total, nil
}

// trainStep runs one step (with NaN noise at train.force_nonfinite_at, once).
func (r *trainer) trainStep(pixels []byte, step int64, forced *bool) (graph.Losses, error) {
	if step == r.cfg.Train.ForceNonFiniteAt && !*forced {
		*forced = true
		return r.forceNonFinite(pixels)
	}
	return r.model.TrainStep(pixels)
}

// interrupted saves the run where Ctrl-C stopped it and says how to resume.
func (r *trainer) interrupted(step, perEpoch int64, prog *progress) error {
	if _, err := r.save(step, perEpoch); err != nil {
		return err
	}
	prog.finish()
	fmt.Fprintf(r.out, "\ntrain: stopped at step %d, checkpoint written; resume with:\n  %s train --run-dir %s --resume\n", step, r.command, shellQuote(r.shown))
	return fmt.Errorf("training stopped at step %d: %w", step, ErrInterrupted)
}

// finish plots the losses and evaluates the trained encoder.
func (r *trainer) finish(ctx context.Context, step int64, terms []string) error {
	dir := r.run.Dir
	if err := report.PlotLosses(dir, terms); err != nil {
		return fmt.Errorf("the loss curves of %s: %w", dir, err)
	}
	fmt.Fprintf(r.out, "train: loss curves in %s\n", filepath.Join(dir, "loss.png"))
	if !r.cfg.Eval.AfterTraining {
		curve, err := r.run.Curve(step)
		if err != nil {
			return err
		}
		if p, err := report.PlotCurve(dir, curve); err != nil {
			return fmt.Errorf("the kNN curve of %s: %w", dir, err)
		} else if p != "" {
			fmt.Fprintf(r.out, "train: kNN curve in %s\n", p)
		}
		fmt.Fprintf(r.out, "evaluation: not run (eval.after_training: false); evaluate with: %s eval --run-dir %s\n", r.command, shellQuote(dir))
		return nil
	}
	rep, err := runeval.Evaluate(ctx, r.run, r.model, r.data, step, runeval.Options{}, r.out)
	if errors.Is(err, context.Canceled) {
		return fmt.Errorf("evaluation stopped (the final checkpoint is written): %w", ErrInterrupted)
	}
	if err != nil || rep == nil {
		return err
	}
	return r.logReport(rep)
}

// shellQuote quotes a path for the commands printed to copy: as it is when
// it is plain, in single quotes otherwise.
func shellQuote(p string) string {
	if strings.IndexFunc(p, func(c rune) bool {
		return !(c == '/' || c == '.' || c == '_' || c == '-' || c == '+' || c == ':' || c == ',' || c == '@' || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9'))
	}) < 0 {
		return p
	}
	return "'" + strings.ReplaceAll(p, "'", `'\''`) + "'"
}

// stepLog writes every train.log_every steps (and the first and last) one
// line to metrics.jsonl, TensorBoard and the terminal.
type stepLog struct {
	r            *trainer
	log          *run.Log
	prog         *progress
	terms        []string
	start, total int64
	perEpoch     int64
	lastLog      time.Time
	lastStep     int64
	lastWait     time.Duration
	monitored    time.Duration // spent in the kNN monitor
}

func (r *trainer) newStepLog(start, total, perEpoch int64) (*stepLog, error) {
	log, err := r.run.OpenLog(start)
	if err != nil {
		return nil, err
	}
	return &stepLog{r: r, log: log, prog: newProgress(r.out, total, start), terms: r.model.Manifest.LossTerms,
		start: start, total: total, perEpoch: perEpoch, lastLog: time.Now(), lastStep: start}, nil
}

func (l *stepLog) close() {
	l.prog.finish()
	l.log.Close()
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
	rec := map[string]any{"step": step, "epoch": epoch, "loss": losses.Loss, "images_per_sec": ips, "data_wait": wait, "learning_rate": losses.LearningRate}
	for _, n := range l.terms {
		rec[n] = losses.Terms[n]
	}
	if err := l.log.Record(rec); err != nil {
		return err
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
func (r *trainer) forceNonFinite(pixels []byte) (graph.Losses, error) {
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

func (r *trainer) nonFiniteError(step int64, term string, l graph.Losses, rollbacks int) error {
	last := "none yet"
	if st, err := r.run.Checkpoints.Latest(); err == nil {
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
func (r *trainer) rollBack(step int64, term string, l graph.Losses, full int64) (*checkpoint.State, error) {
	st, err := r.run.Checkpoints.Latest()
	if err != nil {
		return nil, fmt.Errorf("step %d: loss term %q is not finite and there is no checkpoint to roll back to: %w", step, term, err)
	}
	if err := r.model.Restore(r.run.Checkpoints.PrefixPath(st.Prefix)); err != nil {
		return nil, fmt.Errorf("rollback: restoring %s: %w", r.run.Checkpoints.PrefixPath(st.Prefix), err)
	}
	lr := l.LearningRate * r.cfg.Train.LRBackoff
	if r.scheduled() {
		r.lrScale *= r.cfg.Train.LRBackoff
		lr = cosineLR(r.cfg.Optimizer.LearningRate, r.lrScale, st.Step+1, full)
	}
	if err := r.model.SetLearningRate(lr); err != nil {
		return nil, err
	}
	fmt.Fprintf(r.out, "train: step %d: loss term %q is not finite; restored %s (step %d) and lowered the learning rate to %g\n",
		step, term, st.Prefix, st.Step, lr)
	r.log.Events.Scalars(st.Step, map[string]float64{"rollback/learning_rate": lr})
	return st, nil
}

// save writes step's checkpoint, and for a run in a bucket queues its
// upload (an upload that failed for good before stops the run here).
func (r *trainer) save(step, perEpoch int64) (*checkpoint.State, error) {
	st, err := r.run.Checkpoints.Save(r.model, checkpoint.State{
		Step: step, Epoch: int(step / perEpoch), EpochStep: int(step % perEpoch), ConfigHash: r.run.Hash,
		LRScale: lrScaleField(r.lrScale),
	})
	if err != nil || r.remote == nil {
		return st, err
	}
	return st, r.remote.Checkpoint(st)
}

func termsText(l graph.Losses, names []string) string {
	var b strings.Builder
	for _, n := range names {
		fmt.Fprintf(&b, "  %s %.4f", n, l.Terms[n])
	}
	return b.String()
}

// batches starts the batches of steps start+1..total.
func (r *trainer) batches(ctx context.Context, perEpoch, start, total int64) *batcher {
	batch := r.cfg.Train.BatchSize
	_, per := r.data.TrainingImages()
	if st := r.data.Streams; st != nil {
		f := newStreamBatches(ctx, st.Train, r.cfg.Seed, batch, r.cfg.Data.ShuffleBuffer, perEpoch, start, total)
		return prefetch(ctx, f, batch*per, start, total)
	}
	return prefetch(ctx, newMemoryBatches(r.data.Splits.Train, r.cfg.Seed, batch, perEpoch), batch*per, start, total)
}
