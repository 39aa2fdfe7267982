package graph_test

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/infomax/infomax/config"
	"github.com/infomax/infomax/exporter"
	"github.com/infomax/infomax/graph"
	"github.com/infomax/infomax/testkit/testmodel"
)

// BenchmarkLevers measures the seed's CIFAR-10 recipe (configs/cifar10_seed.yaml)
// under each session lever: thread pools, bfloat16 through oneDNN's automatic
// mixed precision, XLA auto-clustering. It prints training images/s (steps
// 51–150 of batch 64) and encoding images/s (batches of 500 and 2,000).
func BenchmarkLevers(b *testing.B) {
	root, err := exporter.Root()
	if err != nil {
		b.Fatal(err)
	}
	cfg, err := config.Load(filepath.Join(root, "configs", "cifar10_seed.yaml"), nil)
	if err != nil {
		b.Fatal(err)
	}
	dir := testmodel.Export(b, &cfg.Config)
	set := testmodel.CIFAR10Train(b, 10000)
	for _, v := range []struct {
		name string
		o    graph.Options
	}{
		{"float32, TensorFlow's default threads", graph.Options{}},
		{"float32, intra 2 inter 1", graph.Options{IntraOpThreads: 2, InterOpThreads: 1}},
		{"float32, intra 1 inter 2", graph.Options{IntraOpThreads: 1, InterOpThreads: 2}},
		{"float32, intra 2 inter 2", graph.Options{IntraOpThreads: 2, InterOpThreads: 2}},
		{"bfloat16 (oneDNN AMP), default threads", graph.Options{Compute: "bfloat16"}},
		{"bfloat16 (oneDNN AMP), intra 2 inter 1", graph.Options{IntraOpThreads: 2, InterOpThreads: 1, Compute: "bfloat16"}},
		{"float32 + XLA, default threads", graph.Options{XLA: true}},
		{"bfloat16 + XLA, default threads", graph.Options{Compute: "bfloat16", XLA: true}},
		{"float32, TensorFlow's default threads (again)", graph.Options{}},
	} {
		m, err := graph.Load(dir, v.o)
		if err != nil {
			b.Fatalf("%s: %v", v.name, err)
		}
		per := m.Manifest.ImageBytes()
		var t0 time.Time
		for step := 0; step < 150; step++ {
			if step == 50 {
				t0 = time.Now()
			}
			i := step % (set.Len() / 64)
			if _, err := m.TrainStep(set.Images[i*64*per : (i+1)*64*per]); err != nil {
				b.Fatalf("%s: %v", v.name, err)
			}
		}
		train := 100 * 64 / time.Since(t0).Seconds()
		enc := map[int]float64{}
		for _, batch := range []int{500, 2000} {
			m.Encode(set.Images[:batch*per]) // warm-up
			t := time.Now()
			for j := 0; j+batch <= set.Len(); j += batch {
				if _, err := m.Encode(set.Images[j*per : (j+batch)*per]); err != nil {
					b.Fatal(err)
				}
			}
			enc[batch] = float64(set.Len()/batch*batch) / time.Since(t).Seconds()
		}
		m.Close()
		fmt.Printf("levers, %s: train %.0f images/s; encode %.0f images/s (batch 500), %.0f (batch 2000)\n", v.name, train, enc[500], enc[2000])
	}
}
