package search_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/infomax/infomax/knn"
	"github.com/infomax/infomax/search"
)

// Make an index of three images' features (in a batch job, an Encoder's
// output and its Run, ConfigHash and Step), save it, load it and look one
// image up.
func Example() {
	tmp, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(tmp)
	feats := knn.Features{Dim: 3, Data: []float32{
		1, 0, 0, // a.png
		0, 1, 0.1, // b.png
		0, 0, 1, // c.png
	}}
	ix, err := search.New([]string{"a.png", "b.png", "c.png"}, feats, "/data/runs/fashion_mnist", "3f2a…", 1875)
	if err != nil {
		log.Fatal(err)
	}
	path := filepath.Join(tmp, "images.idx")
	if err := ix.Save(path); err != nil {
		log.Fatal(err)
	}
	loaded, err := search.Load(context.Background(), path)
	if err != nil {
		log.Fatal(err)
	}
	query := knn.Features{Dim: 3, Data: []float32{0, 2, 0}}
	hits, err := loaded.Search(context.Background(), query, 2, knn.Cosine)
	if err != nil {
		log.Fatal(err)
	}
	for _, h := range hits[0] {
		fmt.Printf("%s %.3f\n", h.Path, h.Score)
	}
	// Output:
	// b.png 0.995
	// a.png 0.000
}

// New refuses features that do not match the paths one to one.
func ExampleNew() {
	_, err := search.New([]string{"a.png"}, knn.Features{Dim: 2, Data: []float32{1, 2, 3, 4}}, "", "", 0)
	fmt.Println(err)
	// Output: index: 2 feature rows for 1 paths
}
