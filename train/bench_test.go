package train

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/infomax/infomax/config"
	"github.com/infomax/infomax/data"
	"github.com/infomax/infomax/exporter"
	"github.com/infomax/infomax/graph"
	"github.com/infomax/infomax/internal/memstat"
	"github.com/infomax/infomax/testkit/testmodel"
)

// BenchmarkSoak runs 5,000 training steps of the Fashion-MNIST seed config (the
// seed's model, batch 64, real data) through graph.Model and prints the
// resident memory every 500 steps: it must not grow by more than 5% after
// the first 500 (C tensors are freed; nothing leaks through finalizers).
func BenchmarkSoak(b *testing.B) {
	root, err := exporter.Root()
	if err != nil {
		b.Fatal(err)
	}
	cfg, err := config.Load(filepath.Join(root, "configs", "fashion_mnist_seed.yaml"), nil)
	if err != nil {
		b.Fatal(err)
	}
	m, err := graph.Load(testmodel.Export(b, &cfg.Config), graph.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	splits, err := data.LoadFashionMNIST(cfg.Data.Path)
	if err != nil {
		b.Fatal(err)
	}
	train := splits.Train
	for i := 0; i < b.N; i++ {
		batches := prefetch(b.Context(), newMemoryBatches(train, 0, 64, int64(train.Len()/64)), 64*train.ImageBytes(), 0, 5000)
		var at500 float64
		start := time.Now()
		for step := 1; step <= 5000; step++ {
			px, err := batches.next()
			if err != nil {
				b.Fatal(err)
			}
			if _, err := m.TrainStep(px); err != nil {
				b.Fatal(err)
			}
			batches.done(px)
			if step%500 == 0 {
				rss := memstat.ResidentMiB()
				if step == 500 {
					at500 = rss
				}
				fmt.Printf("soak: step %d  resident %.0f MiB  (%+.1f%% since step 500)  %.0f s\n", step, rss, 100*(rss-at500)/at500, time.Since(start).Seconds())
			}
		}
		batches.stop()
		b.ReportMetric(100*(memstat.ResidentMiB()-at500)/at500, "%-rss-growth")
	}
}
