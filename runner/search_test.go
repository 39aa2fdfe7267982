package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/infomax/infomax/encoder"
	"github.com/infomax/infomax/search"
	"github.com/infomax/infomax/testkit/emulators"
	"github.com/infomax/infomax/testkit/testmodel"
)

func TestIndexAndSearch(t *testing.T) {
	tmp := t.TempDir()
	runDir, err := testmodel.Run(filepath.Join(tmp, "run"))
	if err != nil {
		t.Fatal(err)
	}
	// Real Fashion-MNIST images as PNG files of another size (56×56), plus a
	// file that is not an image.
	fm := testmodel.FashionMNISTSet(t, 12)
	imgDir := filepath.Join(tmp, "images")
	os.MkdirAll(filepath.Join(imgDir, "sub"), 0o755)
	for i := 0; i < fm.Len(); i++ {
		name := filepath.Join(imgDir, "img"+string(rune('a'+i))+".png")
		if i%3 == 0 {
			name = filepath.Join(imgDir, "sub", "img"+string(rune('a'+i))+".png")
		}
		os.WriteFile(name, testmodel.UpscaledPNG(fm, i), 0o644)
	}
	os.WriteFile(filepath.Join(imgDir, "notes.txt"), []byte("skip me"), 0o644)
	idx := filepath.Join(tmp, "images.idx")
	var out bytes.Buffer
	if err := runIndex(t.Context(), indexOptions{RunDir: runDir, Images: imgDir, Out: idx}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "index: 12 images") || !strings.Contains(out.String(), "12 resized") {
		t.Errorf("index output: %s", out.String())
	}

	query := filepath.Join(imgDir, "imgb.png")
	out.Reset()
	strip := filepath.Join(tmp, "strip.png")
	if err := runSearch(t.Context(), searchOptions{Index: idx, Query: query, K: 4, Metric: "cosine", Strip: strip, JSON: true}, &out); err != nil {
		t.Fatal(err)
	}
	var hits []search.Hit
	if err := json.Unmarshal(out.Bytes(), &hits); err != nil {
		t.Fatalf("--json output %q: %v", out.String(), err)
	}
	if len(hits) != 4 || hits[0].Path != query || hits[0].Score < 0.9999 || hits[1].Score > hits[0].Score {
		t.Errorf("hits %+v: want the query itself first with similarity 1", hits)
	}
	if fi, err := os.Stat(strip); err != nil || fi.Size() == 0 {
		t.Errorf("strip: %v", err)
	}
	// The same index as Parquet (--format from the extension): the same
	// hits, and the same rows and features as the .idx file.
	pq := filepath.Join(tmp, "images.parquet")
	out.Reset()
	if err := runIndex(t.Context(), indexOptions{RunDir: runDir, Images: imgDir, Out: pq}, &out); err != nil {
		t.Fatal(err)
	}
	a, errA := search.Load(t.Context(), idx)
	b, errB := search.Load(t.Context(), pq)
	if errA != nil || errB != nil || !slices.Equal(a.Paths, b.Paths) || !slices.Equal(a.Features.Data, b.Features.Data) || a.Step != b.Step || a.ConfigHash != b.ConfigHash || a.Run != b.Run {
		t.Errorf("the Parquet index differs from the .idx one (%v, %v)", errA, errB)
	}
	out.Reset()
	if err := runSearch(t.Context(), searchOptions{Index: pq, Query: query, K: 4, Metric: "cosine", JSON: true}, &out); err != nil {
		t.Fatal(err)
	}
	var pqHits []search.Hit
	if err := json.Unmarshal(out.Bytes(), &pqHits); err != nil || !slices.Equal(pqHits, hits) {
		t.Errorf("search over Parquet: %+v (%v), over .idx: %+v", pqHits, err, hits)
	}
	// The last convolutional map, flattened and averaged (--features):
	// recorded in the index, so a search encodes its query the same way and
	// finds the query itself first.
	for _, f := range []string{encoder.Conv, encoder.ConvAvg} {
		p := filepath.Join(tmp, f+".parquet")
		if err := runIndex(t.Context(), indexOptions{RunDir: runDir, Images: imgDir, Out: p, Features: f}, new(bytes.Buffer)); err != nil {
			t.Fatal(err)
		}
		ix, err := search.Load(t.Context(), p)
		if err != nil || ix.Feature != f || ix.Features.Dim == a.Features.Dim && f == encoder.Conv {
			t.Fatalf("--features %s: %v; the index's feature %q, dimension %d", f, err, ix.Feature, ix.Features.Dim)
		}
		out.Reset()
		if err := runSearch(t.Context(), searchOptions{Index: p, Query: query, K: 2, Metric: "cosine", JSON: true}, &out); err != nil {
			t.Fatal(err)
		}
		var h []search.Hit
		if err := json.Unmarshal(out.Bytes(), &h); err != nil || len(h) != 2 || h[0].Path != query || h[0].Score < 0.9999 {
			t.Errorf("search over %s features: %+v (%v): want the query itself first", f, h, err)
		}
	}
	if err := runIndex(t.Context(), indexOptions{RunDir: runDir, Images: imgDir, Out: pq, Features: "pixels"}, new(bytes.Buffer)); err == nil || !strings.Contains(err.Error(), `features "pixels"`) {
		t.Errorf("--features pixels: %v", err)
	}
	if err := runIndex(t.Context(), indexOptions{RunDir: runDir, Images: imgDir, Out: pq, Format: "csv"}, new(bytes.Buffer)); err == nil || !strings.Contains(err.Error(), `--format "csv"`) {
		t.Errorf("--format csv: %v", err)
	}
	out.Reset()
	if err := runSearch(t.Context(), searchOptions{Index: idx, Query: query, K: 3, Metric: "l2", Strip: ""}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "distance 0.0000  "+query) {
		t.Errorf("l2 search output:\n%s", out.String())
	}

	// Bad input: clear errors.
	ix, _ := search.Load(t.Context(), idx)
	ix.ConfigHash = "0000000000000000"
	other := filepath.Join(tmp, "other.idx")
	ix.Save(other)
	empty := filepath.Join(tmp, "empty.idx")
	(&search.Index{Run: runDir}).Save(empty)
	cases := []struct {
		o    searchOptions
		want string
	}{
		{searchOptions{Index: idx, Query: filepath.Join(imgDir, "notes.txt"), K: 3, Metric: "cosine"}, "notes.txt: image: unknown format"},
		{searchOptions{Index: other, Query: query, K: 3, Metric: "cosine"}, "was made by another model"},
		{searchOptions{Index: empty, Query: query, K: 3, Metric: "cosine"}, "empty index"},
		{searchOptions{Index: query, Query: query, K: 3, Metric: "cosine"}, "not an infomax index"},
		{searchOptions{Index: idx, Query: query, K: 3, Metric: "manhattan"}, `--metric "manhattan"`},
	}
	for _, c := range cases {
		err := runSearch(t.Context(), c.o, new(bytes.Buffer))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want %q", c.o, err, c.want)
		}
	}
}

// runner index --ann hnsw writes INDEX.hnsw beside the index (a file, or a
// Parquet table in S3), with the recall it measured; runner search uses it
// and says so, gives the exact search's top 10 for at least 95% of queries
// (here: all of the ten tried), and refuses a damaged one or one of another index, naming
// the file, until --exact.
func TestIndexWithApproximateIndex(t *testing.T) {
	tmp := t.TempDir()
	runDir, err := testmodel.Run(filepath.Join(tmp, "run"))
	if err != nil {
		t.Fatal(err)
	}
	fm := testmodel.FashionMNISTSet(t, 300)
	imgDir := filepath.Join(tmp, "images")
	os.MkdirAll(imgDir, 0o755)
	for i := 0; i < fm.Len(); i++ {
		os.WriteFile(filepath.Join(imgDir, fmt.Sprintf("img%03d.png", i)), testmodel.UpscaledPNG(fm, i), 0o644)
	}
	emulators.Start(t, "idx")
	for _, idx := range []string{filepath.Join(tmp, "images.idx"), "s3://idx/team/images.parquet"} {
		var out bytes.Buffer
		o := indexOptions{RunDir: runDir, Images: imgDir, Out: idx, ANN: "hnsw", ANNM: 16, ANNEfConstruction: 100, ANNEf: 32}
		if err := runIndex(t.Context(), o, &out); err != nil {
			t.Fatal(err)
		}
		m := regexp.MustCompile(`approximate index: HNSW \(M 16, efConstruction 100\) of 300 images built in \S+ \(\+\S+ MiB resident, graph \S+ MB\); recall@10 ([0-9.]+) at efSearch 32 on 30 held-out images → (\S+)`).FindStringSubmatch(out.String())
		if m == nil || m[2] != idx+".hnsw" {
			t.Fatalf("index output:\n%s", out.String())
		}
		// Each search loads the encoder: 10 queries here, 2 from the bucket.
		queries := 10
		if strings.HasPrefix(idx, "s3://") {
			queries = 2
		}
		same := 0
		for q := 0; q < queries; q++ {
			query := filepath.Join(imgDir, fmt.Sprintf("img%03d.png", q*29))
			var approx, exact bytes.Buffer
			if err := runSearch(t.Context(), searchOptions{Index: idx, Query: query, K: 10, Metric: "cosine"}, &approx); err != nil {
				t.Fatal(err)
			}
			if err := runSearch(t.Context(), searchOptions{Index: idx, Query: query, K: 10, Metric: "cosine", Exact: true}, &exact); err != nil {
				t.Fatal(err)
			}
			head, rest, _ := strings.Cut(approx.String(), "\n")
			if !strings.HasPrefix(head, "search: approximate (HNSW, M 16, efSearch 32; its recall@10 at efSearch 32, measured when built on 30 held-out images: "+m[1]+")") {
				t.Fatalf("the search does not say it is approximate:\n%s", approx.String())
			}
			if paths(rest) == paths(exact.String()) {
				same++
			}
		}
		if same < queries {
			t.Errorf("%s: the approximate top 10 is the exact one for %d of %d queries", idx, same, queries)
		}
	}

	idx := filepath.Join(tmp, "images.idx")
	query := filepath.Join(imgDir, "img007.png")
	raw, err := os.ReadFile(idx + ".hnsw")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(idx+".hnsw", raw[:len(raw)-7], 0o644)
	err = runSearch(t.Context(), searchOptions{Index: idx, Query: query, K: 5, Metric: "cosine"}, new(bytes.Buffer))
	if err == nil || !strings.Contains(err.Error(), idx+".hnsw: hnsw index: ") || !strings.Contains(err.Error(), "--exact") {
		t.Errorf("a truncated approximate index: %v", err)
	}
	if err := runSearch(t.Context(), searchOptions{Index: idx, Query: query, K: 5, Metric: "cosine", Exact: true}, new(bytes.Buffer)); err != nil {
		t.Errorf("--exact beside a damaged approximate index: %v", err)
	}
	// The approximate index of another index (100 of the images).
	small := filepath.Join(tmp, "small")
	os.MkdirAll(small, 0o755)
	for i := 0; i < 100; i++ {
		os.WriteFile(filepath.Join(small, fmt.Sprintf("img%03d.png", i)), testmodel.UpscaledPNG(fm, i), 0o644)
	}
	if err := runIndex(t.Context(), indexOptions{RunDir: runDir, Images: small, Out: filepath.Join(tmp, "small.idx"), ANN: "hnsw", ANNM: 16, ANNEfConstruction: 50, ANNEf: 16}, new(bytes.Buffer)); err != nil {
		t.Fatal(err)
	}
	other, _ := os.ReadFile(filepath.Join(tmp, "small.idx.hnsw"))
	os.WriteFile(idx+".hnsw", other, 0o644)
	err = runSearch(t.Context(), searchOptions{Index: idx, Query: query, K: 5, Metric: "cosine"}, new(bytes.Buffer))
	if err == nil || !strings.Contains(err.Error(), "indexes 100 rows of dimension") {
		t.Errorf("the approximate index of another index: %v", err)
	}
	if err := runIndex(t.Context(), indexOptions{RunDir: runDir, Images: small, Out: filepath.Join(tmp, "x.idx"), ANN: "ivf"}, new(bytes.Buffer)); err == nil || !strings.Contains(err.Error(), `--ann "ivf"`) {
		t.Errorf("--ann ivf: %v", err)
	}
}

// paths are the paths of runner search's printed hits, in order.
func paths(out string) string {
	var ps []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if f := strings.Fields(line); len(f) == 3 {
			ps = append(ps, f[2])
		}
	}
	return strings.Join(ps, "\n")
}
