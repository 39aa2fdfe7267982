package main

import (
	"bytes"
	"context"
	"fmt"
	"github.com/infomax/infomax/internal/cpuinfo"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/infomax/infomax/config"
	"github.com/infomax/infomax/exporter"
	"github.com/infomax/infomax/graph"
	"github.com/infomax/infomax/testkit/testmodel"
)

// BenchmarkTrainCIFAR10 trains the default CIFAR-10 config (configs/cifar10.yaml)
// for 200 steps on the JPEG archive in ../shared/data and prints images/s and
// the share of wall time the training loop waited for its next batch (the
// target: under 5%).
func BenchmarkTrainCIFAR10(b *testing.B) {
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
	for i := 0; i < b.N; i++ {
		fs := pflag.NewFlagSet("bench", pflag.ContinueOnError)
		config.AddFlags(fs)
		fs.Parse([]string{"--data.path", archive, "--export_dir", exportDir, "--data.cache_dir", b.TempDir(), "--train.log_every", "100"})
		var out bytes.Buffer
		err := runTrain(context.Background(), trainOptions{ConfigFile: file, RunDir: filepath.Join(b.TempDir(), "run"), MaxSteps: 200, Flags: fs}, &out)
		if err != nil {
			b.Fatalf("%v\n%s", err, out.String())
		}
		wait := regexp.MustCompile(`waiting for data ([0-9.]+)%`).FindStringSubmatch(out.String())
		ips := regexp.MustCompile(`step 200/200 .* ([0-9]+) img/s`).FindStringSubmatch(out.String())
		if wait == nil || ips == nil {
			b.Fatalf("no figures in:\n%s", out.String())
		}
		w, _ := strconv.ParseFloat(wait[1], 64)
		v, _ := strconv.ParseFloat(ips[1], 64)
		b.ReportMetric(w, "%-waiting-for-data")
		b.ReportMetric(v, "images/s")
		fmt.Printf("CIFAR-10 config, 200 steps of 64: %.0f images/s, waiting for data %.2f%% of the time\n", v, w)
	}
}

// BenchmarkEncode prints how many images/s the CIFAR-10 model encodes
// (z_mean, batches of 500, BatchNorm in inference mode): in float32 as
// exported, in bfloat16 through oneDNN's rewrite (graph.Options.Compute, the
// route of `runner index --compute bfloat16`) and exported with
// model.precision: bfloat16, in alternating rounds, with the medians and their
// ratios.
func BenchmarkEncode(b *testing.B) {
	root, err := exporter.Root()
	if err != nil {
		b.Fatal(err)
	}
	cfg, err := config.Load(filepath.Join(root, "configs", "cifar10.yaml"), nil)
	if err != nil {
		b.Fatal(err)
	}
	dir := testmodel.Export(b, &cfg.Config)
	bfCfg := cfg.Config
	bfCfg.Model.Precision = "bfloat16"
	bfDir := testmodel.Export(b, &bfCfg)
	arms := []struct {
		name string
		dir  string
		opts graph.Options
	}{
		{"float32", dir, graph.Options{}},
		{"bfloat16 (oneDNN's rewrite)", dir, graph.Options{Compute: "bfloat16"}},
		{"bfloat16 (exported so)", bfDir, graph.Options{}},
	}
	models := make([]*graph.Model, len(arms))
	for i, a := range arms {
		m, err := graph.Load(a.dir, a.opts)
		if err != nil {
			b.Fatal(err)
		}
		defer m.Close()
		models[i] = m
	}
	size := models[0].Manifest.ImageBytes()
	pixels := make([]byte, 10000*size)
	for i := range pixels {
		pixels[i] = byte(i * 31)
	}
	encode := func(m *graph.Model) float64 {
		t := time.Now()
		for j := 0; j < len(pixels); j += 500 * size {
			if _, err := m.Encode(pixels[j : j+500*size]); err != nil {
				b.Fatal(err)
			}
		}
		return 10000 / time.Since(t).Seconds()
	}
	for _, m := range models {
		encode(m) // the first call builds the kernels
	}
	for i := 0; i < b.N; i++ {
		rates := make([][]float64, len(arms))
		for r := 1; r <= speedRounds; r++ {
			line := fmt.Sprintf("encode, round %d:", r)
			for k, m := range models {
				v := encode(m)
				rates[k] = append(rates[k], v)
				line += fmt.Sprintf(" %s %.0f images/s;", arms[k].name, v)
			}
			fmt.Println(line)
		}
		f32 := median(rates[0])
		fmt.Printf("encode, CIFAR-10 model (32×32×3 → 256), CPU %s, medians of %d rounds: float32 %.0f images/s", cpuinfo.Describe(), speedRounds, f32)
		for k := 1; k < len(arms); k++ {
			v := median(rates[k])
			fmt.Printf("; %s %.0f (%.2f× float32)", arms[k].name, v, v/f32)
		}
		fmt.Println()
		b.ReportMetric(f32, "images/s")
		b.ReportMetric(median(rates[1]), "bf16-rewrite-images/s")
		b.ReportMetric(median(rates[2]), "bf16-export-images/s")
	}
}
