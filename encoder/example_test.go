package encoder_test

import (
	"fmt"
	"image"
	"log"
	"os"
	"path/filepath"

	"github.com/infomax/infomax/encoder"
	"github.com/infomax/infomax/internal/testmodel"
)

// A batch job loads a trained run and encodes images of any size.
func Example() {
	tmp, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(tmp)
	runDir, err := testmodel.Run(filepath.Join(tmp, "run")) // stands in for runs/fashion_mnist
	if err != nil {
		log.Fatal(err)
	}

	enc, err := encoder.Load(runDir)
	if err != nil {
		log.Fatal(err)
	}
	defer enc.Close()
	imgs := []image.Image{
		image.NewRGBA(image.Rect(0, 0, 100, 60)), // any size and colour model: converted to the input
		image.NewGray(image.Rect(0, 0, 28, 28)),
	}
	feats, err := enc.EncodeImages(imgs)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("input %dx%dx%d, %d features of %d for %d images\n",
		enc.Shape.W, enc.Shape.H, enc.Shape.C, len(feats), enc.Dim(), len(imgs))
	// Output: input 28x28x1, 32 features of 16 for 2 images
}
