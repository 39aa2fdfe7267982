package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/png"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/infomax/infomax/report"
	"github.com/infomax/infomax/run"
	"github.com/infomax/infomax/tboard"
	"github.com/infomax/infomax/testkit/testmodel"
	"github.com/infomax/infomax/train"
)

// knnLines are the kNN monitor's lines of a run's metrics.jsonl.
func knnLines(t *testing.T, dir string) []run.CurvePoint {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, "metrics.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []run.CurvePoint
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var rec map[string]float64
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("metrics.jsonl line %q: %v", sc.Text(), err)
		}
		if w, ok := rec["knn_weighted"]; ok {
			out = append(out, run.CurvePoint{Step: int64(rec["step"]), Epoch: rec["epoch"], Weighted: w, Seconds: rec["knn_seconds"]})
		}
	}
	return out
}

// tbScalars are the values of tag in a run's TensorBoard events, by step.
func tbScalars(t *testing.T, dir, tag string) map[int64]float64 {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "events.out.tfevents.*"))
	got := map[int64]float64{}
	for _, path := range files {
		evs, err := tboard.ReadEvents(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range evs {
			for _, v := range e.GetSummary().GetValue() {
				if v.Tag == tag {
					got[e.Step] = float64(v.GetSimpleValue())
				}
			}
		}
	}
	return got
}

// The kNN monitor logs weighted kNN at each eval.every_epochs to
// metrics.jsonl, TensorBoard and report.json's curve (whose last point is the
// final evaluation's), leaves the training itself unchanged, gives the curve
// `runner eval --curve` measures afterwards, and survives Ctrl-C.
func TestKNNMonitorLogsTheCurve(t *testing.T) {
	cfgPath := smallRun(t, "")
	plain, monitored := filepath.Join(t.TempDir(), "plain"), filepath.Join(t.TempDir(), "monitored")
	var out bytes.Buffer
	if err := runTrain(context.Background(), trainOptions{ConfigFile: cfgPath, RunDir: plain, Flags: flags(t, "--eval.projector_images", "0", "--train.keep_checkpoints", "10")}, &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	out.Reset()
	if err := runTrain(context.Background(), trainOptions{ConfigFile: cfgPath, RunDir: monitored, Flags: flags(t, "--eval.every_epochs", "1")}, &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	// 20 steps an epoch, 3 epochs: the monitor at steps 20 and 40, the final
	// evaluation at 60.
	pts := knnLines(t, monitored)
	if len(pts) != 2 || pts[0].Step != 20 || pts[1].Step != 40 || pts[0].Epoch != 1 || pts[1].Epoch != 2 {
		t.Fatalf("monitor lines in metrics.jsonl: %+v; want steps 20 and 40 (epochs 1, 2)", pts)
	}
	for _, p := range pts {
		if !(p.Weighted > 0.3 && p.Weighted <= 1) || !(p.Seconds > 0) {
			t.Errorf("monitor point %+v: accuracy not above chance (0.1) or no cost", p)
		}
		if !strings.Contains(out.String(), "kNN monitor: step "+strconv.FormatInt(p.Step, 10)) {
			t.Errorf("no monitor line for step %d in the output:\n%s", p.Step, out.String())
		}
	}
	if !strings.Contains(out.String(), "in the kNN monitor") {
		t.Errorf("the end-of-training line does not set the monitor's time apart:\n%s", out.String())
	}
	rep := readReport(t, monitored)
	c := rep.KNNCurve
	if len(c) != 3 || c[0] != pts[0] || c[1] != pts[1] || c[2].Step != 60 || c[2].Epoch != 3 || c[2].Weighted != rep.Model.KNN.Weighted {
		t.Fatalf("report.json's curve %+v; want the two monitor points and step 60 with the report's weighted kNN %v", c, rep.Model.KNN.Weighted)
	}
	tb := tbScalars(t, monitored, "knn/weighted")
	for _, p := range c {
		if v, ok := tb[p.Step]; !ok || math.Abs(v-p.Weighted) > 1e-6 {
			t.Errorf("TensorBoard knn/weighted at step %d: %v (present %v), want %v", p.Step, v, ok, p.Weighted)
		}
	}
	if _, err := os.Stat(filepath.Join(monitored, "knn_curve.png")); err != nil {
		t.Errorf("no curve plot: %v", err)
	}
	// The monitor only reads the weights: every loss is the same as without it.
	a, b := readMetrics(t, plain), readMetrics(t, monitored)
	if len(a) != 60 || len(b) != 60 {
		t.Fatalf("loss lines: %d without the monitor, %d with; want 60", len(a), len(b))
	}
	for i := range a {
		if a[i].Step != b[i].Step || a[i].Loss != b[i].Loss {
			t.Fatalf("line %d: step %d loss %v without the monitor, step %d loss %v with it", i, a[i].Step, a[i].Loss, b[i].Step, b[i].Loss)
		}
	}
	if len(readReport(t, plain).KNNCurve) != 0 {
		t.Errorf("a run without the monitor has a curve")
	}
	// `runner eval --curve 1` measures the same curve afterwards from the
	// checkpoints kept on disk.
	out.Reset()
	if err := runEval(context.Background(), evalOptions{RunDirs: []string{plain}, Curve: 1}, &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	post := readReport(t, plain).KNNCurve
	if len(post) != len(c) {
		t.Fatalf("eval --curve 1: %+v; the monitor measured %+v", post, c)
	}
	for i := range c {
		if post[i].Step != c[i].Step || math.Abs(post[i].Weighted-c[i].Weighted) > 1e-9 {
			t.Errorf("point %d: eval --curve %+v, monitor %+v", i, post[i], c[i])
		}
	}
	if got := tbScalars(t, plain, "knn/weighted"); len(got) != 3 {
		t.Errorf("TensorBoard after eval --curve: knn/weighted at %v; want steps 20, 40, 60", got)
	}

	// Ctrl-C during the monitor stops the run as during a step (checkpoint,
	// resume hint); the resumed run measures that point first and ends with
	// the uninterrupted run's curve. The step 20 line is printed after the
	// step and before its monitor: cancelling then lands in the monitor.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := &cancelAt{marker: "step 20/60", cancel: cancel}
	stopped := filepath.Join(t.TempDir(), "stopped")
	err := runTrain(ctx, trainOptions{ConfigFile: cfgPath, RunDir: stopped, Flags: flags(t, "--eval.every_epochs", "1")}, w)
	if !errors.Is(err, train.ErrInterrupted) || !strings.Contains(w.buf.String(), "stopped at step 20") || !strings.Contains(w.buf.String(), "--resume") {
		t.Fatalf("cancelled in the monitor: %v\n%s", err, w.buf.String())
	}
	if pts := knnLines(t, stopped); len(pts) != 0 {
		t.Fatalf("an interrupted monitor logged %+v", pts)
	}
	out.Reset()
	if err := runTrain(context.Background(), trainOptions{RunDir: stopped, Resume: true}, &out); err != nil {
		t.Fatalf("resume: %v\n%s", err, out.String())
	}
	resumed := readReport(t, stopped).KNNCurve
	if len(resumed) != len(c) {
		t.Fatalf("curves: %+v uninterrupted, %+v stopped in the monitor and resumed", c, resumed)
	}
	for i := range c {
		if resumed[i].Step != c[i].Step || resumed[i].Weighted != c[i].Weighted {
			t.Errorf("point %d: %+v uninterrupted, %+v resumed", i, c[i], resumed[i])
		}
	}
}

// cancelAt cancels a context when the output it receives contains a marker.
type cancelAt struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	marker string
	cancel context.CancelFunc
}

func (w *cancelAt) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if strings.Contains(w.buf.String(), w.marker) {
		w.cancel()
	}
	return len(p), nil
}

// The monitor measures the weights of its step: its figure at the last step
// of a run not evaluated after training equals `runner eval`'s weighted kNN
// of the checkpoint written there (another session, restored from disk).
func TestKNNMonitorMatchesEval(t *testing.T) {
	cfgPath := smallRun(t, "")
	dir := filepath.Join(t.TempDir(), "run")
	var out bytes.Buffer
	if err := runTrain(context.Background(), trainOptions{ConfigFile: cfgPath, RunDir: dir, MaxSteps: 40,
		Flags: flags(t, "--eval.every_epochs", "2", "--eval.after_training=false")}, &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	pts := knnLines(t, dir)
	if len(pts) != 1 || pts[0].Step != 40 {
		t.Fatalf("monitor lines %+v; want one at step 40 (every 2 epochs of 20 steps)", pts)
	}
	if _, err := os.Stat(filepath.Join(dir, "report.json")); !os.IsNotExist(err) {
		t.Fatalf("report.json written with eval.after_training false: %v", err)
	}
	out.Reset()
	if err := runEval(context.Background(), evalOptions{RunDirs: []string{dir}}, &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	rep := readReport(t, dir)
	if rep.Step != 40 || math.Abs(rep.Model.KNN.Weighted-pts[0].Weighted) > 1e-9 {
		t.Fatalf("runner eval at step %d: weighted kNN %v; the monitor measured %v at step 40", rep.Step, rep.Model.KNN.Weighted, pts[0].Weighted)
	}
	if len(rep.KNNCurve) != 1 || rep.KNNCurve[0] != pts[0] {
		t.Errorf("report.json's curve %+v; want the monitor's point %+v", rep.KNNCurve, pts[0])
	}
}

// After `runner eval` the run folder holds what TensorBoard's embedding
// projector reads: the config, features, metadata and sprite of a seeded
// sample of test images. Read back here and by the plugin itself.
func TestProjectorFiles(t *testing.T) {
	cfgPath := smallRun(t, "")
	dir := filepath.Join(t.TempDir(), "run")
	if err := runTrain(context.Background(), trainOptions{ConfigFile: cfgPath, RunDir: dir, MaxSteps: 5,
		Flags: flags(t, "--eval.after_training=false", "--eval.projector_images", "50")}, new(bytes.Buffer)); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := runEval(context.Background(), evalOptions{RunDirs: []string{dir}}, &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	rep := readReport(t, dir)
	if len(rep.Files.Projector) != 4 {
		t.Fatalf("report.json names projector files %v; want 4", rep.Files.Projector)
	}
	cfg, err := os.ReadFile(filepath.Join(dir, report.ProjectorConfig))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`tensor_path: "projector/features.tsv"`, `metadata_path: "projector/metadata.tsv"`,
		`image_path: "projector/sprite.png"`, "single_image_dim: 28"} {
		if !strings.Contains(string(cfg), want) {
			t.Errorf("%s lacks %q:\n%s", report.ProjectorConfig, want, cfg)
		}
	}
	meta, err := os.ReadFile(filepath.Join(dir, "projector", "metadata.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	rows := strings.Split(strings.TrimSuffix(string(meta), "\n"), "\n")
	if len(rows) != 51 || rows[0] != "class\tlabel\tindex" {
		t.Fatalf("metadata.tsv: %d rows, header %q; want a header and 50 rows", len(rows), rows[0])
	}
	picks := report.ProjectorSample(200, 50, testmodel.Config().Seed)
	for i, p := range picks {
		if f := strings.Split(rows[i+1], "\t"); len(f) != 3 || f[2] != strconv.Itoa(p) {
			t.Fatalf("metadata row %d: %q; want index %d", i, rows[i+1], p)
		}
	}
	features, err := os.ReadFile(filepath.Join(dir, "projector", "features.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	if lines := strings.Split(strings.TrimSuffix(string(features), "\n"), "\n"); len(lines) != 50 || len(strings.Split(lines[0], "\t")) != rep.FeatureDim {
		t.Fatalf("features.tsv: %d lines of %d values; want 50 of %d", len(lines), len(strings.Split(lines[0], "\t")), rep.FeatureDim)
	}
	py := testmodel.Python(t)
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(py, filepath.Join(root, "scripts", "check_projector.py"), dir)
	got, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(got), "projector: 50 points of 16 dimensions") {
		t.Fatalf("TensorBoard's projector plugin on the run: %v\n%s", err, got)
	}
	t.Logf("%s", bytes.TrimSpace(got))
}

// A monitor that cannot run (no labelled images) is refused before the first
// step, naming the key, rather than after an epoch of training.
func TestKNNMonitorNeedsLabels(t *testing.T) {
	fm := testmodel.FashionMNISTSet(t, 80)
	folder := t.TempDir()
	for i := 0; i < fm.Len(); i++ {
		var b bytes.Buffer
		png.Encode(&b, &image.Gray{Pix: fm.Image(i), Stride: 28, Rect: image.Rect(0, 0, 28, 28)})
		os.WriteFile(filepath.Join(folder, fmt.Sprintf("%03d.png", i)), b.Bytes(), 0o644)
	}
	cfg := smallConfigWith(t, smallRun(t, ""), "data: {format: folder, path: "+folder+", test_fraction: 0.25, cache_dir: off}")
	dir := filepath.Join(t.TempDir(), "run")
	var out bytes.Buffer
	err := runTrain(context.Background(), trainOptions{ConfigFile: cfg, RunDir: dir, Flags: flags(t, "--eval.every_epochs", "1")}, &out)
	if err == nil || !strings.Contains(err.Error(), "eval.every_epochs = 1") || !strings.Contains(err.Error(), "has 0 and 0") {
		t.Fatalf("monitor on unlabelled images: %v\n%s", err, out.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "checkpoints")); !os.IsNotExist(err) {
		t.Errorf("a checkpoint was written before the refusal: %v", err)
	}
	// The same images trained without the monitor: `runner eval --curve`
	// refuses them naming its own flag.
	if err := runTrain(context.Background(), trainOptions{ConfigFile: cfg, RunDir: dir, Flags: flags(t, "--eval.every_epochs", "0")}, &out); err != nil {
		t.Fatalf("training unlabelled images without the monitor: %v\n%s", err, out.String())
	}
	err = runEval(context.Background(), evalOptions{RunDirs: []string{dir}, Curve: 1}, &out)
	if err == nil || !strings.Contains(err.Error(), "--curve 1") || !strings.Contains(err.Error(), "has 0 and 0") {
		t.Fatalf("eval --curve on unlabelled images: %v\n%s", err, out.String())
	}
}
