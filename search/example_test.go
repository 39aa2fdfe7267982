package search_test

import (
	"fmt"
	"log"
	"math/rand/v2"
	"os"
	"path/filepath"

	"github.com/infomax/infomax/encoder"
	"github.com/infomax/infomax/eval"
	"github.com/infomax/infomax/internal/testmodel"
	"github.com/infomax/infomax/search"
)

// Index a few images, save the index, load it and look one image up.
func Example() {
	tmp, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(tmp)
	runDir, err := testmodel.Run(filepath.Join(tmp, "run"))
	if err != nil {
		log.Fatal(err)
	}
	enc, err := encoder.Load(runDir)
	if err != nil {
		log.Fatal(err)
	}
	defer enc.Close()

	// Three 28×28 grey images of noise, encoded as a batch.
	r := rand.New(rand.NewPCG(1, 2))
	pixels := make([]byte, 3*28*28)
	for i := range pixels {
		pixels[i] = byte(r.IntN(256))
	}
	feats, err := enc.EncodePixels(pixels)
	if err != nil {
		log.Fatal(err)
	}
	ix := &search.Index{
		Paths:    []string{"a.png", "b.png", "c.png"},
		Features: eval.Features{Data: feats, Dim: enc.Dim()},
		Run:      runDir, ConfigHash: enc.ConfigHash, Step: enc.Step,
	}
	path := filepath.Join(tmp, "images.idx")
	if err := ix.Save(path); err != nil {
		log.Fatal(err)
	}

	loaded, err := search.Load(path)
	if err != nil {
		log.Fatal(err)
	}
	query := eval.Features{Data: feats[enc.Dim() : 2*enc.Dim()], Dim: enc.Dim()} // b.png itself
	hits, err := loaded.Search(query, 1, eval.Cosine)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s %.3f\n", hits[0][0].Path, hits[0][0].Score)
	// Output: b.png 1.000
}
