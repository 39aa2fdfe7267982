package main

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/infomax/infomax/exporter"
	"github.com/infomax/infomax/testkit/fullsize"
)

// streamSteps is how long each training run of BenchmarkStreamingTinyImageNet
// is: 300 steps of 100 images, 0.3 of an epoch of the full training split.
const streamSteps = 300

// BenchmarkStreamingTinyImageNet trains configs/tiny_imagenet_seed.yaml on Tiny
// ImageNet at full size (the official zip layout, 100,000 training images,
// built from the subset's images repeated) in memory and streaming, then
// streaming on a corpus twice that size and from the sharded layout
// (runner data shards), each run a process of its own, and
// prints images/s, the data wait and the peak resident memory of each
// (the targets: streaming under 1.5 GiB, the same at twice the size, at
// ≥ 0.9× the in-memory images/s, waiting for data under 5%). Then it
// evaluates the streamed run (runner eval: the kNN bank and the grids
// streamed) and prints its time and peak memory.
func BenchmarkStreamingTinyImageNet(b *testing.B) {
	root, err := exporter.Root()
	if err != nil {
		b.Fatal(err)
	}
	bin := runnerBinary(b)
	tmp := b.TempDir()
	zips := map[int]string{}
	for _, copies := range []int{5, 10} {
		zips[copies] = filepath.Join(tmp, fmt.Sprintf("tiny-imagenet-200-x%d.zip", copies))
		n, err := fullsize.TinyImageNet(root, zips[copies], copies)
		if err != nil {
			b.Fatal(err)
		}
		fmt.Printf("streaming benchmark: %s holds %d training images\n", filepath.Base(zips[copies]), n)
	}
	line := regexp.MustCompile(`train: \d+ steps in \S+ \(([0-9.]+) images/s\); waiting for data ([0-9.]+)% of that time; peak resident memory (\d+) MiB`)
	run := func(name string, args ...string) (ips, wait, peakGiB, sec float64) {
		cmd := exec.Command(bin, args...)
		cmd.Dir = root
		t := time.Now()
		out, err := cmd.CombinedOutput()
		sec = time.Since(t).Seconds()
		if err != nil {
			b.Fatalf("%s: %v\n%s", name, err, out)
		}
		peakGiB = float64(cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss) / (1 << 20)
		if m := line.FindSubmatch(out); m != nil {
			ips, _ = strconv.ParseFloat(string(m[1]), 64)
			wait, _ = strconv.ParseFloat(string(m[2]), 64)
		}
		return
	}
	train := func(name, zip, dir string, extra ...string) (float64, float64, float64) {
		args := append([]string{"train", "--config", "configs/tiny_imagenet_seed.yaml", "--data.path", zip, "--data.cache_dir", "off",
			"--eval.after_training=false", "--train.log_every", "100", "--max-steps", strconv.Itoa(streamSteps), "--run-dir", dir}, extra...)
		ips, wait, peak, sec := run(name, args...)
		fmt.Printf("Tiny ImageNet full size, %s: %d steps of 100: %.0f images/s, waiting for data %.2f%%, peak resident memory %.2f GiB (process %.0f s)\n",
			name, streamSteps, ips, wait, peak, sec)
		return ips, wait, peak
	}
	for i := 0; i < b.N; i++ {
		memIPS, _, memPeak := train("in memory, 100,000 images", zips[5], filepath.Join(tmp, fmt.Sprintf("mem%d", i)))
		stDir := filepath.Join(tmp, fmt.Sprintf("stream%d", i))
		stIPS, stWait, stPeak := train("streaming, 100,000 images", zips[5], stDir, "--data.streaming")
		_, _, bigPeak := train("streaming, 200,000 images", zips[10], filepath.Join(tmp, fmt.Sprintf("stream2x%d", i)), "--data.streaming")
		shards := filepath.Join(tmp, fmt.Sprintf("shards%d", i))
		_, _, shardPeak, shardSec := run("shards", "data", "shards", "--format", "tiny_imagenet", "--path", zips[5], "--out", shards)
		fmt.Printf("runner data shards of the 100,000-image zip: %.0f s, peak resident memory %.2f GiB\n", shardSec, shardPeak)
		train("streaming, 100,000 images from shards (shuffle buffer 10,000)", shards, filepath.Join(tmp, fmt.Sprintf("streamshards%d", i)), "--data.streaming", "--data.format", "shards")
		fmt.Printf("streaming vs in memory: %.2f× the images/s, %.2f× the peak memory; at twice the size %.2f× the peak memory\n",
			stIPS/memIPS, stPeak/memPeak, bigPeak/stPeak)
		b.ReportMetric(stIPS/memIPS, "x-images/s")
		b.ReportMetric(stPeak, "GiB-peak-streaming")
		b.ReportMetric(stWait, "%-waiting-for-data")
		_, _, evalPeak, evalSec := run("eval", "eval", "--run-dir", stDir)
		fmt.Printf("runner eval of the streamed run (100,000 + 10,000 images streamed, kNN, probe, grids): %.0f s, peak resident memory %.2f GiB\n", evalSec, evalPeak)
	}
}
