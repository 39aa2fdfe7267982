package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/infomax/infomax/checkpoint"
	"github.com/infomax/infomax/internal/store"
	"github.com/infomax/infomax/run"
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

// bucketFile copies one object of a run in a bucket into a local folder
// (for the helpers that read run files).
func bucketFile(t *testing.T, url, rel string) string {
	t.Helper()
	b, err := store.ReadFile(context.Background(), store.Join(url, rel), 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, filepath.Base(rel)), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func bucketLatest(t *testing.T, url string) checkpoint.State {
	t.Helper()
	var st checkpoint.State
	if err := json.Unmarshal(must(store.ReadFile(context.Background(), store.Join(url, "checkpoints", "latest.json"), 1<<20)), &st); err != nil {
		t.Fatal(err)
	}
	return st
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// resumedLosses compares two runs' metrics.jsonl step by step (the tolerance
// of interruptAndResume: a resumed run's first steps may round differently).
func resumedLosses(t *testing.T, a, b []metric) {
	t.Helper()
	if len(a) != len(b) {
		t.Fatalf("metrics: %d steps against %d", len(a), len(b))
	}
	for i := range a {
		if a[i].Step != b[i].Step {
			t.Fatalf("line %d: step %d against %d", i, a[i].Step, b[i].Step)
		}
		for _, pair := range [][2]float64{{a[i].Loss, b[i].Loss}, {a[i].Global, b[i].Global}, {a[i].Local, b[i].Local}, {a[i].Prior, b[i].Prior}} {
			if math.Abs(pair[0]-pair[1]) > 1e-4*math.Max(1, math.Abs(pair[0])) {
				t.Fatalf("step %d: %+v against %+v", a[i].Step, a[i], b[i])
			}
		}
	}
}

var heldCheckpoint = regexp.MustCompile(`checkpoints/(ckpt-0000[4-6]0)\.`)

// The test: a run trains into s3://…, is killed (SIGKILL) while a
// checkpoint's upload is held by the network, loses every local file, and
// resumes from the bucket on an empty cache from an unrelated working
// directory: the same losses as an uninterrupted run, and the bucket holds
// the whole run folder (report, plots, model) with only the kept
// checkpoints.
func TestTrainInABucketKilledMidUpload(t *testing.T) {
	ctx := context.Background()
	cfg := smallRun(t, "")
	whole := filepath.Join(t.TempDir(), "whole")
	if err := runTrain(ctx, trainOptions{ConfigFile: cfg, RunDir: whole, Flags: flags(t)}, new(bytes.Buffer)); err != nil {
		t.Fatal(err)
	}
	proxy := emulators.Start(t, "runs").Faulty(t, "s3")
	const url = "s3://runs/team/small"
	// The first upload of a checkpoint after step 30 never completes.
	proxy.Set(func(r *http.Request) emulators.Fault {
		if r.Method == http.MethodPut && heldCheckpoint.MatchString(r.URL.Path) {
			return emulators.Hold
		}
		return emulators.Pass
	})
	first := t.TempDir()
	cmd := exec.Command(runnerBinary(t), "train", "--config", cfg, "--run-dir", url)
	cmd.Env = append(os.Environ(), "INFOMAX_CACHE="+first)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var held *http.Request
	select {
	case held = <-proxy.Held():
	case err := <-exited:
		t.Fatalf("the run ended (%v) before an upload was held:\n%s", err, out.String())
	}
	cmd.Process.Signal(syscall.SIGKILL)
	<-exited
	proxy.Set(nil)
	heldPrefix := heldCheckpoint.FindStringSubmatch(held.URL.Path)[1]
	st := bucketLatest(t, url)
	if st.Prefix >= heldPrefix {
		t.Fatalf("killed while %s uploaded, yet latest.json names %s", heldPrefix, st.Prefix)
	}
	t.Logf("killed during the upload of %s; the bucket's latest checkpoint: %s", held.URL.Path, st.Prefix)
	if err := os.RemoveAll(first); err != nil {
		t.Fatal(err)
	}

	t.Setenv("INFOMAX_CACHE", t.TempDir())
	t.Chdir(t.TempDir())
	var log bytes.Buffer
	if err := runTrain(ctx, trainOptions{RunDir: url, Resume: true, Flags: flags(t)}, &log); err != nil {
		t.Fatalf("resume: %v\n%s", err, log.String())
	}
	if want := fmt.Sprintf("resumed %s from %s", url, st.Prefix); !strings.Contains(log.String(), want) {
		t.Errorf("the resume does not say %q:\n%s", want, log.String())
	}
	resumedLosses(t, readMetrics(t, whole), readMetrics(t, bucketFile(t, url, "metrics.jsonl")))
	for _, f := range []string{"config.yaml", "model/saved_model.pb", "model/manifest.json", "report.json", "report.md", "loss.png", "features_test.npy"} {
		if ok, err := store.Exists(ctx, store.Join(url, f)); !ok || err != nil {
			t.Errorf("the bucket has no %s (%v)", f, err)
		}
	}
	ckpts := must(store.List(ctx, store.Join(url, "checkpoints", "*")))
	last := bucketLatest(t, url)
	if last.Step != 60 || !slices.Equal(last.Kept, []string{"ckpt-000050", "ckpt-000060"}) {
		t.Errorf("latest.json at the end: %+v", last)
	}
	for _, o := range ckpts {
		if p := checkpoint.PrefixOf(path.Base(o)); p != "" && !slices.Contains(last.Kept, p) {
			t.Errorf("%s is left in the bucket; latest.json keeps %v", o, last.Kept)
		}
	}
	// What reads a run reads this one: the figures the run's report has.
	rep := filepath.Join(t.TempDir(), "report")
	if err := runEval(ctx, evalOptions{RunDirs: []string{url}, Out: rep}, new(bytes.Buffer)); err != nil {
		t.Fatal(err)
	}
	if got, want := readReport(t, rep), readReport(t, bucketFile(t, url, "report.json")); *got.Model.KNN != *want.Model.KNN || got.Step != 60 {
		t.Errorf("runner eval of the bucket's run: %+v at step %d; the run's own report: %+v", *got.Model.KNN, got.Step, *want.Model.KNN)
	}
}

// The store failing: requests answered 500 and connections dropped are
// tried again and the run goes on; a checkpoint's upload failing for good
// stops the run with an error naming the object, the bucket's last
// complete checkpoint intact, and --resume continues from it. A damaged
// checkpoint (truncated, missing, or latest.json pointing at none) is an
// error naming the object for what reads the run, and --resume says so and
// continues from the newest complete one.
func TestBucketRunFaults(t *testing.T) {
	ctx := context.Background()
	cfg := smallRun(t, "")
	whole := filepath.Join(t.TempDir(), "whole")
	if err := runTrain(ctx, trainOptions{ConfigFile: cfg, RunDir: whole, Flags: flags(t)}, new(bytes.Buffer)); err != nil {
		t.Fatal(err)
	}
	proxy := emulators.Start(t, "runs").Faulty(t, "s3")
	t.Setenv("INFOMAX_CACHE", t.TempDir())

	t.Run("transient", func(t *testing.T) {
		const url = "s3://runs/transient"
		var mu sync.Mutex
		tries := map[string]int{}
		proxy.Set(func(r *http.Request) emulators.Fault {
			if r.Method != http.MethodPut || !strings.Contains(r.URL.Path, "/checkpoints/") {
				return emulators.Pass
			}
			mu.Lock()
			defer mu.Unlock()
			tries[r.URL.Path]++
			switch n := tries[r.URL.Path]; {
			case strings.HasSuffix(r.URL.Path, "latest.json") && n == 1:
				return emulators.Drop
			case n <= 2:
				return emulators.Fail
			}
			return emulators.Pass
		})
		defer proxy.Set(nil)
		var log bytes.Buffer
		if err := runTrain(ctx, trainOptions{ConfigFile: cfg, RunDir: url, MaxSteps: 30, Flags: flags(t)}, &log); err != nil {
			t.Fatalf("%v\n%s", err, log.String())
		}
		if proxy.Count(emulators.Fail) == 0 || proxy.Count(emulators.Drop) == 0 {
			t.Errorf("no fault was injected: %d failed, %d dropped", proxy.Count(emulators.Fail), proxy.Count(emulators.Drop))
		}
		if st := bucketLatest(t, url); st.Step != 30 {
			t.Errorf("the bucket's latest checkpoint is at step %d, want 30", st.Step)
		}
		resumedLosses(t, readMetrics(t, whole)[:30], readMetrics(t, bucketFile(t, url, "metrics.jsonl")))
	})

	const url = "s3://runs/failing"
	t.Run("permanent", func(t *testing.T) {
		proxy.Set(func(r *http.Request) emulators.Fault {
			if r.Method == http.MethodPut && heldCheckpoint.MatchString(r.URL.Path) || strings.Contains(r.URL.Path, "ckpt-000030.") {
				return emulators.Fail
			}
			return emulators.Pass
		})
		var log bytes.Buffer
		err := runTrain(ctx, trainOptions{ConfigFile: cfg, RunDir: url, Flags: flags(t)}, &log)
		proxy.Set(nil)
		st := bucketLatest(t, url)
		if err == nil || !regexp.MustCompile(`s3://runs/failing/checkpoints/ckpt-0000[3-6]0\.`).MatchString(err.Error()) ||
			!strings.Contains(err.Error(), fmt.Sprintf("tried %d times", run.Tries)) ||
			!strings.Contains(err.Error(), fmt.Sprintf("its checkpoint of step %d is complete there", st.Step)) ||
			!strings.Contains(err.Error(), "--run-dir "+url+" --resume") {
			t.Fatalf("error %v (the bucket's latest: step %d)\n%s", err, st.Step, log.String())
		}
		if st.Step >= 30 {
			t.Fatalf("the bucket's latest checkpoint is at step %d: uploads after step 30 failed", st.Step)
		}
		log.Reset()
		if err := runTrain(ctx, trainOptions{RunDir: url, Resume: true, Flags: flags(t)}, &log); err != nil {
			t.Fatalf("resume: %v\n%s", err, log.String())
		}
		if !strings.Contains(log.String(), fmt.Sprintf("from %s", st.Prefix)) {
			t.Errorf("the resume does not start at %s:\n%s", st.Prefix, log.String())
		}
		resumedLosses(t, readMetrics(t, whole), readMetrics(t, bucketFile(t, url, "metrics.jsonl")))
	})

	// Each read and resume below is on a new machine (an empty cache).
	evalErr := func() error {
		t.Setenv("INFOMAX_CACHE", t.TempDir())
		return runEval(ctx, evalOptions{RunDirs: []string{url}, Out: t.TempDir()}, new(bytes.Buffer))
	}
	resume := func(t *testing.T, want ...string) {
		t.Helper()
		t.Setenv("INFOMAX_CACHE", t.TempDir())
		var log bytes.Buffer
		if err := runTrain(ctx, trainOptions{RunDir: url, Resume: true, Flags: flags(t)}, &log); err != nil {
			t.Fatalf("resume: %v\n%s", err, log.String())
		}
		for _, w := range want {
			if !strings.Contains(log.String(), w) {
				t.Errorf("the resume does not say %q:\n%s", w, log.String())
			}
		}
		if st := bucketLatest(t, url); st.Step != 60 {
			t.Errorf("after the resume the bucket's latest is step %d", st.Step)
		}
		if err := evalErr(); err != nil {
			t.Errorf("eval after the resume: %v", err)
		}
	}
	data := url + "/checkpoints/ckpt-000060.data-00000-of-00001"
	index := url + "/checkpoints/ckpt-000060.index"
	t.Run("truncated", func(t *testing.T) {
		b := must(store.ReadFile(ctx, data, 1<<30))
		if err := store.WriteFile(ctx, data, b[:len(b)/2]); err != nil {
			t.Fatal(err)
		}
		if err := evalErr(); err == nil || !strings.Contains(err.Error(), data+": ") || !strings.Contains(err.Error(), "truncated") {
			t.Errorf("eval of a run whose checkpoint is truncated: %v", err)
		}
		resume(t, "cannot resume from "+url+"/checkpoints/ckpt-000060", "resuming from ckpt-000050 (step 50)")
	})
	t.Run("missing", func(t *testing.T) {
		if err := store.Remove(ctx, index); err != nil {
			t.Fatal(err)
		}
		if err := evalErr(); err == nil || !strings.Contains(err.Error(), index+" is missing") {
			t.Errorf("eval of a run whose checkpoint has no .index: %v", err)
		}
		resume(t, index+" is missing", "resuming from ckpt-000050 (step 50)")
	})
	t.Run("latest names none", func(t *testing.T) {
		st := bucketLatest(t, url)
		st.Prefix, st.Step = "ckpt-000070", 70
		if err := store.WriteFile(ctx, url+"/checkpoints/latest.json", must(json.Marshal(st))); err != nil {
			t.Fatal(err)
		}
		if err := evalErr(); err == nil || !strings.Contains(err.Error(), "ckpt-000070") {
			t.Errorf("eval of a run whose latest.json names a checkpoint not there: %v", err)
		}
		resume(t, url+"/checkpoints/ckpt-000070.index is missing", "resuming from ckpt-000060 (step 60)")
	})
}

// A bucket the run cannot write to is one message before any work.
func TestBucketRunNotWritable(t *testing.T) {
	emulators.Start(t, "runs")
	var log bytes.Buffer
	err := runTrain(context.Background(), trainOptions{ConfigFile: smallRun(t, ""), RunDir: "s3://no-such-bucket/run", Flags: flags(t)}, &log)
	if err == nil || !strings.Contains(err.Error(), "cannot write the run folder s3://no-such-bucket/run") || !strings.Contains(err.Error(), "credentials") {
		t.Fatalf("error %v", err)
	}
	if strings.Contains(log.String(), "step") {
		t.Errorf("the run started before the check:\n%s", log.String())
	}
}

// Training into GCS: the run's report in the bucket, and encoder.Load and
// runner eval of the bucket's run from anywhere give its figures.
func TestTrainInGCS(t *testing.T) {
	ctx := context.Background()
	emulators.Start(t, "runs")
	t.Setenv("INFOMAX_CACHE", t.TempDir())
	const url = "gs://runs/small"
	var log bytes.Buffer
	if err := runTrain(ctx, trainOptions{ConfigFile: smallRun(t, ""), RunDir: url, MaxSteps: 20, Flags: flags(t)}, &log); err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	if !strings.Contains(log.String(), url+" holds the run, its latest checkpoint at step 20") {
		t.Errorf("the run does not say where it is:\n%s", log.String())
	}
	t.Chdir(t.TempDir())
	rep := filepath.Join(t.TempDir(), "report")
	if err := runEval(ctx, evalOptions{RunDirs: []string{url}, Out: rep}, new(bytes.Buffer)); err != nil {
		t.Fatal(err)
	}
	got, want := readReport(t, rep), readReport(t, bucketFile(t, url, "report.json"))
	if *got.Model.KNN != *want.Model.KNN || got.Step != 20 {
		t.Errorf("runner eval of the bucket's run: %+v at step %d; the run's own report: %+v", *got.Model.KNN, got.Step, *want.Model.KNN)
	}
}

// Ctrl-C of a run in a bucket: the checkpoint written at the interrupt
// reaches the bucket before the process exits (status 130), and the
// printed resume command names the bucket.
func TestBucketRunInterrupted(t *testing.T) {
	cfg := smallConfigWith(t, smallRun(t, ""), "train: {batch_size: 32, epochs: 10, log_every: 1, checkpoint_every: 10, keep_checkpoints: 2, intra_op_threads: 2, inter_op_threads: 1}")
	emulators.Start(t, "runs")
	const url = "s3://runs/interrupted"
	cmd := exec.Command(runnerBinary(t), "train", "--config", cfg, "--run-dir", url)
	cmd.Env = append(os.Environ(), "INFOMAX_CACHE="+t.TempDir())
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	// Interrupt once a first checkpoint is in the bucket, however slow the
	// machine; a run that ends first fails below.
	for {
		if ok, _ := store.Exists(context.Background(), url+"/checkpoints/latest.json"); ok {
			break
		}
		select {
		case err := <-exited:
			t.Fatalf("the run ended (%v) before its first checkpoint reached the bucket:\n%s", err, out.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	cmd.Process.Signal(syscall.SIGINT)
	err := <-exited
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 130 {
		t.Fatalf("after SIGINT: %v, want exit status 130\n%s", err, out.String())
	}
	m := regexp.MustCompile(`stopped at step (\d+), checkpoint written; resume with:\n  \S+ train --run-dir (\S+) --resume`).FindStringSubmatch(out.String())
	if m == nil || m[2] != url {
		t.Fatalf("no resume hint naming %s:\n%s", url, out.String())
	}
	if st := bucketLatest(t, url); fmt.Sprint(st.Step) != m[1] {
		t.Errorf("stopped at step %s, and the bucket's latest checkpoint is step %d", m[1], st.Step)
	}
}
