package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"testing"

	"github.com/infomax/infomax/eval"
	"github.com/infomax/infomax/exporter"
	"github.com/infomax/infomax/testkit/fullsize"
)

// BenchmarkEvalMemory measures what an evaluation holds, each a process of
// its own with its peak resident memory from the kernel: (1) the streamed
// Tiny ImageNet subset trained one epoch (200 steps: its read-ahead window
// fills as in a real run) then evaluated, its training peak
// (the run's own line) against the whole process's; (2) Tiny ImageNet at
// full size (100,000 training images, the official zip layout) in memory,
// trained 20 steps, then `runner eval` alone, with the raw-pixel baseline
// on its sample (eval.raw_pixel_mib).
func BenchmarkEvalMemory(b *testing.B) {
	root, err := exporter.Root()
	if err != nil {
		b.Fatal(err)
	}
	bin := runnerBinary(b)
	tmp := b.TempDir()
	peak := regexp.MustCompile(`peak resident memory (\d+) MiB`)
	run := func(args ...string) (out []byte, maxRSS float64) {
		cmd := exec.Command(bin, args...)
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		if err != nil {
			b.Fatalf("runner %v: %v\n%s", args, err, out)
		}
		return out, float64(cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss) / 1024 // MiB
	}
	for i := 0; i < b.N; i++ {
		out, whole := run("train", "--config", "configs/tiny_imagenet_local_nce.yaml", "--data.path", fullsize.Subset, "--data.streaming",
			"--max-steps", "200", "--eval.every_epochs", "0", "--run-dir", filepath.Join(tmp, "streamed"), "--data.cache_dir", filepath.Join(tmp, "cache"))
		m := peak.FindSubmatch(out)
		if m == nil {
			b.Fatalf("no training peak in:\n%s", out)
		}
		train, _ := strconv.ParseFloat(string(m[1]), 64)
		fmt.Printf("eval memory: streamed Tiny ImageNet subset: training peak %.0f MiB, the whole process (evaluation after) %.0f MiB: evaluation %+.0f MiB over training\n",
			train, whole, whole-train)

		zip := filepath.Join(tmp, "tiny-imagenet-200.zip")
		if _, err := fullsize.TinyImageNet(root, zip, 5); err != nil {
			b.Fatal(err)
		}
		dir := filepath.Join(tmp, "full")
		out, trained := run("train", "--config", "configs/tiny_imagenet_seed.yaml", "--data.path", zip, "--max-steps", "20",
			"--eval.after_training=false", "--run-dir", dir, "--data.cache_dir", filepath.Join(tmp, "cache"))
		_, evaluated := run("eval", "--run-dir", dir)
		raw, err := os.ReadFile(filepath.Join(dir, "report.json"))
		if err != nil {
			b.Fatal(err)
		}
		var rep eval.Report
		if err := json.Unmarshal(raw, &rep); err != nil || rep.Pixels == nil {
			b.Fatalf("report.json: %v", err)
		}
		fmt.Printf("eval memory: Tiny ImageNet at full size in memory (%d training images): training peak %.0f MiB; runner eval %.0f MiB (%.2f GiB), raw pixels on %d of %d training images (weighted kNN %.4f, probe %.4f)\n",
			rep.TrainSize, trained, evaluated, evaluated/1024, rep.Pixels.BankImages, rep.Pixels.BankOf, rep.Pixels.KNN.Weighted, rep.Pixels.Probe.Accuracy)
		b.ReportMetric(evaluated/1024, "GiB-eval-full")
		b.ReportMetric(whole-train, "MiB-streamed-eval-over-training")
	}
}
