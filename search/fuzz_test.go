package search

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/infomax/infomax/internal/hnsw"
	"github.com/infomax/infomax/knn"
)

func indexBytes(t testing.TB, paths []string, dim int) []byte {
	ix := &Index{Paths: paths, Features: knn.Features{Dim: dim, Data: make([]float32, dim*len(paths))}, Run: "runs/x", ConfigHash: "abc", Step: 3}
	for i := range ix.Features.Data {
		ix.Features.Data[i] = float32(i) / 7
	}
	p := filepath.Join(t.TempDir(), "x.idx")
	if err := ix.Save(p); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// lyingHeader is an index whose header length is 2^64-1.
func lyingHeader() []byte {
	b := []byte(magic)
	return binary.LittleEndian.AppendUint64(b, ^uint64(0))
}

// FuzzParse: no index file, however corrupt, panics Parse or yields an index
// whose features and paths disagree.
func FuzzParse(f *testing.F) {
	f.Add(indexBytes(f, []string{"a.png", "b.png"}, 3))
	f.Add(indexBytes(f, nil, 0))
	f.Add(lyingHeader())
	f.Fuzz(func(t *testing.T, b []byte) {
		ix, err := Parse(b)
		if err == nil && ix.Features.Dim*len(ix.Paths) != len(ix.Features.Data) {
			t.Fatalf("%d paths of dimension %d, %d values", len(ix.Paths), ix.Features.Dim, len(ix.Features.Data))
		}
	})
}

// Truncated, corrupt or lying index files: clear errors.
func TestCorruptIndexFiles(t *testing.T) {
	good := indexBytes(t, []string{"a.png", "b.png"}, 3)
	headLen := binary.LittleEndian.Uint64(good[len(magic):])
	// The same 2×3 values, with a header that claims dimension 30.
	head := strings.Replace(string(good[len(magic)+8:len(magic)+8+int(headLen)]), `"dim":3`, `"dim":30`, 1)
	moreVectors := binary.LittleEndian.AppendUint64([]byte(magic), uint64(len(head)))
	moreVectors = append(append(moreVectors, head...), good[len(magic)+8+int(headLen):]...)
	cases := map[string]struct {
		raw  []byte
		want string
	}{
		"truncated":            {good[:len(good)-5], "truncated or corrupt"},
		"header length 2^64-1": {lyingHeader(), "truncated index header"},
		"header cut":           {good[:len(magic)+8+int(headLen)/2], "truncated index header"},
		"claims more vectors":  {moreVectors, "of dimension 30: truncated or corrupt"},
		"not an index":         {[]byte("hello"), "not an infomax index"},
	}
	for name, c := range cases {
		p := filepath.Join(t.TempDir(), "x.idx")
		os.WriteFile(p, c.raw, 0o644)
		_, err := Load(t.Context(), p)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: %v, want %q naming the file", name, err, c.want)
		}
	}
}

// Whatever INDEX.hnsw holds, LoadANN gives an error or an index that
// searches without crashing; a well-formed one of another index is refused.
func FuzzLoadANN(f *testing.F) {
	r := make([]float32, 80*6)
	for i := range r {
		r[i] = float32((i*37)%23) - 11
	}
	paths := make([]string, 80)
	for i := range paths {
		paths[i] = "p" + string(rune('A'+i%26))
	}
	ix, err := New(paths, knn.Features{Data: r, Dim: 6}, "runs/x", "abc", 3)
	if err != nil {
		f.Fatal(err)
	}
	// The graph built directly (BuildANN's recall check would start
	// TensorFlow in every fuzzing worker).
	g, err := hnsw.Build(unitRows(ix.Features), 6, ANNParams{M: 4, EfConstruction: 20}, 1)
	if err != nil {
		f.Fatal(err)
	}
	ann := &ANN{ix: g, Header: ANNHeader{Kind: "hnsw", Library: "hnswlib 0.8.0", Metric: "cosine", Rows: 80, Dim: 6, ConfigHash: "abc", Step: 3, M: 4, EfConstruction: 20, EfSearch: 8, Recall: 1}}
	p := filepath.Join(f.TempDir(), "x.idx.hnsw")
	if err := ann.Save(f.Context(), p); err != nil {
		f.Fatal(err)
	}
	ann.Close()
	raw, err := os.ReadFile(p)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(raw)
	f.Add(raw[:40])
	f.Add([]byte(annMagic + "\xff\xff\xff\xff"))
	q := knn.Features{Data: r[:12], Dim: 6}
	f.Fuzz(func(t *testing.T, b []byte) {
		path := filepath.Join(t.TempDir(), "x.idx.hnsw")
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		a, err := LoadANN(t.Context(), path, ix)
		if err != nil {
			if !strings.Contains(err.Error(), path) {
				t.Fatalf("an error that does not name the file: %v", err)
			}
			return
		}
		defer a.Close()
		if _, err := a.Search(ix, q, 5, 0); err != nil && !strings.Contains(err.Error(), "hnsw") {
			t.Fatal(err)
		}
	})
}
