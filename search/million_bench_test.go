package search

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/infomax/infomax/exporter"
	"github.com/infomax/infomax/internal/cpuinfo"
	"github.com/infomax/infomax/internal/memstat"
	"github.com/infomax/infomax/internal/npy"
	"github.com/infomax/infomax/knn"
	"github.com/infomax/infomax/testkit/testmodel"
)

// benchVectors is the bank's size in BenchmarkSearchVsFAISS:
// INFOMAX_BENCH_VECTORS, else a million.
func benchVectors() int {
	if n, err := strconv.Atoi(os.Getenv("INFOMAX_BENCH_VECTORS")); err == nil && n > 0 {
		return n
	}
	return 1_000_000
}

// clustered makes n unit rows of dimension dim around `clusters` random
// centres (the same centres for every seed: the bank's and the queries'
// rows come from one distribution), each row a centre plus Gaussian noise
// of 0.5 a coordinate against the centres' 1, then normalised; seed draws
// the rows. Synthetic, and said to be wherever their figures are printed.
func clustered(n, dim, clusters int, seed uint64) knn.Features {
	crng := rand.New(rand.NewPCG(1, 7))
	centres := make([]float32, clusters*dim)
	for i := range centres {
		centres[i] = float32(crng.NormFloat64())
	}
	rng := rand.New(rand.NewPCG(seed, 8))
	out := make([]float32, n*dim)
	for r := 0; r < n; r++ {
		c := centres[rng.IntN(clusters)*dim:][:dim]
		row := out[r*dim : (r+1)*dim]
		ss := 0.0
		for j := range row {
			row[j] = c[j] + 0.5*float32(rng.NormFloat64())
			ss += float64(row[j]) * float64(row[j])
		}
		inv := float32(1 / math.Sqrt(ss))
		for j := range row {
			row[j] *= inv
		}
	}
	return knn.Features{Data: out, Dim: dim}
}

// runFeatures reads a run folder's (or report folder's) features_train.npy
// and the first 1,000 rows of features_test.npy, rows normalised.
func runFeatures(tb testing.TB, dir string) (bank, queries knn.Features) {
	read := func(name string) knn.Features {
		raw, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			tb.Fatal(err)
		}
		hl := int(binary.LittleEndian.Uint16(raw[8:10]))
		var d int
		if _, err := fmt.Sscanf(string(raw[10 : 10+hl])[strings.Index(string(raw[10:10+hl]), "'shape': (")+len("'shape': ("):], "%d, %d", new(int), &d); err != nil {
			tb.Fatalf("%s: %v", name, err)
		}
		data, _, err := npy.ParseFloat32Rows(raw, name, d)
		if err != nil {
			tb.Fatal(err)
		}
		for r := 0; r < len(data)/d; r++ {
			row := data[r*d : (r+1)*d]
			ss := 0.0
			for _, v := range row {
				ss += float64(v) * float64(v)
			}
			inv := float32(1 / math.Sqrt(max(ss, 1e-30)))
			for j := range row {
				row[j] *= inv
			}
		}
		return knn.Features{Data: data, Dim: d}
	}
	bank, queries = read("features_train.npy"), read("features_test.npy")
	if queries.Len() > 1000 {
		queries.Data = queries.Data[:1000*queries.Dim]
	}
	return bank, queries
}

// readInt32Rows reads the int32 [n, k] .npy the FAISS script writes.
func readInt32Rows(tb testing.TB, path string, k int) []int32 {
	raw, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	body := raw[10+int(binary.LittleEndian.Uint16(raw[8:10])):]
	out := make([]int32, len(body)/4)
	for i := range out {
		out[i] = int32(binary.LittleEndian.Uint32(body[4*i:]))
	}
	if len(out)%k != 0 {
		tb.Fatalf("%s: %d values, not rows of %d", path, len(out), k)
	}
	return out
}

// recallAt10 is the share of the true top 10 found in each query's hits.
func recallAt10(hits [][]Hit, truth []int32) float64 {
	found := 0
	for q, hs := range hits {
		want := map[int32]bool{}
		for _, t := range truth[q*10 : (q+1)*10] {
			want[t] = true
		}
		for _, h := range hs {
			if want[int32(h.Index)] {
				found++
			}
		}
	}
	return float64(found) / float64(10*len(hits))
}

type faissFigures struct {
	Version string `json:"faiss"`
	Threads int    `json:"threads"`
	Flat    struct {
		Build    float64 `json:"build_s"`
		RSS      float64 `json:"rss_mib_added"`
		QPS1     float64 `json:"qps_batch_1"`
		QPS1000  float64 `json:"qps_batch_1000"`
		Recall1  float64 `json:"recall10_batch_1"`
		Recall1k float64 `json:"recall10_batch_1000"`
	} `json:"flat_ip"`
	HNSW *struct {
		M     int     `json:"m"`
		EFC   int     `json:"ef_construction"`
		Build float64 `json:"build_s"`
		RSS   float64 `json:"rss_mib_added"`
		EF    []struct {
			EF       int     `json:"ef_search"`
			QPS1     float64 `json:"qps_batch_1"`
			QPS1000  float64 `json:"qps_batch_1000"`
			Recall1  float64 `json:"recall10_batch_1"`
			Recall1k float64 `json:"recall10_batch_1000"`
		} `json:"ef"`
	} `json:"hnsw"`
}

// BenchmarkSearchVsFAISS searches the same vectors with this project's
// exact search and with FAISS (faiss-cpu, scripts/faiss_bench.py) in one
// run: a million clustered synthetic unit vectors of dimension 256
// (INFOMAX_BENCH_VECTORS changes the count), 1,000 queries from the same
// distribution, recall@10 against NumPy's brute force. It prints queries
// per second for one query at a time and for a batch of 1,000, and the
// ratio to FAISS's IndexFlatIP (the target: at most 1.5× its time).
// INFOMAX_BENCH_HNSW=1 adds FAISS's IndexHNSWFlat (a long build).
func BenchmarkSearchVsFAISS(b *testing.B) {
	root, err := exporter.Root()
	if err != nil {
		b.Fatal(err)
	}
	n, dim := benchVectors(), 256
	dir := b.TempDir()
	t0 := time.Now()
	what := "synthetic clustered"
	var bank, queries knn.Features
	if real := os.Getenv("INFOMAX_BENCH_FEATURES"); real != "" {
		// A run's evaluation features: the training split is the bank, the
		// first 1,000 test images the queries, rows normalised (cosine).
		bank, queries = runFeatures(b, real)
		n, dim, what = bank.Len(), bank.Dim, "real features of "+real
	} else {
		bank = clustered(n, dim, 1000, 1)
		queries = clustered(1000, dim, 1000, 2)
	}
	if err := npy.Write(filepath.Join(dir, "bank.npy"), bank.Data, n, dim); err != nil {
		b.Fatal(err)
	}
	if err := npy.Write(filepath.Join(dir, "queries.npy"), queries.Data, queries.Len(), dim); err != nil {
		b.Fatal(err)
	}
	fmt.Printf("search benchmark: a bank of %d (%s, rows of unit length, dimension %d) and %d queries, ready in %s\n", n, what, dim, queries.Len(), time.Since(t0).Round(time.Second))
	args := []string{filepath.Join(root, "scripts", "faiss_bench.py"), "--bank", filepath.Join(dir, "bank.npy"),
		"--queries", filepath.Join(dir, "queries.npy"), "--truth", filepath.Join(dir, "truth.npy")}
	if os.Getenv("INFOMAX_BENCH_HNSW") == "" {
		args = append(args, "--no-hnsw")
	}
	cmd := exec.Command(testmodel.Python(b), args...)
	cmd.Stderr = os.Stderr
	raw, err := cmd.Output()
	if err != nil {
		b.Fatalf("%v", err)
	}
	var f faissFigures
	if err := json.Unmarshal(raw, &f); err != nil {
		b.Fatalf("%v: %s", err, raw)
	}
	truth := readInt32Rows(b, filepath.Join(dir, "truth.npy"), 10)

	paths := make([]string, n)
	for i := range paths {
		paths[i] = "v" + strconv.Itoa(i)
	}
	ix, err := New(paths, bank, "", "", 0)
	if err != nil {
		b.Fatal(err)
	}
	t0 = time.Now()
	rss := memstat.ResidentMiB()
	s, err := ix.Searcher(knn.Options{Metric: knn.Cosine})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	build := time.Since(t0)
	added := memstat.ResidentMiB() - rss
	ctx := context.Background()
	for i := 0; i < b.N; i++ {
		// One query at a time: 100 queries (or 20 s).
		var one [][]Hit
		t0 = time.Now()
		for q := 0; q < queries.Len() && q < 100 && (q < 3 || time.Since(t0) < 20*time.Second); q++ {
			h, err := s.Search(ctx, knn.Features{Data: queries.Data[q*dim : (q+1)*dim], Dim: dim}, 10)
			if err != nil {
				b.Fatal(err)
			}
			one = append(one, h...)
		}
		qps1 := float64(len(one)) / time.Since(t0).Seconds()
		t0 = time.Now()
		all, err := s.Search(ctx, queries, 10)
		if err != nil {
			b.Fatal(err)
		}
		qps1k := float64(queries.Len()) / time.Since(t0).Seconds()
		kernels := "TensorFlow's own choice of kernels (the runner and embed turn oneDNN on: TF_ENABLE_ONEDNN_OPTS=1 measures what they do)"
		if v := os.Getenv("TF_ENABLE_ONEDNN_OPTS"); v != "" {
			kernels = "TF_ENABLE_ONEDNN_OPTS=" + v
		}
		fmt.Printf("exact search, %d × %d %s (cosine), CPU %s, %s; FAISS %s on %d threads:\n", n, dim, what, cpuinfo.Describe(), kernels, f.Version, f.Threads)
		fmt.Printf("  build: infomax %.2f s, +%.0f MiB resident (beside the index's own %.0f MiB of features); FAISS IndexFlatIP %.2f s, +%.0f MiB\n",
			build.Seconds(), added, float64(4*len(bank.Data))/(1<<20), f.Flat.Build, f.Flat.RSS)
		fmt.Printf("  batch 1:     infomax %8.1f queries/s (recall@10 %.4f), FAISS %8.1f (%.4f): FAISS is %.2f× faster\n",
			qps1, recallAt10(one, truth), f.Flat.QPS1, f.Flat.Recall1, f.Flat.QPS1/qps1)
		fmt.Printf("  batch 1,000: infomax %8.1f queries/s (recall@10 %.4f), FAISS %8.1f (%.4f): FAISS is %.2f× faster\n",
			qps1k, recallAt10(all, truth), f.Flat.QPS1000, f.Flat.Recall1k, f.Flat.QPS1000/qps1k)
		if f.HNSW != nil {
			approximate(b, ix, queries, truth, f, qps1)
		}
		b.ReportMetric(qps1, "batch1-q/s")
		b.ReportMetric(qps1k, "batch1000-q/s")
		b.ReportMetric(f.Flat.QPS1/qps1, "faiss-ratio-1")
		b.ReportMetric(f.Flat.QPS1000/qps1k, "faiss-ratio-1000")
	}
}

// approximate builds this project's HNSW index (search.BuildANN, hnswlib)
// with FAISS's parameters and prints both side by side, efSearch by
// efSearch, against the exact search's queries per second (qps1).
func approximate(b *testing.B, ix *Index, queries knn.Features, truth []int32, f faissFigures, exact1 float64) {
	rss := memstat.ResidentMiB()
	ann, err := BuildANN(context.Background(), ix, ANNParams{M: f.HNSW.M, EfConstruction: f.HNSW.EFC}, 64, knn.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer ann.Close()
	added := memstat.ResidentMiB() - rss
	fmt.Printf("  HNSW, M %d, efConstruction %d: infomax (hnswlib) build %.0f s, +%.0f MiB; FAISS IndexHNSWFlat build %.0f s, +%.0f MiB\n",
		f.HNSW.M, f.HNSW.EFC, ann.Header.BuildSeconds, added, f.HNSW.Build, f.HNSW.RSS)
	fmt.Printf("  (its own recall@10 at efSearch 64 on %d held-out rows: %.4f)\n", ann.Header.RecallQueries, ann.Header.Recall)
	dim := queries.Dim
	for _, e := range f.HNSW.EF {
		var one [][]Hit
		t0 := time.Now()
		for q := 0; q < queries.Len() && time.Since(t0) < 20*time.Second; q++ {
			h, err := ann.Search(ix, knn.Features{Data: queries.Data[q*dim : (q+1)*dim], Dim: dim}, 10, e.EF)
			if err != nil {
				b.Fatal(err)
			}
			one = append(one, h...)
		}
		q1 := float64(len(one)) / time.Since(t0).Seconds()
		t0 = time.Now()
		all, err := ann.Search(ix, queries, 10, e.EF)
		if err != nil {
			b.Fatal(err)
		}
		q1k := float64(queries.Len()) / time.Since(t0).Seconds()
		fmt.Printf("    efSearch %4d: batch 1: infomax %8.1f q/s (recall@10 %.4f; %.1f× exact), FAISS %8.1f (%.4f); batch 1,000: infomax %8.1f (%.4f), FAISS %8.1f (%.4f)\n",
			e.EF, q1, recallAt10(one, truth), q1/exact1, e.QPS1, e.Recall1, q1k, recallAt10(all, truth), e.QPS1000, e.Recall1k)
	}
}
