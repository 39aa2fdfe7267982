package main

import (
	"encoding/json"
	"fmt"
	"github.com/infomax/infomax/internal/cpuinfo"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/infomax/infomax/config"
	"github.com/infomax/infomax/exporter"
	"github.com/infomax/infomax/internal/npy"
	"github.com/infomax/infomax/testkit/testmodel"
)

const speedRounds = 3

// BenchmarkKerasFitVsRunner trains the seed's CIFAR-10 recipe
// (configs/cifar10_seed.yaml, batch 64, the JPEG archive in ../shared/data)
// with the Go runner (Keras's batch norm, as the seed; model.batch_norm:
// fused; and fused with model.precision: bfloat16) and with Keras `model.fit`
// (scripts/keras_fit_baseline.py: the same networks and losses, the seed's way
// of training them; float32, and under Keras's mixed_bfloat16 policy), in
// alternating rounds, each for 300 steps, and prints the images/s of steps
// 101–300 of each, the medians, their ratios and the MFU of each: images/s ×
// training FLOPs per image (pyexport/flops.py) over TensorFlow's 4096²
// matmul throughput of the dtype it computes in, measured in the same run.
func BenchmarkKerasFitVsRunner(b *testing.B) {
	root, err := exporter.Root()
	if err != nil {
		b.Fatal(err)
	}
	cfgFile := filepath.Join(root, "configs", "cifar10_seed.yaml")
	cfg, err := config.Load(cfgFile, nil)
	if err != nil {
		b.Fatal(err)
	}
	export := testmodel.Export(b, &cfg.Config)
	fusedCfg := cfg.Config
	fusedCfg.Model.BatchNorm = "fused"
	fusedExport := testmodel.Export(b, &fusedCfg)
	bf16Cfg := fusedCfg
	bf16Cfg.Model.Precision = "bfloat16"
	bf16Export := testmodel.Export(b, &bf16Cfg)
	archive := filepath.Join(root, "..", "shared", "data", "cifar10-jpeg.tar.gz")
	set := testmodel.CIFAR10Train(b, 50000)
	tmp := b.TempDir()
	pixelsNPY := filepath.Join(tmp, "cifar10-train.npy")
	if err := npy.Write(pixelsNPY, set.Images, set.Len(), 32, 32, 3); err != nil {
		b.Fatal(err)
	}
	py, bin := testmodel.Python(b), runnerBinary(b)
	var fl struct {
		Training float64            `json:"training"`
		Forward  float64            `json:"forward"`
		Peak     map[string]float64 `json:"matmul_peak_flops"`
	}
	cmd := exec.Command(py, "-m", "pyexport.flops", "--export", export, "--batch", "64", "--peak")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil || json.Unmarshal(out, &fl) != nil {
		b.Fatalf("pyexport.flops: %v\n%s", err, out)
	}
	fmt.Printf("speed: CPU %s; model.precision auto picks %s here\n", cpuinfo.Describe(), autoPrecision())
	fmt.Printf("speed: the seed's CIFAR-10 recipe costs %.0f MFLOP per training image (forward %.0f); TensorFlow's matmul here: %.0f GFLOP/s float32, %.0f GFLOP/s bfloat16\n",
		fl.Training/1e6, fl.Forward/1e6, fl.Peak["float32"]/1e9, fl.Peak["bfloat16"]/1e9)

	runner := func(name, bn, precision, export string) float64 {
		dir := filepath.Join(tmp, name)
		os.RemoveAll(dir)
		c := exec.Command(bin, "train", "--config", cfgFile, "--data.path", archive, "--data.cache_dir", filepath.Join(tmp, "cache"),
			"--export_dir", export, "--model.batch_norm", bn, "--model.precision", precision, "--max-steps", "300", "--train.log_every", "100",
			"--eval.after_training=false", "--run-dir", dir)
		c.Dir = root
		if out, err := c.CombinedOutput(); err != nil {
			b.Fatalf("%s: %v\n%s", name, err, out)
		}
		return stepsRate(b, dir, 64)
	}
	keras := func(policy string) float64 {
		c := exec.Command(py, "scripts/keras_fit_baseline.py", "--export", export, "--images", pixelsNPY, "--steps", "300", "--policy", policy)
		c.Dir = root
		out, err := c.Output()
		var r struct {
			IPS float64 `json:"images_per_second"`
			JIT bool    `json:"jit_compile"`
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if err != nil || json.Unmarshal([]byte(lines[len(lines)-1]), &r) != nil {
			var stderr []byte
			if ee, ok := err.(*exec.ExitError); ok {
				stderr = ee.Stderr
				if len(stderr) > 4000 {
					stderr = stderr[len(stderr)-4000:]
				}
			}
			b.Fatalf("keras fit (%s): %v\n%s\n%s", policy, err, out, stderr)
		}
		return r.IPS
	}
	for i := 0; i < b.N; i++ {
		var goKeras, goFused, goBF, kf, kbf []float64
		for r := 1; r <= speedRounds; r++ {
			a := runner("go", "keras", "float32", export)
			f := runner("go-fused", "fused", "float32", fusedExport)
			bf := runner("go-fused-bf16", "fused", "bfloat16", bf16Export)
			k := keras("float32")
			kb := keras("mixed_bfloat16")
			fmt.Printf("speed, round %d: Go runner %.0f images/s, fused batch norm %.0f, fused in bfloat16 %.0f; Keras fit %.0f, mixed_bfloat16 %.0f\n", r, a, f, bf, k, kb)
			goKeras, goFused, goBF, kf, kbf = append(goKeras, a), append(goFused, f), append(goBF, bf), append(kf, k), append(kbf, kb)
		}
		ma, mf, mbf, mk, mb := median(goKeras), median(goFused), median(goBF), median(kf), median(kbf)
		mfu := func(ips float64, dtype string) float64 { return 100 * ips * fl.Training / fl.Peak[dtype] }
		fmt.Printf("speed, medians of %d rounds: Go runner %.0f images/s (MFU %.0f%%), fused batch norm %.0f (MFU %.0f%%), fused in bfloat16 %.0f (MFU %.0f%% of the bfloat16 peak); Keras fit %.0f (MFU %.0f%%), mixed_bfloat16 %.0f (MFU %.0f%% of the bfloat16 peak)\n",
			speedRounds, ma, mfu(ma, "float32"), mf, mfu(mf, "float32"), mbf, mfu(mbf, "bfloat16"), mk, mfu(mk, "float32"), mb, mfu(mb, "bfloat16"))
		fmt.Printf("speed: the fused runner at %.2f× Keras fit float32 and %.2f× Keras fit mixed_bfloat16; in bfloat16 at %.2f× and %.2f×, and %.2f× itself in float32; the runner with Keras's batch norm at %.2f× Keras fit\n",
			mf/mk, mf/mb, mbf/mk, mbf/mb, mbf/mf, ma/mk)
		b.ReportMetric(mf/mk, "x-keras-fit")
		b.ReportMetric(mf/mb, "x-keras-fit-bf16")
		b.ReportMetric(mbf/mk, "bf16-x-keras-fit")
		b.ReportMetric(mbf/mb, "bf16-x-keras-fit-bf16")
		b.ReportMetric(mbf/mf, "bf16-x-f32")
	}
}

// stepsRate is the images/s of steps 101..300 from a run's metrics.jsonl
// logged every 100 steps (the lines of steps 200 and 300).
func stepsRate(b *testing.B, dir string, batch int) float64 {
	var sec float64
	for _, m := range readMetrics(b, dir) {
		if m.Step == 200 || m.Step == 300 {
			sec += float64(100*batch) / m.IPS
		}
	}
	if sec == 0 {
		b.Fatalf("%s: no steps 200 and 300 in metrics.jsonl", dir)
	}
	return float64(200*batch) / sec
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

// autoPrecision is what model.precision auto resolves to on this machine,
// and why, for the benchmarks' first line.
func autoPrecision() string {
	p, why, err := config.AutoPrecision()
	if err != nil {
		return err.Error()
	}
	return p + " (" + why + ")"
}
