package testmodel

import (
	"bytes"
	"fmt"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"testing"

	"github.com/infomax/infomax/config"
	"github.com/infomax/infomax/data"
	"github.com/infomax/infomax/pyexport"
)

// FashionMNIST writes the first nTrain training and nTest test images of the
// real Fashion-MNIST (from the default data path, installed by `make setup`)
// as gzipped IDX files into a new folder, and returns it.
func FashionMNIST(t testing.TB, nTrain, nTest int) string {
	t.Helper()
	src := config.Defaults().Data.Path
	full, err := data.LoadFashionMNIST(src)
	if err != nil {
		t.Fatalf("Fashion-MNIST is needed for this test (run `make setup`): %v", err)
	}
	dir := t.TempDir()
	write := func(s *data.Set, n int, images, labels string) {
		WriteIDX(t, filepath.Join(dir, images), 0x803, []int{n, s.H, s.W}, s.Images[:n*s.ImageBytes()])
		lb := make([]byte, n)
		for i := range lb {
			lb[i] = byte(s.Labels[i])
		}
		WriteIDX(t, filepath.Join(dir, labels), 0x801, []int{n}, lb)
	}
	write(full.Train, nTrain, "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz")
	write(full.Test, nTest, "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
	return dir
}

// FashionMNISTFolder writes the first nTrain training and nTest test images
// of the real Fashion-MNIST as PNG files at their own size in an image
// folder, ROOT/{train,test}/<class>/NNNNN.png, and returns ROOT.
func FashionMNISTFolder(t testing.TB, nTrain, nTest int) string {
	t.Helper()
	full, err := data.LoadFashionMNIST(config.Defaults().Data.Path)
	if err != nil {
		t.Fatalf("Fashion-MNIST is needed for this test (run `make setup`): %v", err)
	}
	root := t.TempDir()
	for _, sp := range []struct {
		name string
		s    *data.Set
		n    int
	}{{"train", full.Train, nTrain}, {"test", full.Test, nTest}} {
		for i := 0; i < sp.n; i++ {
			g := &image.Gray{Pix: sp.s.Image(i), Stride: sp.s.W, Rect: image.Rect(0, 0, sp.s.W, sp.s.H)}
			var b bytes.Buffer
			png.Encode(&b, g)
			dir := filepath.Join(root, sp.name, fmt.Sprintf("class%d", sp.s.Labels[i]))
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%05d.png", i)), b.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	return root
}

// CIFAR10Train is the first n training images of CIFAR-10 from the JPEG
// archive in ../shared/data, decoded (for benchmarks).
func CIFAR10Train(t testing.TB, n int) *data.Set {
	t.Helper()
	root, err := pyexport.Root()
	if err != nil {
		t.Fatal(err)
	}
	s, err := data.Load(data.Options{Format: "cifar10", Path: filepath.Join(root, "..", "shared", "data", "cifar10-jpeg.tar.gz"), Shape: data.Shape{H: 32, W: 32, C: 3}})
	if err != nil {
		t.Fatalf("the CIFAR-10 archive in ../shared/data is needed: %v", err)
	}
	tr := s.Train
	return &data.Set{Images: tr.Images[:n*tr.ImageBytes()], Labels: tr.Labels[:n], H: 32, W: 32, C: 3, Classes: tr.Classes, Source: tr.Source}
}

// WriteIDX writes an IDX file (gzipped when path ends in .gz), failing t.
func WriteIDX(t testing.TB, path string, magic uint32, dims []int, payload []byte) {
	t.Helper()
	if err := data.WriteIDX(path, magic, dims, payload); err != nil {
		t.Fatal(err)
	}
}

// FashionMNISTSet is the first n real Fashion-MNIST training images.
func FashionMNISTSet(t testing.TB, n int) *data.Set {
	t.Helper()
	full, err := data.LoadFashionMNIST(config.Defaults().Data.Path)
	if err != nil {
		t.Fatalf("Fashion-MNIST is needed for this test (run `make setup`): %v", err)
	}
	s := full.Train
	return &data.Set{Images: s.Images[:n*s.ImageBytes()], Labels: s.Labels[:n], H: s.H, W: s.W, C: s.C, Classes: s.Classes, Source: s.Source}
}

// UpscaledPNG is image i of s (grey) enlarged twice with nearest-neighbour
// sampling and encoded as PNG: a real image of another size than the model's
// input.
func UpscaledPNG(s *data.Set, i int) []byte {
	w, h := 2*s.W, 2*s.H
	g := image.NewGray(image.Rect(0, 0, w, h))
	px := s.Image(i)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			g.Pix[y*w+x] = px[(y/2)*s.W+x/2]
		}
	}
	var b bytes.Buffer
	png.Encode(&b, g)
	return b.Bytes()
}
