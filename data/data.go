// Package data reads image data sets into one contiguous uint8 array per
// split (N·H·W·C bytes, row-major, channels last) plus int labels: the form
// the graph's uint8 input takes, with no per-image Go objects.
package data

import (
	"fmt"
	"path/filepath"
)

// Set is one split of a data set.
type Set struct {
	Images  []byte // N·H·W·C bytes
	Labels  []int  // N class indices into Classes
	H, W, C int
	Classes []string
	Source  string // where it was read from, for messages
}

// Len is the number of images.
func (s *Set) Len() int { return len(s.Labels) }

// ImageBytes is the size of one image.
func (s *Set) ImageBytes() int { return s.H * s.W * s.C }

// Image returns the bytes of image i (a view, not a copy).
func (s *Set) Image(i int) []byte {
	n := s.ImageBytes()
	return s.Images[i*n : (i+1)*n]
}

// Splits are a data set's training and test splits.
type Splits struct {
	Train, Test *Set
}

// Load reads a data set in the named format from path.
func Load(format, path string) (*Splits, error) {
	switch format {
	case "fashion_mnist":
		return LoadFashionMNIST(path)
	case "cifar10", "tiny_imagenet":
		return nil, fmt.Errorf("data.format %s: no loader yet (it comes with the data-set issue); export works, training does not", format)
	}
	return nil, fmt.Errorf("data.format %q: unknown format", format)
}

// FashionMNISTClasses are Fashion-MNIST's labels 0..9.
var FashionMNISTClasses = []string{"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"}

// LoadFashionMNIST reads the four official IDX files (gzipped or not) from dir.
func LoadFashionMNIST(dir string) (*Splits, error) {
	load := func(images, labels string) (*Set, error) {
		s, err := ReadIDXPair(findIDX(dir, images), findIDX(dir, labels), len(FashionMNISTClasses))
		if err != nil {
			return nil, err
		}
		s.Classes = FashionMNISTClasses
		return s, nil
	}
	train, err := load("train-images-idx3-ubyte", "train-labels-idx1-ubyte")
	if err != nil {
		return nil, err
	}
	test, err := load("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
	if err != nil {
		return nil, err
	}
	return &Splits{Train: train, Test: test}, nil
}

// findIDX prefers name.gz, as released, and falls back to the unpacked file.
func findIDX(dir, name string) string {
	gz := filepath.Join(dir, name+".gz")
	if fileExists(gz) {
		return gz
	}
	if plain := filepath.Join(dir, name); fileExists(plain) {
		return plain
	}
	return gz // the error will name the file as released
}
