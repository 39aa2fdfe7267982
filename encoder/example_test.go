package encoder_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/infomax/infomax/data"
	"github.com/infomax/infomax/encoder"
)

// A batch job loads a trained run by its path (from any working directory)
// and encodes image files; bad files are left out and reported. See
// examples/batchjob for a whole program, which CI builds and runs.
func Example() {
	ctx := context.Background()
	enc, err := encoder.Load(context.Background(), "/data/runs/fashion_mnist")
	if err != nil {
		log.Fatal(err)
	}
	defer enc.Close()
	res, err := enc.EncodeFilesSkipBad(ctx, "shoe.jpg", "shirt.png", "notes.txt")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%d images encoded into %d features each\n", len(res.Kept), enc.Dim())
	for _, bad := range res.Bad {
		fmt.Println("left out:", bad.Path, bad.Err)
	}
}

// A file that is not an image, or one whose header claims more pixels than
// the run's limits allow, is a data.BadImage naming it.
func ExampleEncoder_EncodeFiles() {
	enc, err := encoder.Load(context.Background(), "/data/runs/fashion_mnist")
	if err != nil {
		log.Fatal(err)
	}
	defer enc.Close()
	_, err = enc.EncodeFiles(context.Background(), "a.png", "b.png")
	var bad data.BadImage
	if errors.As(err, &bad) {
		fmt.Println("not encoded:", bad.Path, errors.Is(err, data.ErrTooLarge))
	}
}
