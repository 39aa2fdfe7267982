package main

import (
	"bytes"
	"context"
	"math"
	"path/filepath"
	"testing"

	"github.com/infomax/infomax/checkpoint"
)

// wantCosine is step k's rate under train.lr_schedule: cosine, computed here
// from the formula, as float32 (the graph's variable).
func wantCosine(base, scale float64, k, full int64) float64 {
	return float64(float32(base * scale * (1 + math.Cos(math.Pi*float64(k-1)/float64(full))) / 2))
}

// train.lr_schedule: cosine sets every step's learning rate from the
// formula; a run stopped by --max-steps and resumed continues the same curve
// with the same losses; a rollback lowers the whole curve by
// train.lr_backoff and latest.json keeps that for a resume.
func TestCosineLearningRate(t *testing.T) {
	cfg := smallRun(t, "") // 3 epochs of 20 steps, optimizer.learning_rate 1e-3
	cosine := func(args ...string) trainOptions {
		return trainOptions{ConfigFile: cfg, Flags: flags(t, append([]string{"--train.lr_schedule", "cosine"}, args...)...)}
	}
	whole := filepath.Join(t.TempDir(), "whole")
	o := cosine()
	o.RunDir = whole
	var out bytes.Buffer
	if err := runTrain(context.Background(), o, &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	a := readMetrics(t, whole)
	if len(a) != 60 {
		t.Fatalf("%d logged steps, want 60", len(a))
	}
	for _, m := range a {
		if want := wantCosine(1e-3, 1, m.Step, 60); m.LR != want {
			t.Fatalf("step %d: learning rate %v, want %v", m.Step, m.LR, want)
		}
	}
	if a[0].LR != float64(float32(1e-3)) || a[59].LR > 1e-6 {
		t.Errorf("the schedule runs from %v to %v; want 1e-3 to nearly 0", a[0].LR, a[59].LR)
	}

	// Stopped at step 30 (mid-schedule: --max-steps does not shorten it)
	// and resumed: the same rates and losses.
	part := filepath.Join(t.TempDir(), "part")
	o = cosine()
	o.RunDir, o.MaxSteps = part, 30
	if err := runTrain(context.Background(), o, &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if err := runTrain(context.Background(), trainOptions{RunDir: part, Resume: true}, &out); err != nil {
		t.Fatalf("resume: %v\n%s", err, out.String())
	}
	b := readMetrics(t, part)
	if len(b) != len(a) {
		t.Fatalf("%d logged steps stopped and resumed, %d uninterrupted", len(b), len(a))
	}
	for i := range a {
		if a[i].Step != b[i].Step || a[i].LR != b[i].LR || math.Abs(a[i].Loss-b[i].Loss) > 1e-4*math.Max(1, math.Abs(a[i].Loss)) {
			t.Fatalf("uninterrupted %+v, stopped at 30 and resumed %+v", a[i], b[i])
		}
	}

	// A non-finite loss at step 25 rolls back to step 20 with the curve
	// times 0.25, which the checkpoints keep.
	rolled := filepath.Join(t.TempDir(), "rolled")
	o = cosine("--train.force_nonfinite_at", "25", "--train.on_nonfinite", "rollback", "--train.lr_backoff", "0.25")
	o.RunDir, o.MaxSteps = rolled, 40
	if err := runTrain(context.Background(), o, &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	st, err := checkpoint.Dir{Path: filepath.Join(rolled, "checkpoints")}.Latest()
	if err != nil {
		t.Fatal(err)
	}
	if st.Step != 40 || st.LRScale != 0.25 {
		t.Fatalf("latest.json after the rollback: step %d, lr_scale %v; want 40 and 0.25", st.Step, st.LRScale)
	}
	if err := runTrain(context.Background(), trainOptions{RunDir: rolled, Resume: true}, &out); err != nil {
		t.Fatalf("resume: %v\n%s", err, out.String())
	}
	last := map[int64]float64{}
	for _, m := range readMetrics(t, rolled) {
		last[m.Step] = m.LR // the steps after the rollback replace the spoilt ones
	}
	for k := int64(1); k <= 60; k++ {
		scale := 1.0
		if k > 20 {
			scale = 0.25
		}
		if want := wantCosine(1e-3, scale, k, 60); last[k] != want {
			t.Fatalf("step %d after the rollback (and a resume at 40): learning rate %v, want %v", k, last[k], want)
		}
	}
}
