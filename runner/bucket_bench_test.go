package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"

	"github.com/spf13/pflag"

	"github.com/infomax/infomax/config"
	"github.com/infomax/infomax/exporter"
	"github.com/infomax/infomax/internal/cpuinfo"
	"github.com/infomax/infomax/testkit/emulators"
	"github.com/infomax/infomax/testkit/testmodel"
)

// BenchmarkBucketStepRate trains the CIFAR-10 config for 300 steps with a
// checkpoint every 50, into a local folder and into s3:// (the in-process
// S3 server, which shares this machine's cores), in alternating rounds, and
// prints the training loop's images/s of each, their medians and the ratio
// (the target: the bucket's at least 0.95× the local one's).
func BenchmarkBucketStepRate(b *testing.B) {
	root, err := exporter.Root()
	if err != nil {
		b.Fatal(err)
	}
	file := filepath.Join(root, "configs", "cifar10.yaml")
	archive := filepath.Join(root, "..", "shared", "data", "cifar10-jpeg.tar.gz")
	cfg, err := config.Load(file, nil)
	if err != nil {
		b.Fatal(err)
	}
	exportDir := testmodel.Export(b, &cfg.Config)
	emulators.Start(b, "runs")
	b.Setenv("INFOMAX_CACHE", b.TempDir())
	cache := b.TempDir()
	const steps, every = 300, 50
	rate := regexp.MustCompile(`train: \d+ steps in \S+ \(([0-9.]+) images/s\)`)
	train := func(runDir string) float64 {
		fs := pflag.NewFlagSet("bench", pflag.ContinueOnError)
		config.AddFlags(fs)
		fs.Parse([]string{"--data.path", archive, "--export_dir", exportDir, "--data.cache_dir", cache, "--train.log_every", "100",
			"--train.checkpoint_every", strconv.Itoa(every), "--eval.every_epochs", "0", "--eval.after_training=false"})
		var out bytes.Buffer
		if err := runTrain(context.Background(), trainOptions{ConfigFile: file, RunDir: runDir, MaxSteps: steps, Flags: fs}, &out); err != nil {
			b.Fatalf("%v\n%s", err, out.String())
		}
		m := rate.FindStringSubmatch(out.String())
		if m == nil {
			b.Fatalf("no images/s in:\n%s", out.String())
		}
		v, _ := strconv.ParseFloat(m[1], 64)
		return v
	}
	train(filepath.Join(b.TempDir(), "warm-up")) // decodes the archive into the cache
	for i := 0; i < b.N; i++ {
		var local, bucket []float64
		var ckpt int64
		for r := 1; r <= speedRounds; r++ {
			dir := filepath.Join(b.TempDir(), "run")
			local = append(local, train(dir))
			if ckpt == 0 {
				files, _ := filepath.Glob(filepath.Join(dir, "checkpoints", "ckpt-*"))
				for _, f := range files {
					if fi, err := os.Stat(f); err == nil {
						ckpt += fi.Size()
					}
				}
				ckpt /= 2 // two kept
			}
			bucket = append(bucket, train(fmt.Sprintf("s3://runs/bench-%d-%d", i, r)))
			fmt.Printf("bucket step rate, round %d: local %.0f images/s; s3:// %.0f images/s (%.3f×)\n", r, local[r-1], bucket[r-1], bucket[r-1]/local[r-1])
		}
		l, s := median(local), median(bucket)
		fmt.Printf("bucket step rate, CIFAR-10 config, %d steps of 64, a checkpoint of %.1f MB every %d steps, CPU %s, medians of %d rounds: local %.0f images/s, s3:// (in-process S3 server) %.0f images/s: %.3f×\n",
			steps, float64(ckpt)/1e6, every, cpuinfo.Describe(), speedRounds, l, s, s/l)
		b.ReportMetric(l, "local-images/s")
		b.ReportMetric(s, "bucket-images/s")
		b.ReportMetric(s/l, "ratio")
	}
}
