package main

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/infomax/infomax/graph"
	"github.com/infomax/infomax/internal/cpuinfo"
	"github.com/infomax/infomax/search"
	"github.com/infomax/infomax/testkit/testmodel"
)

// model.precision auto on the run's CPU, with the CPU's answer injected
// (INFOMAX_CPU_BF16): a CPU without native bfloat16 trains in float32 and
// says why; the run resumed on a CPU with AMX keeps float32 and says how to
// change it; --model.precision bfloat16 changes it (a bfloat16 model/
// installed, the checkpoint's weights carried over) and the report and an
// index record it.
func TestPrecisionAutoAndResume(t *testing.T) {
	if testing.Short() {
		t.Skip("exports a bfloat16 model and trains it")
	}
	cfgPath := smallConfigWith(t, smallConfigWith(t, smallRun(t, ""), "eval: {weighted_k: 50, after_training: false}"), "model: {z_dim: 16, precision: auto}")
	dir := filepath.Join(t.TempDir(), "run")
	train := func(o trainOptions) string {
		t.Helper()
		var out bytes.Buffer
		o.RunDir = dir
		if err := runTrain(context.Background(), o, &out); err != nil {
			t.Fatalf("%v\n%s", err, out.String())
		}
		return out.String()
	}
	yaml := func() string {
		raw, err := os.ReadFile(filepath.Join(dir, "config.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		return string(raw)
	}

	t.Setenv(cpuinfo.Env, "none")
	out := train(trainOptions{ConfigFile: cfgPath, MaxSteps: 3})
	if want := "precision: float32 (auto: neither AMX nor AVX512_BF16, from INFOMAX_CPU_BF16)\n"; !strings.Contains(out, want) {
		t.Errorf("no %q in:\n%s", want, out)
	}
	if y := yaml(); !strings.Contains(y, "# model.precision: float32, chosen by auto") || !strings.Contains(y, "    precision: float32\n") {
		t.Errorf("config.yaml does not record the precision:\n%s", y)
	}

	// On a CPU with AMX the run keeps its precision, and says so.
	t.Setenv(cpuinfo.Env, "amx")
	out = train(trainOptions{Resume: true, MaxSteps: 6})
	if want := "precision: float32 (the run's; auto: AMX, from INFOMAX_CPU_BF16 would choose bfloat16 on this CPU; --model.precision bfloat16 changes it)"; !strings.Contains(out, want) {
		t.Errorf("no %q in:\n%s", want, out)
	}
	if strings.Contains(out, "exporting") || !strings.Contains(yaml(), "    precision: float32\n") {
		t.Errorf("the resumed run changed its model or config:\n%s\n%s", out, yaml())
	}
	// So does a resume with a config of auto.
	out = train(trainOptions{ConfigFile: cfgPath, Resume: true, MaxSteps: 7})
	if want := "precision: float32 (the run's, kept: auto: AMX, from INFOMAX_CPU_BF16 would choose bfloat16 on this CPU"; !strings.Contains(out, want) {
		t.Errorf("no %q in:\n%s", want, out)
	}

	// --model.precision bfloat16 changes it: a bfloat16 model, the same weights.
	out = train(trainOptions{Resume: true, MaxSteps: 10, Flags: flags(t, "--model.precision", "bfloat16", "--eval.after_training=true")})
	if want := "precision: bfloat16 (changed from the run's float32 by --model.precision; the checkpoint's weights carry over)"; !strings.Contains(out, want) {
		t.Errorf("no %q in:\n%s", want, out)
	}
	if !strings.Contains(out, "resumed") || !strings.Contains(yaml(), "    precision: bfloat16\n") {
		t.Errorf("not resumed, or config.yaml not bfloat16:\n%s\n%s", out, yaml())
	}
	man, err := graph.ReadManifest(filepath.Join(dir, "model"))
	if err != nil || man.Precision != "bfloat16" {
		t.Fatalf("model/ manifest precision %v (%v), want bfloat16", man, err)
	}
	ms := readMetrics(t, dir)
	if len(ms) != 10 || ms[9].Step != 10 {
		t.Fatalf("metrics: %d rows, want steps 1..10", len(ms))
	}
	for _, m := range ms[7:] {
		if math.IsNaN(m.Loss) || math.IsInf(m.Loss, 0) || m.Loss <= 0 {
			t.Errorf("bfloat16 step %d: loss %v", m.Step, m.Loss)
		}
	}
	var rep struct{ Precision string }
	raw, err := os.ReadFile(filepath.Join(dir, "report.json"))
	if err == nil {
		err = json.Unmarshal(raw, &rep)
	}
	if err != nil || rep.Precision != "bfloat16" {
		t.Errorf("report.json precision %q (%v), want bfloat16", rep.Precision, err)
	}

	// An index records what its features were computed in: the bfloat16
	// model encodes in bfloat16 on a CPU without native bfloat16 too.
	t.Setenv(cpuinfo.Env, "none")
	images := testmodel.FashionMNISTFolder(t, 8, 0)
	idx := filepath.Join(t.TempDir(), "x.idx")
	var iout bytes.Buffer
	if err := runIndex(context.Background(), indexOptions{RunDir: dir, Images: images, Out: idx, Compute: "auto"}, &iout); err != nil {
		t.Fatal(err)
	}
	ix, err := search.Load(t.Context(), idx)
	if err != nil || ix.Precision != "bfloat16" || !strings.Contains(iout.String(), "in bfloat16 (the model's own: trained in bfloat16)") {
		t.Fatalf("index precision %v (%v); printed %s", ix, err, iout.String())
	}
	// A query encoded as the index was finds its own image at cosine 1.
	var sout bytes.Buffer
	if err := runSearch(context.Background(), searchOptions{Index: idx, Query: ix.Paths[3], K: 1, Metric: "cosine", JSON: true}, &sout); err != nil {
		t.Fatal(err)
	}
	var hits []search.Hit
	if err := json.Unmarshal(sout.Bytes(), &hits); err != nil || len(hits) != 1 || hits[0].Index != 3 || hits[0].Score < 0.99999 {
		t.Errorf("search for an indexed image: %s (%v)", sout.String(), err)
	}
}
