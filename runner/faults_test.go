package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/infomax/infomax/checkpoint"
	"github.com/infomax/infomax/graph"
	"github.com/infomax/infomax/tboard"
)

func TestNonFiniteLossStops(t *testing.T) {
	cfg := smallRun(t, "")
	dir := filepath.Join(t.TempDir(), "run")
	var out bytes.Buffer
	err := runTrain(context.Background(), trainOptions{ConfigFile: cfg, RunDir: dir, Flags: flags(t, "--train.force_nonfinite_at", "25")}, &out)
	if err == nil || !strings.Contains(err.Error(), `step 25: loss term "loss" is NaN`) || !strings.Contains(err.Error(), "ckpt-000020 (step 20)") {
		t.Fatalf("error %v\n%s", err, out.String())
	}
	st, err := checkpoint.Dir{Path: filepath.Join(dir, "checkpoints")}.Latest()
	if err != nil || st.Step != 20 {
		t.Fatalf("latest checkpoint %+v, %v: want step 20, nothing after the NaN", st, err)
	}
	if files, _ := filepath.Glob(filepath.Join(dir, "checkpoints", "ckpt-000025*")); len(files) > 0 {
		t.Errorf("checkpoint files written after the NaN: %v", files)
	}
}

func TestNonFiniteLossRollsBack(t *testing.T) {
	cfg := smallRun(t, "")
	dir := filepath.Join(t.TempDir(), "run")
	var out bytes.Buffer
	fs := flags(t, "--train.force_nonfinite_at", "25", "--train.on_nonfinite", "rollback", "--train.lr_backoff", "0.25")
	if err := runTrain(context.Background(), trainOptions{ConfigFile: cfg, RunDir: dir, Flags: fs}, &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "restored ckpt-000020 (step 20) and lowered the learning rate to 0.00025") {
		t.Errorf("no rollback message:\n%s", out.String())
	}
	ms := readMetrics(t, dir)
	last := ms[len(ms)-1]
	if last.Step != 60 {
		t.Fatalf("run ended at step %d, want 60", last.Step)
	}
	// The lowered rate is in the graph (and so in later checkpoints).
	var lr float64
	for _, m := range ms {
		if m.Step == 21 {
			lr = m.LR
		}
	}
	if lr != float64(float32(0.00025)) || last.LR != lr {
		t.Errorf("learning rate after the rollback: step 21 %v, step 60 %v; want 0.00025", lr, last.LR)
	}
}

// Same seed and config, two runs: the same losses for the first 50 steps.
func TestSameSeedSameLosses(t *testing.T) {
	cfg := smallRun(t, "")
	var runs [2][]metric
	for i := range runs {
		dir := filepath.Join(t.TempDir(), "run")
		if err := runTrain(context.Background(), trainOptions{ConfigFile: cfg, RunDir: dir, MaxSteps: 50}, new(bytes.Buffer)); err != nil {
			t.Fatal(err)
		}
		runs[i] = readMetrics(t, dir)
	}
	if len(runs[0]) != 50 {
		t.Fatalf("%d steps logged", len(runs[0]))
	}
	for i := range runs[0] {
		a, b := runs[0][i], runs[1][i]
		if a.Loss != b.Loss || a.Global != b.Global || a.Local != b.Local || a.Prior != b.Prior {
			t.Fatalf("step %d: %+v vs %+v", a.Step, a, b)
		}
	}
}

func TestTrainingWritesTensorBoardAndPlot(t *testing.T) {
	cfg := smallRun(t, "")
	dir := filepath.Join(t.TempDir(), "run")
	if err := runTrain(context.Background(), trainOptions{ConfigFile: cfg, RunDir: dir, MaxSteps: 30}, new(bytes.Buffer)); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "events.out.tfevents.*"))
	if len(files) != 1 {
		t.Fatalf("event files %v", files)
	}
	events, err := tboard.ReadEvents(files[0])
	if err != nil {
		t.Fatal(err)
	}
	tags := map[string]int{}
	images := 0
	for _, e := range events {
		for _, v := range e.GetSummary().GetValue() {
			tags[v.Tag]++
			if v.GetImage() != nil {
				images++
			}
		}
	}
	for _, tag := range []string{"loss/total", "loss/global", "loss/local", "loss/prior", "images_per_sec", "learning_rate", "knn/weighted", "linear_probe"} {
		if tags[tag] == 0 {
			t.Errorf("no %s in the event file (tags %v)", tag, tags)
		}
	}
	if tags["loss/total"] != 30 || images != 2 {
		t.Errorf("%d loss/total scalars (want 30, one per logged step), %d images (want the 2 grids)", tags["loss/total"], images)
	}
	if fi, err := os.Stat(filepath.Join(dir, "loss.png")); err != nil || fi.Size() < 1000 {
		t.Errorf("loss.png: %v", err)
	}
}

func TestDeviceGPUWithoutOne(t *testing.T) {
	cfg := smallRun(t, "")
	err := runTrain(context.Background(), trainOptions{ConfigFile: cfg, RunDir: t.TempDir(), Flags: flags(t, "--device", "gpu")}, new(bytes.Buffer))
	if !errors.Is(err, graph.ErrNoGPU) || !strings.Contains(err.Error(), "make setup TF_BUILD=gpu") {
		t.Errorf("device gpu on a CPU machine: %v", err)
	}
}

// Killed with SIGKILL at random moments (during steps, saves and start-up),
// and resumed each time, a run reaches its last step from complete
// checkpoints, with its step counter continuous.
func TestKillAnywhereAndResume(t *testing.T) {
	if testing.Short() {
		t.Skip("kills a real training process many times")
	}
	const trials = 20
	const total = 6000 // 20 steps per epoch, 300 epochs
	cfg := smallConfigWith(t, smallRun(t, ""), "train: {batch_size: 32, epochs: 300, log_every: 1, checkpoint_every: 3, keep_checkpoints: 2, intra_op_threads: 1, inter_op_threads: 1}")
	bin := runnerBinary(t)
	dir := filepath.Join(t.TempDir(), "run")
	rng := rand.New(rand.NewPCG(11, 12))
	var lastStep int64
	for trial := 0; trial < trials; trial++ {
		// A run killed before it wrote its config.yaml has nothing to
		// resume: it is started again with --config (how far start-up got
		// depends on the machine's speed, not on the test).
		args := []string{"train", "--run-dir", dir, "--resume"}
		if _, err := os.Stat(filepath.Join(dir, "config.yaml")); err != nil {
			args = append(args, "--config", cfg)
		}
		cmd := exec.Command(bin, args...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Random moments, so kills land in start-up, steps and saves alike.
		time.Sleep(time.Duration(rng.IntN(4000)) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		st, err := checkpoint.Dir{Path: filepath.Join(dir, "checkpoints")}.Latest()
		if errors.Is(err, checkpoint.ErrNone) && lastStep == 0 {
			t.Logf("trial %d: killed before the first checkpoint", trial)
			continue // the next --resume starts at step 0
		}
		if err != nil {
			t.Fatalf("trial %d: %v\n%s", trial, err, out.String())
		}
		if st.Step < lastStep {
			t.Fatalf("trial %d: latest checkpoint went back from step %d to %d", trial, lastStep, st.Step)
		}
		// The checkpoint latest.json names is whole: a model restores from it.
		m, err := graph.Load(mustConfigExport(t, dir), graph.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Restore(checkpoint.Dir{Path: filepath.Join(dir, "checkpoints")}.PrefixPath(st.Prefix)); err != nil {
			t.Fatalf("trial %d: latest checkpoint %s does not restore: %v", trial, st.Prefix, err)
		}
		m.Close()
		lastStep = st.Step
		t.Logf("trial %d: killed; latest complete checkpoint at step %d", trial, st.Step)
	}
	out, err := exec.Command(bin, "train", "--run-dir", dir, "--resume").CombinedOutput()
	if err != nil {
		t.Fatalf("final resume: %v\n%s", err, out)
	}
	ms := readMetrics(t, dir)
	for i, m := range ms {
		if m.Step != int64(i+1) {
			t.Fatalf("metrics.jsonl: line %d is step %d: the step counter is not continuous", i, m.Step)
		}
	}
	if n := len(ms); n != total {
		t.Fatalf("run ended at step %d, want %d", n, total)
	}
	fmt.Printf("fault test: %d SIGKILLs, every resume from a complete checkpoint, steps 1..%d continuous\n", trials, total)
}

func mustConfigExport(t *testing.T, dir string) string {
	raw, err := os.ReadFile(filepath.Join(dir, "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "export_dir: "); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatal("no export_dir in config.yaml")
	return ""
}
