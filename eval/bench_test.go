package eval

import (
	"fmt"
	"math/rand/v2"
	"os"
	"syscall"
	"testing"
	"time"

	tf "github.com/wamuir/graft/tensorflow"
	"github.com/wamuir/graft/tensorflow/op"

	"github.com/infomax/infomax/graph"
	"github.com/infomax/infomax/internal/tfutil"
	"github.com/infomax/infomax/knn"
)

func maxRSS() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Maxrss) / (1 << 20) // GiB
}

// BenchmarkKNN measures the kNN step at CIFAR-10 scale (10,000 queries against
// 50,000 features of 256, top 200, in blocks of 1,024 queries) beside one
// float32 matrix product of the full size on the same TensorFlow device, and
// prints the ratio (the target: at most 3) and the peak memory it added.
func BenchmarkKNN(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	bank, queries := randomFeatures(r, 50000, 256), randomFeatures(r, 10000, 256)
	for i := 0; i < b.N; i++ {
		before := maxRSS()
		t := time.Now()
		if _, err := knn.Search(b.Context(), bank, queries, 200, knn.Options{Chunk: 1024}); err != nil {
			b.Fatal(err)
		}
		search := time.Since(t).Seconds()
		extra := maxRSS() - before
		// The whole classification step of the report: the same search, the
		// Euclidean 1-NN search and the votes.
		bl, ql := make([]int, bank.Len()), make([]int, queries.Len())
		for j := range bl {
			bl[j] = j % 10
		}
		t = time.Now()
		if _, err := KNN(b.Context(), bank, bl, queries, ql, 10, KNNSettings{K: 20, WeightedK: 200, Temperature: 0.1, Chunk: 1024}); err != nil {
			b.Fatal(err)
		}
		full := time.Since(t).Seconds()

		s := op.NewScope()
		q := op.Placeholder(s.SubScope("q"), tf.Float)
		bk := op.Placeholder(s.SubScope("b"), tf.Float)
		prod := op.MatMul(s, q, bk, op.MatMulTransposeB(true))
		sum := op.Sum(s, prod, op.Const(s, []int32{0, 1})) // fetch a scalar: time the product, not a 2 GB copy
		g, _ := s.Finalize()
		sess, _ := graph.NewSession(g, graph.Options{})
		qt, _ := tfutil.FromFloat32s(queries.Data, int64(queries.Len()), int64(queries.Dim))
		bt, _ := tfutil.FromFloat32s(bank.Data, int64(bank.Len()), int64(bank.Dim))
		feeds := map[tf.Output]*tf.Tensor{q: qt, bk: bt}
		sess.Run(feeds, []tf.Output{sum}, nil) // warm-up
		t = time.Now()
		if _, err := sess.Run(feeds, []tf.Output{sum}, nil); err != nil {
			b.Fatal(err)
		}
		mm := time.Since(t).Seconds()
		sess.Close()
		b.ReportMetric(search, "s-knn")
		b.ReportMetric(mm, "s-matmul")
		b.ReportMetric(search/mm, "ratio")
		b.ReportMetric(full/mm, "ratio-full")
		fmt.Printf("kNN 10000 × 50000 × 256, top 200 (cosine): %.2f s; one 10000×256 · 256×50000 matmul: %.2f s; ratio %.2f; peak memory added by kNN %.2f GiB (a block is 1024 × 50000 × 4 B = 0.19 GiB)\n",
			search, mm, search/mm, extra)
		fmt.Printf("whole kNN report step (cosine top 200 + Euclidean 1-NN + votes): %.2f s, %.2f× the matmul\n", full, full/mm)
	}
}

// BenchmarkLinearProbe trains the probe on CIFAR-10-sized features (50,000 ×
// 256, 10 classes, 30 epochs of batches of 256) and prints the time.
func BenchmarkLinearProbe(b *testing.B) {
	dir, err := exportProbe(b, 256, 10, 0, os.Stderr)
	if err != nil {
		b.Fatal(err)
	}
	r := rand.New(rand.NewPCG(2, 2))
	train, test := randomFeatures(r, 50000, 256), randomFeatures(r, 10000, 256)
	tl, el := make([]int, 50000), make([]int, 10000)
	for i := range tl {
		tl[i] = r.IntN(10)
	}
	for i := range el {
		el[i] = r.IntN(10)
	}
	for i := 0; i < b.N; i++ {
		res, err := TrainProbe(dir, train, tl, test, el, ProbeSettings{Epochs: 30, BatchSize: 256, Seed: 1})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(res.Seconds, "s-probe")
		fmt.Printf("linear probe, 50000 × 256 features, 10 classes, 30 epochs: %.1f s\n", res.Seconds)
	}
}
