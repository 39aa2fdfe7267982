package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/infomax/infomax/eval"
	"github.com/infomax/infomax/graph"
	"github.com/infomax/infomax/run"
)

// runner eval re-evaluates runs from their latest checkpoints (the same
// figures train printed) and puts them side by side, raw pixels once.
func TestEvalComparesRuns(t *testing.T) {
	cfg := smallRun(t, "")
	var dirs []string
	for i, extra := range []string{"", "--loss.alpha=0"} {
		dir := filepath.Join(t.TempDir(), fmt.Sprintf("run%d", i))
		args := []string{}
		if extra != "" {
			args = append(args, extra)
		}
		if err := runTrain(context.Background(), trainOptions{ConfigFile: cfg, RunDir: dir, MaxSteps: 3, Flags: flags(t, args...)}, new(bytes.Buffer)); err != nil {
			t.Fatal(err)
		}
		dirs = append(dirs, dir)
	}
	first := readReport(t, dirs[0])
	table := filepath.Join(t.TempDir(), "ablation.md")
	var out bytes.Buffer
	if err := runEval(context.Background(), evalOptions{RunDirs: dirs, Table: table}, &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	again := readReport(t, dirs[0])
	if *again.Model.KNN != *first.Model.KNN || again.Model.Probe.Accuracy != first.Model.Probe.Accuracy {
		t.Errorf("eval of the same checkpoint: %+v, train's report %+v", again.Model.KNN, first.Model.KNN)
	}
	raw, err := os.ReadFile(table)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
	if len(lines) != 5 || strings.Count(string(raw), "raw pixels") != 1 { // header, rule, two runs, pixels once
		t.Fatalf("table:\n%s", raw)
	}
	for i, dir := range dirs {
		rep := readReport(t, dir)
		want := fmt.Sprintf("| %s | fashion_mnist | 3 | %.4f | %.4f | %.4f | %.4f | %.4f |", dir, rep.Model.KNN.Weighted, rep.Model.KNN.Majority,
			rep.Model.KNN.Top1NN, rep.Model.KNN.L2NN1, rep.Model.Probe.Accuracy)
		if !strings.Contains(string(raw), want) {
			t.Errorf("run %d: table lacks %q:\n%s", i, want, raw)
		}
	}
	if !strings.Contains(out.String(), string(raw)) {
		t.Errorf("the printed table differs from the file")
	}

	// --eval.mlp_probe_epochs adds the MLP probe on the features; the rest
	// of the report stays.
	mlpOut := filepath.Join(t.TempDir(), "mlp")
	out.Reset()
	if err := runEval(context.Background(), evalOptions{RunDirs: dirs[:1], Out: mlpOut, MLPProbe: 2}, &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	mlp := readReport(t, mlpOut)
	if mlp.Model.MLP == nil || mlp.Model.MLP.Epochs != 2 || mlp.Pixels.MLP != nil || first.Model.MLP != nil {
		t.Errorf("MLP probe: features %+v, raw pixels %+v; without the flag %+v", mlp.Model.MLP, mlp.Pixels.MLP, first.Model.MLP)
	}
	if *mlp.Model.KNN != *first.Model.KNN || mlp.Model.Probe.Accuracy != first.Model.Probe.Accuracy {
		t.Errorf("with the MLP probe the other figures changed: %+v, %+v", mlp.Model.KNN, first.Model.KNN)
	}
	if !strings.Contains(out.String(), "| MLP probe (200 hidden units) | ") {
		t.Errorf("no MLP probe row in:\n%s", out.String())
	}
	// and again on the last convolutional map (eval.mlp_probe_conv, on by
	// default), h·w·z_dim values per image.
	r, err := run.Open(dirs[0])
	if err != nil {
		t.Fatal(err)
	}
	man, err := graph.ReadManifest(filepath.Join(dirs[0], run.ModelDir))
	if err != nil {
		t.Fatal(err)
	}
	fm := man.FeatureMap
	if c := mlp.Model.MLPConv; c == nil || c.Epochs != 2 || mlp.Model.ConvDim != fm[0]*fm[1]*fm[2] || mlp.Pixels.MLPConv != nil || first.Model.MLPConv != nil || !r.Config.Eval.MLPProbeConv {
		t.Errorf("MLP probe on the conv map: %+v (%d values, feature map %v); raw pixels %+v; without the flag %+v", c, mlp.Model.ConvDim, fm, mlp.Pixels.MLPConv, first.Model.MLPConv)
	}
	if want := fmt.Sprintf("| MLP probe (200 hidden units) on the last convolutional map (%d values) | ", fm[0]*fm[1]*fm[2]); !strings.Contains(out.String(), want) {
		t.Errorf("no %q row in:\n%s", want, out.String())
	}
	// The kNN votes and both probes on that map, flattened and averaged
	// over its positions (eval's TestConvScoresMatchBruteForce checks the
	// figures), and their table.
	if c, a := mlp.Model.Conv, mlp.Model.ConvAvg; c == nil || a == nil || c.KNN == nil || a.KNN == nil || c.MLP != mlp.Model.MLPConv && *c.MLP != *mlp.Model.MLPConv ||
		a.MLP == nil || a.Probe == nil || c.Probe == nil || c.Dim != fm[0]*fm[1]*fm[2] || a.Dim != fm[2] || mlp.Pixels.Conv != nil {
		t.Errorf("conv-map figures: flattened %+v, averaged %+v (feature map %v)", c, a, fm)
	}
	if want := fmt.Sprintf("| top-1 accuracy | z_mean (%d) | conv, flattened (%d) | conv_avg (%d) |", mlp.FeatureDim, fm[0]*fm[1]*fm[2], fm[2]); !strings.Contains(out.String(), want) {
		t.Errorf("no %q table in:\n%s", want, out.String())
	}
	// --eval.probe_epochs trains the linear probe as long as asked, for
	// this evaluation only; the kNN figures do not move.
	epochs := first.Model.Probe.Epochs + 1
	longOut := filepath.Join(t.TempDir(), "long")
	if err := runEval(context.Background(), evalOptions{RunDirs: dirs[:1], Out: longOut, Probe: &epochs}, io.Discard); err != nil {
		t.Fatal(err)
	}
	long := readReport(t, longOut)
	if long.Model.Probe == nil || long.Model.Probe.Epochs != epochs || long.Pixels.Probe == nil || long.Pixels.Probe.Epochs != epochs || *long.Model.KNN != *first.Model.KNN {
		t.Errorf("--eval.probe_epochs %d: probe %+v, raw pixels' %+v, kNN %+v (without: %+v)", epochs, long.Model.Probe, long.Pixels.Probe, long.Model.KNN, first.Model.KNN)
	}
	if r2, err := run.Open(dirs[0]); err != nil || r2.Config.Eval.ProbeEpochs != first.Model.Probe.Epochs {
		t.Errorf("the run's config changed: %v", err)
	}
	if err := runEval(context.Background(), evalOptions{RunDirs: dirs[:1], Out: mlpOut, MLPProbe: -1}, &out); err == nil || !strings.Contains(err.Error(), "--eval.mlp_probe_epochs -1") {
		t.Errorf("a negative --eval.mlp_probe_epochs: %v", err)
	}
}

func readReport(t *testing.T, dir string) eval.Report {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rep eval.Report
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatal(err)
	}
	return rep
}

// --features goes with --bank and --out, not with a run's flags; each
// mistake is one error naming the flags.
func TestEvalFeaturesFlags(t *testing.T) {
	minus := -1
	for _, c := range []struct {
		o    evalOptions
		want string
	}{
		{evalOptions{Features: "q", Out: "o"}, "needs --bank"},
		{evalOptions{Features: "q", Bank: "b"}, "needs --bank BANK and --out DIR"},
		{evalOptions{Bank: "b", Out: "o"}, "needs --bank"},
		{evalOptions{Features: "q", Bank: "b", Out: "o", RunDirs: []string{"r"}}, "leave out --run-dir"},
		{evalOptions{Features: "q", Bank: "b", Out: "o", Probe: &minus}, "--eval.probe_epochs -1"},
		{evalOptions{RunDirs: []string{"r"}, Probe: &minus}, "--eval.probe_epochs -1"},
		{evalOptions{Features: "q", Bank: filepath.Join(t.TempDir(), "none"), Out: "o"}, "--bank"},
	} {
		err := runEval(context.Background(), c.o, io.Discard)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.o, err, c.want)
		}
	}
}
