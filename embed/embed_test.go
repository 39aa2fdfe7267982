package main

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/testing/ptest"

	"github.com/infomax/infomax/data"
	"github.com/infomax/infomax/encoder"
	"github.com/infomax/infomax/knn"
	"github.com/infomax/infomax/search"
	"github.com/infomax/infomax/testkit/hostile"
	"github.com/infomax/infomax/testkit/testmodel"
)

func TestMain(m *testing.M) { ptest.MainWithDefault(m, "prism") }

// imageFolder writes n real Fashion-MNIST images as 56×56 PNG files in two
// class folders, plus a text file and an image whose header claims
// 100,000 × 100,000 pixels.
func imageFolder(t *testing.T, n int) string {
	fm := testmodel.FashionMNISTSet(t, n)
	dir := t.TempDir()
	for i := 0; i < fm.Len(); i++ {
		sub := filepath.Join(dir, []string{"a", "b"}[i%2])
		os.MkdirAll(sub, 0o755)
		os.WriteFile(filepath.Join(sub, strings.Repeat("x", i%3)+string(rune('a'+i%26))+string(rune('a'+i/26))+".png"), testmodel.UpscaledPNG(fm, i), 0o644)
	}
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("not an image"), 0o644)
	os.WriteFile(filepath.Join(dir, "a", "huge.png"), hostile.PNG(100_000, 100_000), 0o644)
	return dir
}

func runPipeline(t *testing.T, o Options) {
	t.Helper()
	p, s := beam.NewPipelineWithRoot()
	Build(s, o)
	if err := os.MkdirAll(o.Output, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := ptest.Run(p); err != nil {
		t.Fatal(err)
	}
}

// The pipeline's features equal those `runner index` computes (data.ReadImages
// and the encoder, one process) for the same images, the hostile image is
// counted and named in bad.txt, the output loads as a search index, and a
// second run leaves the same set of shards, byte for byte.
func TestPipelineMatchesIndexAndIsIdempotent(t *testing.T) {
	tmp := t.TempDir()
	runDir, err := testmodel.Run(filepath.Join(tmp, "run"))
	if err != nil {
		t.Fatal(err)
	}
	folder := imageFolder(t, 40)
	globs, err := Globs(folder)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(tmp, "out")
	o := Options{RunDir: runDir, Inputs: globs, Output: out, Shards: 4}
	runPipeline(t, o)

	ix, err := search.Load(t.Context(), out)
	if err != nil {
		t.Fatal(err)
	}
	if len(ix.Paths) != 40 {
		t.Fatalf("%d images in the index, want 40", len(ix.Paths))
	}
	bad, _ := os.ReadFile(filepath.Join(out, "_bad.txt"))
	if !strings.Contains(string(bad), "huge.png") || !strings.Contains(string(bad), "100000×100000") || strings.Count(string(bad), "\n") != 1 {
		t.Errorf("_bad.txt:\n%s", bad)
	}

	// What runner index computes, in one process.
	enc, err := encoder.Load(t.Context(), runDir)
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	imgs, err := data.ReadImages(folder, enc.Shape, true, enc.Limits())
	if err != nil {
		t.Fatal(err)
	}
	want, err := enc.EncodePixels(t.Context(), imgs.Set.Images, imgs.Set.Len())
	if err != nil {
		t.Fatal(err)
	}
	row := map[string]int{}
	for i, p := range imgs.Paths {
		row[p] = i
	}
	d := enc.Dim()
	maxDiff := 0.0
	for i, p := range ix.Paths {
		j, ok := row[p]
		if !ok {
			t.Fatalf("%s is in the pipeline's output, not in the index's", p)
		}
		for k := 0; k < d; k++ {
			maxDiff = math.Max(maxDiff, math.Abs(float64(ix.Features.Data[i*d+k]-want[j*d+k])))
		}
	}
	if maxDiff > 1e-5 {
		t.Errorf("features differ from the index's by up to %g", maxDiff)
	}
	// Same neighbours: every image's 5 nearest, by both.
	wantIx := &search.Index{Paths: imgs.Paths, Features: knn.Features{Data: want, Dim: d}}
	for i, p := range ix.Paths[:10] {
		q := knn.Features{Data: ix.Features.Data[i*d : (i+1)*d], Dim: d}
		a, _ := ix.Search(t.Context(), q, 5, knn.Cosine)
		b, _ := wantIx.Search(t.Context(), q, 5, knn.Cosine)
		for k := range a[0] {
			if a[0][k].Path != b[0][k].Path {
				t.Errorf("%s: neighbour %d is %s in the pipeline's index, %s in runner index's", p, k, a[0][k].Path, b[0][k].Path)
			}
		}
	}
	t.Logf("40 images, largest difference %g", maxDiff)

	// The same images embedded as .npy: the same features, bit for bit,
	// and the same paths, shard by shard; the Parquet parts are named as
	// Spark and Beam name theirs, and carry the model in their metadata.
	o2 := o
	o2.Output, o2.Format = filepath.Join(tmp, "npy"), search.FormatNPY
	runPipeline(t, o2)
	mp, err := search.ReadEmbedding(t.Context(), out)
	if err != nil {
		t.Fatal(err)
	}
	mn, err := search.ReadEmbedding(t.Context(), o2.Output)
	if err != nil {
		t.Fatal(err)
	}
	if mp.Format != search.FormatParquet || mn.Format != search.FormatNPY || len(mp.Shards) != len(mn.Shards) || mp.Shards[0] != "part-00000-of-00004" || mn.Shards[0] != "shard-00000-of-00004" {
		t.Fatalf("formats %q and %q, shards %v and %v", mp.Format, mn.Format, mp.Shards, mn.Shards)
	}
	if _, err := os.Stat(filepath.Join(o2.Output, "bad.txt")); err != nil {
		t.Errorf("the .npy folder's bad.txt: %v", err)
	}
	// A folder written before embedding.json had its name (manifest.json)
	// still loads, the same; a folder with neither says so.
	legacy := o2.Output
	if err := os.Rename(filepath.Join(legacy, search.EmbeddingFile), filepath.Join(legacy, search.LegacyEmbeddingFile)); err != nil {
		t.Fatal(err)
	}
	if old, err := search.Load(t.Context(), legacy); err != nil || !sameRows(old, ix) {
		t.Errorf("a legacy manifest.json folder: %v", err)
	}
	for i := range mp.Shards {
		a, err := search.ReadShard(t.Context(), out, mp, mp.Shards[i])
		if err != nil {
			t.Fatal(err)
		}
		b, err := search.ReadShard(t.Context(), o2.Output, mn, mn.Shards[i])
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(a.Paths, b.Paths) || !slices.Equal(a.Features.Data, b.Features.Data) {
			t.Errorf("shard %d: Parquet and .npy hold different paths or features", i)
		}
		if _, err := os.Stat(filepath.Join(out, mp.Shards[i]+".parquet")); err != nil {
			t.Error(err)
		}
	}
	// And a search over either finds the same images, scores and all.
	npyIx, err := search.Load(t.Context(), legacy)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		q := knn.Features{Data: ix.Features.Data[i*ix.Features.Dim : (i+1)*ix.Features.Dim], Dim: ix.Features.Dim}
		a, errA := ix.Search(t.Context(), q, 5, knn.Cosine)
		b, errB := npyIx.Search(t.Context(), q, 5, knn.Cosine)
		if errA != nil || errB != nil || !slices.Equal(a[0], b[0]) {
			t.Errorf("query %d: over Parquet %v (%v), over .npy %v (%v)", i, a, errA, b, errB)
		}
	}
	os.Remove(filepath.Join(legacy, search.LegacyEmbeddingFile))
	if _, err := search.ReadEmbedding(t.Context(), legacy); err == nil || !strings.Contains(err.Error(), search.EmbeddingFile) {
		t.Errorf("a folder without embedding.json: %v", err)
	}
	part, err := search.Load(t.Context(), filepath.Join(out, mp.Shards[0]+".parquet"))
	if err != nil || part.ConfigHash != enc.ConfigHash || part.Step != enc.Step || part.Run != enc.Run || part.Precision != enc.Compute {
		t.Errorf("a part read alone: %v; its model %s %d %s %s, want %s %d %s %s", err, part.ConfigHash, part.Step, part.Run, part.Precision, enc.ConfigHash, enc.Step, enc.Run, enc.Compute)
	}

	before := snapshot(t, out)
	runPipeline(t, o)
	after := snapshot(t, out)
	if len(before) != len(after) {
		t.Fatalf("files %v, then %v", keys(before), keys(after))
	}
	for name, b := range before {
		if !bytes.Equal(after[name], b) && name != search.ParquetEmbeddingFile {
			t.Errorf("%s changed in the second run", name)
		}
	}
}

// sameRows says whether a and b hold the same paths with the same
// features, bit for bit, in any order.
func sameRows(a, b *search.Index) bool {
	if len(a.Paths) != len(b.Paths) || a.Features.Dim != b.Features.Dim {
		return false
	}
	d, row := a.Features.Dim, map[string]int{}
	for i, p := range b.Paths {
		row[p] = i
	}
	for i, p := range a.Paths {
		j, ok := row[p]
		if !ok || !slices.Equal(a.Features.Data[i*d:(i+1)*d], b.Features.Data[j*d:(j+1)*d]) {
			return false
		}
	}
	return true
}

func snapshot(t *testing.T, dir string) map[string][]byte {
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, e := range entries {
		b, _ := os.ReadFile(filepath.Join(dir, e.Name()))
		out[e.Name()] = b
	}
	return out
}

func keys(m map[string][]byte) []string {
	var k []string
	for n := range m {
		k = append(k, n)
	}
	sort.Strings(k)
	return k
}

// With --strict a bad image fails the job, naming the image.
func TestStrictFailsOnABadImage(t *testing.T) {
	tmp := t.TempDir()
	runDir, err := testmodel.Run(filepath.Join(tmp, "run"))
	if err != nil {
		t.Fatal(err)
	}
	globs, err := Globs(imageFolder(t, 6))
	if err != nil {
		t.Fatal(err)
	}
	p, s := beam.NewPipelineWithRoot()
	out := filepath.Join(tmp, "out")
	os.MkdirAll(out, 0o755)
	Build(s, Options{RunDir: runDir, Inputs: globs, Output: out, Shards: 2, Strict: true})
	err = ptest.Run(p)
	if err == nil || !strings.Contains(err.Error(), "huge.png") || !strings.Contains(err.Error(), "without --strict") {
		t.Errorf("strict run with a 100,000×100,000 PNG: %v", err)
	}
	if _, err := os.Stat(filepath.Join(out, search.EmbeddingFile)); err == nil {
		t.Errorf("a failed job wrote its manifest")
	}
}
