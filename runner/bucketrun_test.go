package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/infomax/infomax/testkit/emulators"
)

// runner eval --run-dir s3://… (a run folder uploaded to the in-process S3
// server), from an unrelated working directory: the figures and features
// of the local folder's evaluation; without --out it says to pass one.
func TestEvalARunInABucket(t *testing.T) {
	ctx := context.Background()
	cfg := smallRun(t, "")
	dir := filepath.Join(t.TempDir(), "run")
	if err := runTrain(ctx, trainOptions{ConfigFile: cfg, RunDir: dir, MaxSteps: 3, Flags: flags(t)}, new(bytes.Buffer)); err != nil {
		t.Fatal(err)
	}
	want := readReport(t, dir)
	emulators.Start(t, "runs")
	const url = "s3://runs/team/run"
	emulators.Upload(t, dir, url)
	t.Setenv("INFOMAX_CACHE", t.TempDir())
	t.Chdir(t.TempDir())
	out := filepath.Join(t.TempDir(), "report")
	var log bytes.Buffer
	if err := runEval(ctx, evalOptions{RunDirs: []string{url}, Out: out}, &log); err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	got := readReport(t, out)
	if *got.Model.KNN != *want.Model.KNN || got.Model.Probe.Accuracy != want.Model.Probe.Accuracy || got.Step != want.Step || got.ConfigHash != want.ConfigHash {
		t.Errorf("the bucket's run: %+v, probe %v; the local folder's: %+v, probe %v", *got.Model.KNN, got.Model.Probe.Accuracy, *want.Model.KNN, want.Model.Probe.Accuracy)
	}
	for _, f := range []string{"features_train.npy", "features_test.npy"} {
		a, errA := os.ReadFile(filepath.Join(out, f))
		b, errB := os.ReadFile(filepath.Join(dir, f))
		if errA != nil || errB != nil || !bytes.Equal(a, b) {
			t.Errorf("%s differs from the local evaluation's (%v, %v)", f, errA, errB)
		}
	}
	if err := runEval(ctx, evalOptions{RunDirs: []string{url}}, new(bytes.Buffer)); err == nil || !strings.Contains(err.Error(), "--out") {
		t.Errorf("eval of a bucket's run without --out: %v", err)
	}
}
