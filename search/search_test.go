package search

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/infomax/infomax/knn"
)

// An Index built by hand with more feature rows than paths (or rows that
// are not whole) is an error in Search, as in Save, not a panic.
func TestSearchChecksTheIndex(t *testing.T) {
	q := knn.Features{Dim: 2, Data: []float32{1, 0}}
	for name, ix := range map[string]*Index{
		"more rows than paths":    {Paths: []string{"a"}, Features: knn.Features{Dim: 2, Data: []float32{1, 0, 0, 1}}},
		"more paths than rows":    {Paths: []string{"a", "b", "c"}, Features: knn.Features{Dim: 2, Data: []float32{1, 0, 0, 1}}},
		"rows that are not whole": {Paths: []string{"a", "b"}, Features: knn.Features{Dim: 2, Data: []float32{1, 0, 0}}},
		"dimension 0":             {Paths: []string{"a"}, Features: knn.Features{Data: []float32{1}}},
	} {
		if _, err := ix.Search(t.Context(), q, 1, knn.Cosine); err == nil || !strings.HasPrefix(err.Error(), "index:") {
			t.Errorf("%s: Search gave %v, want an index error", name, err)
		}
		if err := ix.Save(filepath.Join(t.TempDir(), "x.idx")); err == nil {
			t.Errorf("%s: Save accepted it", name)
		}
		if _, err := New(ix.Paths, ix.Features, "", "", 0); err == nil {
			t.Errorf("%s: New accepted it", name)
		}
	}
}

// An index records its run relative to itself too: moved together with the
// run, it finds the run at the new place; moved alone, at the old one.
func TestIndexFindsItsRunAfterAMove(t *testing.T) {
	tmp := t.TempDir()
	old := filepath.Join(tmp, "old")
	run := filepath.Join(old, "runs", "r")
	os.MkdirAll(run, 0o755)
	os.WriteFile(filepath.Join(run, "config.yaml"), []byte("name: r\n"), 0o644)
	ix, err := New([]string{"a.png"}, knn.Features{Dim: 1, Data: []float32{1}}, run, "h", 1)
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(old, "indexes"), 0o755)
	if err := ix.Save(filepath.Join(old, "indexes", "x.idx")); err != nil {
		t.Fatal(err)
	}
	// Both moved: the run is found beside the index.
	moved := filepath.Join(tmp, "new place ü")
	if err := os.Rename(old, moved); err != nil {
		t.Fatal(err)
	}
	got, err := Load(t.Context(), filepath.Join(moved, "indexes", "x.idx"))
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(moved, "runs", "r"); got.Run != want {
		t.Errorf("moved with its run: run %s, want %s", got.Run, want)
	}
	// The index alone, elsewhere: the absolute path it recorded.
	alone := filepath.Join(tmp, "alone.idx")
	os.Rename(filepath.Join(moved, "indexes", "x.idx"), alone)
	if got, err := Load(t.Context(), alone); err != nil || got.Run != run {
		t.Errorf("moved alone: run %s (%v), want %s", got.Run, err, run)
	}
}
