package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/infomax/infomax/eval"
	"github.com/infomax/infomax/train"

	"github.com/spf13/pflag"

	"github.com/infomax/infomax/checkpoint"
	"github.com/infomax/infomax/config"
	"github.com/infomax/infomax/testkit/testmodel"
)

// smallRun writes a config for the test model on a slice of real
// Fashion-MNIST and returns its path.
func smallRun(t *testing.T, extra string) string {
	t.Helper()
	return smallRunOf(t, testmodel.Config(), extra)
}

// smallRunOf is smallRun of another small model (the exporter's sections of
// cfg: model and loss).
func smallRunOf(t *testing.T, cfg *config.Config, extra string) string {
	t.Helper()
	exportDir := testmodel.Export(t, cfg)
	dataDir := testmodel.FashionMNIST(t, 640, 200)
	path := filepath.Join(t.TempDir(), "small.yaml")
	yaml := fmt.Sprintf(`name: small
export_dir: %s
seed: %d
data: {format: fashion_mnist, path: %s, cache_dir: %s}
model: {z_dim: %d, precision: %s}
loss: {objective: %s}
train: {batch_size: 32, epochs: 3, log_every: 1, checkpoint_every: 10, keep_checkpoints: 2, intra_op_threads: 2, inter_op_threads: 1}
eval: {weighted_k: 50}
%s`, exportDir, cfg.Seed, dataDir, filepath.Join(t.TempDir(), "cache"), cfg.Model.ZDim, cfg.Model.Precision, cfg.Loss.Objective, extra)
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

type metric struct {
	Step   int64   `json:"step"`
	Loss   float64 `json:"loss"`
	Global float64 `json:"global"`
	Local  float64 `json:"local"`
	Prior  float64 `json:"prior"`
	Epoch  float64 `json:"epoch"`
	IPS    float64 `json:"images_per_sec"`
	LR     float64 `json:"learning_rate"`
}

// flags parses config overrides as the command line would.
func flags(t *testing.T, args ...string) *pflag.FlagSet {
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	config.AddFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return fs
}

func readMetrics(t testing.TB, dir string) []metric {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, "metrics.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []metric
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m metric
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("metrics.jsonl line %q: %v", sc.Text(), err)
		}
		if !bytes.Contains(sc.Bytes(), []byte(`"loss":`)) {
			continue // a kNN monitor line (knnLines reads those)
		}
		out = append(out, m)
	}
	return out
}

func TestTrainEndToEnd(t *testing.T) {
	cfgPath := smallRun(t, "")
	dir := filepath.Join(t.TempDir(), "run")
	var out bytes.Buffer
	if err := runTrain(context.Background(), trainOptions{ConfigFile: cfgPath, RunDir: dir}, &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	ms := readMetrics(t, dir)
	if len(ms) != 60 || ms[59].Step != 60 { // 640/32 = 20 steps per epoch, 3 epochs, logged every step
		t.Fatalf("metrics: %d lines, last %+v; want 60 lines to step 60", len(ms), ms[len(ms)-1])
	}
	for _, m := range ms {
		if m.IPS <= 0 || math.IsNaN(m.Loss) {
			t.Fatalf("bad metrics line %+v", m)
		}
	}
	if first, last := mean(ms[:10]), mean(ms[50:]); !(last < first) {
		t.Errorf("loss did not fall: first 10 steps %.4f, last 10 %.4f", first, last)
	}
	st, err := checkpoint.Dir{Path: filepath.Join(dir, "checkpoints")}.Latest()
	if err != nil || st.Step != 60 || st.Epoch != 3 || len(st.Kept) != 2 {
		t.Fatalf("latest checkpoint %+v, %v; want step 60, epoch 3, 2 kept", st, err)
	}
	ckpts, _ := filepath.Glob(filepath.Join(dir, "checkpoints", "ckpt-*.index"))
	if len(ckpts) != 2 {
		t.Errorf("checkpoint files %v, want the 2 kept", ckpts)
	}
	var rep eval.Report
	raw, err := os.ReadFile(filepath.Join(dir, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.TrainSize != 640 || rep.TestSize != 200 || rep.Step != 60 || rep.FeatureDim != 16 {
		t.Errorf("report %+v", rep)
	}
	// Ten classes: chance is 0.1. Even a briefly trained encoder beats it by far.
	if k := rep.Model.KNN; k.Top1NN < 0.3 || k.Majority < 0.3 || k.L2NN1 < 0.3 {
		t.Errorf("kNN accuracies %+v: not above chance", k)
	}
	if rep.Model.Probe == nil || rep.Pixels == nil || rep.Pixels.Probe == nil || len(rep.Files.Grids) != 2 || len(rep.Files.Features) != 4 {
		t.Errorf("report lacks the probe, the pixel baseline, grids or features: %+v", rep)
	}
	if !strings.Contains(out.String(), "1-NN") {
		t.Errorf("output has no kNN report:\n%s", out.String())
	}
}

func mean(ms []metric) float64 {
	s := 0.0
	for _, m := range ms {
		s += m.Loss
	}
	return s / float64(len(ms))
}

func TestTrainErrors(t *testing.T) {
	cfgPath := smallRun(t, "")
	ctx := context.Background()
	cases := []struct {
		name string
		opts trainOptions
		want string
	}{
		{"missing data", trainOptions{ConfigFile: smallConfigWith(t, cfgPath, "data: {format: fashion_mnist, path: /nonexistent/fmnist}")},
			"data.path = /nonexistent/fmnist"},
		{"resume a folder that holds no run", trainOptions{RunDir: t.TempDir(), Resume: true},
			"has no config.yaml, so it holds no run to continue"},
		{"missing config", trainOptions{ConfigFile: "/nonexistent.yaml"}, "/nonexistent.yaml"},
	}
	for _, c := range cases {
		if c.opts.RunDir == "" {
			c.opts.RunDir = filepath.Join(t.TempDir(), "run")
		}
		err := runTrain(ctx, c.opts, new(bytes.Buffer))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want it to contain %q", c.name, err, c.want)
		}
	}
}

// runner train exports the SavedModel itself when it is missing or was
// exported from another spec, and says why; with a fresh one it does not.
func TestTrainExportsWhenMissingOrStale(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the Python exporter twice")
	}
	exportDir := filepath.Join(t.TempDir(), "export")
	cfgPath := smallConfigWith(t, smallRun(t, ""), "export_dir: "+exportDir)
	train := func(cfg string) string {
		t.Helper()
		var out bytes.Buffer
		if err := runTrain(context.Background(), trainOptions{ConfigFile: cfg, RunDir: filepath.Join(t.TempDir(), "run"), MaxSteps: 2}, &out); err != nil {
			t.Fatalf("%v\n%s", err, out.String())
		}
		return out.String()
	}
	if out := train(cfgPath); !strings.Contains(out, "exporting the SavedModel") || !strings.Contains(out, "there is none yet") {
		t.Errorf("missing export: no export announced:\n%s", out)
	}
	if out := train(cfgPath); strings.Contains(out, "exporting") {
		t.Errorf("fresh export: exported again:\n%s", out)
	}
	// Another spec's export goes beside it; the first stays for its runs.
	other := smallConfigWith(t, cfgPath, "optimizer: {learning_rate: 0.5}")
	if out := train(other); !strings.Contains(out, "holds the SavedModel of another spec") || !strings.Contains(out, "exporting the SavedModel") {
		t.Errorf("export of another spec: not announced:\n%s", out)
	}
	if m, _ := filepath.Glob(exportDir + "-*"); len(m) != 1 {
		t.Errorf("exports beside %s: %v, want one", exportDir, m)
	}
	if out := train(cfgPath); strings.Contains(out, "exporting") {
		t.Errorf("the first spec's export was overwritten:\n%s", out)
	}
	if out := train(other); strings.Contains(out, "exporting") {
		t.Errorf("the second spec's export was not found again:\n%s", out)
	}
}

// --resume on a run folder killed during start-up (config.yaml written, no
// checkpoint yet) starts at step 0 and says so.
func TestResumeBeforeFirstCheckpoint(t *testing.T) {
	cfgPath := smallRun(t, "")
	dir := filepath.Join(t.TempDir(), "run")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.yaml"), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := runTrain(context.Background(), trainOptions{RunDir: dir, Resume: true, MaxSteps: 3}, &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "no checkpoint yet") || !strings.Contains(out.String(), "starting at step 0") {
		t.Errorf("resume without a checkpoint does not say it starts at step 0:\n%s", out.String())
	}
	if ms := readMetrics(t, dir); len(ms) != 3 || ms[0].Step != 1 {
		t.Errorf("metrics %+v: want steps 1..3", ms)
	}
}

// smallConfigWith appends YAML to a copy of the config, overriding sections.
func smallConfigWith(t *testing.T, base, override string) string {
	t.Helper()
	raw, err := os.ReadFile(base)
	if err != nil {
		t.Fatal(err)
	}
	key, _, _ := strings.Cut(override, ":")
	var kept []string
	for _, line := range strings.Split(string(raw), "\n") {
		if !strings.HasPrefix(line, key+":") {
			kept = append(kept, line)
		}
	}
	path := filepath.Join(t.TempDir(), "override.yaml")
	if err := os.WriteFile(path, []byte(strings.Join(kept, "\n")+"\n"+override+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// A run stopped by SIGINT writes a checkpoint, says how to resume and exits
// non-zero; resumed, it continues with the same step, data order and optimizer
// state, and its losses equal those of an uninterrupted run.
func TestInterruptAndResume(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the runner binary")
	}
	// The seed's objective, and the two-view objective, whose views are
	// drawn in the train step from (seed, step), with one scale and with
	// two (a second head in the checkpoint).
	twoView := testmodel.Config()
	twoView.Loss.Objective, twoView.Loss.Beta = "two_view_nce", 1
	twoScales := *twoView
	twoScales.Loss.LocalScales = 2
	for name, cfg := range map[string]*config.Config{"seed": testmodel.Config(), "two_view_nce": twoView, "two_view_nce_two_scales": &twoScales} {
		t.Run(name, func(t *testing.T) { interruptAndResume(t, cfg) })
	}
}

func interruptAndResume(t *testing.T, cfg *config.Config) {
	// 10 epochs of 20 steps: the interrupt lands after step 25, with room to
	// spare however slowly the signal is handled.
	cfgPath := smallConfigWith(t, smallRunOf(t, cfg, ""), "train: {batch_size: 32, epochs: 10, log_every: 1, checkpoint_every: 10, keep_checkpoints: 2, intra_op_threads: 2, inter_op_threads: 1}")
	bin := runnerBinary(t)
	whole := filepath.Join(t.TempDir(), "whole")
	if out, err := exec.Command(bin, "train", "--config", cfgPath, "--run-dir", whole).CombinedOutput(); err != nil {
		t.Fatalf("uninterrupted run: %v\n%s", err, out)
	}

	dir := filepath.Join(t.TempDir(), "stopped")
	cmd := exec.Command(bin, "train", "--config", cfgPath, "--run-dir", dir)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Wait for progress however slow the machine is; a run that ends before
	// it was interrupted fails below.
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	for {
		if raw, _ := os.ReadFile(filepath.Join(dir, "metrics.jsonl")); bytes.Count(raw, []byte("\n")) >= 25 {
			break
		}
		select {
		case err := <-exited:
			t.Fatalf("the run ended (%v) before 25 logged steps:\n%s", err, out.String())
		case <-time.After(5 * time.Millisecond):
		}
	}
	cmd.Process.Signal(syscall.SIGINT)
	err := <-exited
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 130 {
		t.Fatalf("after SIGINT: %v, want exit code 130\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "--resume") {
		t.Errorf("no resume hint in:\n%s", out.String())
	}
	st, err := checkpoint.Dir{Path: filepath.Join(dir, "checkpoints")}.Latest()
	if err != nil {
		t.Fatal(err)
	}
	if st.Step < 25 || st.Step >= 200 {
		t.Fatalf("interrupted at step %d: want a mid-run checkpoint", st.Step)
	}
	t.Logf("interrupted at step %d (epoch %d, position %d)", st.Step, st.Epoch, st.EpochStep)

	res, err := exec.Command(bin, "train", "--run-dir", dir, "--resume").CombinedOutput()
	if err != nil {
		t.Fatalf("resume: %v\n%s", err, res)
	}
	if want := fmt.Sprintf("step %d,", st.Step); !strings.Contains(string(res), want) {
		t.Errorf("resume output does not say it resumed at %q:\n%s", want, res)
	}
	a, b := readMetrics(t, whole), readMetrics(t, dir)
	if len(a) != len(b) {
		t.Fatalf("metrics: %d lines uninterrupted, %d stopped and resumed", len(a), len(b))
	}
	maxDiff := 0.0
	for i := range a {
		maxDiff = math.Max(maxDiff, math.Abs(a[i].Loss-b[i].Loss))
		if a[i].Step != b[i].Step {
			t.Fatalf("line %d: step %d vs %d", i, a[i].Step, b[i].Step)
		}
		for _, pair := range [][2]float64{{a[i].Loss, b[i].Loss}, {a[i].Global, b[i].Global}, {a[i].Local, b[i].Local}, {a[i].Prior, b[i].Prior}} {
			if math.Abs(pair[0]-pair[1]) > 1e-4*math.Max(1, math.Abs(pair[0])) {
				t.Fatalf("step %d: uninterrupted %+v, resumed %+v", a[i].Step, a[i], b[i])
			}
		}
	}
	t.Logf("%d steps compared, largest loss difference %g", len(a), maxDiff)
}

// train.Options.BeforeEvaluation is called once, after training and before
// the evaluation after training (the runner hands freed memory back there),
// and not when there is no evaluation.
func TestBeforeEvaluationHook(t *testing.T) {
	for _, after := range []bool{true, false} {
		cfg, err := config.Load(smallRun(t, ""), flags(t, fmt.Sprintf("--eval.after_training=%v", after)))
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		calls, reported := 0, false
		o := train.Options{RunDir: filepath.Join(t.TempDir(), "run"), MaxSteps: 3, BeforeEvaluation: func() {
			calls++
			reported = strings.Contains(out.String(), "| kNN weighted")
		}}
		if !after { // the hint names the runner as Options.Command says
			o.Command = []string{"/opt/my tools/runner"}
		}
		if err := train.Fit(context.Background(), cfg, o, &out); err != nil {
			t.Fatalf("%v\n%s", err, out.String())
		}
		want := 0
		if after {
			want = 1
		}
		if calls != want || reported || (after && !strings.Contains(out.String(), "| kNN weighted")) {
			t.Errorf("after_training %v: hook called %d times (want %d), before the report: %v", after, calls, want, !reported)
		}
		if hint := "evaluate with: '/opt/my tools/runner' eval --run-dir "; !after && !strings.Contains(out.String(), hint) {
			t.Errorf("after_training false: no %q in\n%s", hint, out.String())
		}
	}
}

// The hints name the runner as it was started: go run's default for a binary
// that go run or go test built, else the path or name it was run by.
func TestRunnerCommand(t *testing.T) {
	for _, c := range []struct {
		exe, arg0 string
		want      []string
	}{
		{"/tmp/go-build1234/b001/exe/runner", "/tmp/go-build1234/b001/exe/runner", nil},
		{"/root/.cache/go-build/ab/runner.test", "./runner.test", nil},
		{"/work/bin/runner", "/work/bin/runner", []string{"/work/bin/runner"}},
		{"/usr/local/bin/runner", "runner", []string{"runner"}},
		{"/home/me/bin/runner", "../bin/runner", []string{"../bin/runner"}},
		{"", "runner", nil},
	} {
		if got := runnerCommand(c.exe, c.arg0); !slices.Equal(got, c.want) {
			t.Errorf("runnerCommand(%q, %q) = %q, want %q", c.exe, c.arg0, got, c.want)
		}
	}
}
