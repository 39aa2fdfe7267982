package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/infomax/infomax/eval"
	"github.com/infomax/infomax/internal/npy"
	"github.com/infomax/infomax/search"
)

// writeEmbedded writes a sharded folder as embed writes it: n features of
// dim dimensions (clustered by class, so kNN has something to find) in
// shards of per, with paths and classes; seed draws the samples, the class
// centres are the same in every folder.
func writeEmbedded(b *testing.B, dir string, n, per, dim int, seed uint64) {
	c := rand.New(rand.NewPCG(0, 1)) // the same class centres in every folder
	centres := make([]float32, 10*dim)
	for i := range centres {
		centres[i] = float32(c.NormFloat64())
	}
	r := rand.New(rand.NewPCG(seed, 1))
	m := search.Embedding{Run: filepath.Join(dir, "no-run"), ConfigHash: "synthetic", Dim: dim, Images: n, Labels: "folders",
		Classes: []string{"c0", "c1", "c2", "c3", "c4", "c5", "c6", "c7", "c8", "c9"}}
	for first := 0; first < n; first += per {
		rows := min(per, n-first)
		feats := make([]float32, rows*dim)
		paths, classes := make([]string, rows), make([]string, rows)
		for i := range rows {
			c := r.IntN(10)
			for k := range dim {
				feats[i*dim+k] = centres[c*dim+k] + 2*float32(r.NormFloat64())
			}
			paths[i], classes[i] = fmt.Sprintf("img/%d.jpg", first+i), m.Classes[c]
		}
		name := fmt.Sprintf("shard-%05d", first/per)
		if err := npy.Write(filepath.Join(dir, name+".npy"), feats, rows, dim); err != nil {
			b.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, name+".paths.txt"), []byte(strings.Join(paths, "\n")+"\n"), 0o644)
		os.WriteFile(filepath.Join(dir, name+".labels.txt"), []byte(strings.Join(classes, "\n")+"\n"), 0o644)
		m.Shards = append(m.Shards, name)
	}
	raw, _ := json.Marshal(m)
	if err := os.WriteFile(filepath.Join(dir, search.EmbeddingFile), raw, 0o644); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkEvalFeaturesMemory measures `runner eval --features` (kNN only)
// with 10,000 queries against banks of 50,000 and 200,000 features of 256
// dimensions in shards of 3,125 (CIFAR-10's training set embedded, and 4×
// it): each a process of its own, its peak resident memory from the kernel.
// The bank streams through the search in blocks of runeval.DefaultBankBlockBytes,
// so the peak should not grow with the bank.
func BenchmarkEvalFeaturesMemory(b *testing.B) {
	bin := runnerBinary(b)
	tmp := b.TempDir()
	queries := filepath.Join(tmp, "queries")
	os.MkdirAll(queries, 0o755)
	writeEmbedded(b, queries, 10_000, 2_500, 256, 1)
	for i := 0; i < b.N; i++ {
		for _, n := range []int{50_000, 200_000} {
			bank := filepath.Join(tmp, fmt.Sprintf("bank%d", n))
			os.MkdirAll(bank, 0o755)
			writeEmbedded(b, bank, n, 3_125, 256, 2)
			out := filepath.Join(tmp, fmt.Sprintf("report%d", n))
			cmd := exec.Command(bin, "eval", "--features", queries, "--bank", bank, "--out", out, "--eval.probe_epochs", "0")
			text, err := cmd.CombinedOutput()
			if err != nil {
				b.Fatalf("runner eval --features: %v\n%s", err, text)
			}
			rss := float64(cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss) / 1024
			raw, _ := os.ReadFile(filepath.Join(out, "report.json"))
			var rep eval.Report
			json.Unmarshal(raw, &rep)
			fmt.Printf("eval --features: 10,000 queries, bank of %d features (%.0f MiB): peak resident %.0f MiB, kNN %.1fs, weighted kNN %.4f\n",
				n, float64(n*256*4)/(1<<20), rss, rep.KNNSec, rep.Model.KNN.Weighted)
			b.ReportMetric(rss, fmt.Sprintf("MiB-bank%dk", n/1000))
		}
	}
}
