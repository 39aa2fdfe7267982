// Package data reads image data sets into one uint8 array per split, or streams them.
//
// Package data reads image data sets into one contiguous uint8 array per
// split (N·H·W·C bytes, row-major, channels last) plus int labels: the form
// the graph's uint8 input takes, with no per-image Go objects.
//
// Formats: Fashion-MNIST/MNIST IDX files; CIFAR-10's official binary release
// or a CIFAR-10 image folder; Tiny ImageNet's official layout; and folders of
// images (ROOT/<class>/<file>, or flat and unlabelled). Folders are read as
// they are on disk or straight from a .tar, .tar.gz or .zip archive. Images
// are decoded on every core, converted to the model's channel count and
// resized to its input size.
package data

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
)

// Unlabelled marks an image without a class (a flat folder, Tiny ImageNet's test split).
const Unlabelled = -1

// Set is one split of a data set.
type Set struct {
	Images  []byte // N·H·W·C bytes
	Labels  []int  // N class indices into Classes, or Unlabelled
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

// Labelled is the subset of images that have a class (a copy when some do not).
func (s *Set) Labelled() *Set {
	if !slices.Contains(s.Labels, Unlabelled) {
		return s
	}
	out := *s
	out.Images, out.Labels = nil, nil
	for i, l := range s.Labels {
		if l != Unlabelled {
			out.Images = append(out.Images, s.Image(i)...)
			out.Labels = append(out.Labels, l)
		}
	}
	return &out
}

// Splits are a data set's training and test splits, and what loading them
// found worth telling.
type Splits struct {
	Train, Test *Set
	Resized     int        // images resized to the model's input
	Bad         []BadImage // images left out (only with Options.SkipBad)
	Cached      string     // the decoded cache file read or written, if any
	FromCache   bool
}

// Options say what to read and what to turn it into.
type Options struct {
	Format string // fashion_mnist (or mnist), cifar10, tiny_imagenet, folder, shards
	Path   string
	Shape  Shape // the model's input
	// SkipBad leaves out images that fail to decode (reported in Splits.Bad)
	// instead of failing the load.
	SkipBad bool
	// TestFraction of a folder without train/ and test/ sub-folders is held
	// out, by a permutation drawn from Seed, as the test split.
	TestFraction float64
	Seed         int64
	// TinyTestForTraining adds Tiny ImageNet's unlabelled test/ images to
	// the training split.
	TinyTestForTraining bool
	// CacheDir holds decoded copies keyed by the source (see cache.go); "" for none.
	CacheDir string
	// Limits bound what any one file may make the loaders allocate.
	Limits Limits
}

// named gives an error of this data set the keys that say which it is, when
// it does not name data.path already (an error from deep inside a reader
// names the file it read; one about the set as a whole may not).
func (o Options) named(err error) error {
	if err == nil || o.Path != "" && strings.Contains(err.Error(), o.Path) {
		return err
	}
	return fmt.Errorf("data.path %s (data.format %s): %w", o.Path, o.Format, err)
}

// Formats lists the accepted Options.Format values.
var Formats = []string{"fashion_mnist", "mnist", "cifar10", "tiny_imagenet", "folder", "shards"}

// Load reads a data set, from the decoded cache when it holds a copy of this
// exact source.
func Load(ctx context.Context, o Options) (*Splits, error) {
	if err := o.Shape.check(); err != nil {
		return nil, err
	}
	key := ""
	if o.CacheDir != "" {
		k, err := CacheKey(o)
		if err != nil {
			return nil, o.named(err)
		}
		key = k
		if s, err := readCache(o.CacheDir, key); err == nil {
			return s, nil
		}
	}
	s, err := load(ctx, o)
	if err != nil {
		return nil, o.named(err)
	}
	if key != "" {
		s.Cached, err = writeCache(o.CacheDir, key, s)
		if err != nil {
			return nil, fmt.Errorf("write the decoded cache: %w", err)
		}
	}
	return s, nil
}

func load(ctx context.Context, o Options) (*Splits, error) {
	switch o.Format {
	case "fashion_mnist", "mnist":
		s, err := LoadIDXFolder(o.Path, FashionMNISTClasses, o.Limits)
		if err != nil {
			return nil, err
		}
		if o.Format == "mnist" {
			s.Train.Classes = digits
			s.Test.Classes = digits
		}
		return s.conform(o.Shape)
	case "cifar10":
		return loadCIFAR10(o)
	case "tiny_imagenet":
		return loadTinyImageNet(o)
	case "folder":
		return loadFolder(o)
	case "shards":
		st, err := openShards(ctx, o)
		if err != nil {
			return nil, err
		}
		return st.decode(ctx)
	}
	return nil, fmt.Errorf("data.format %q: want one of %v", o.Format, Formats)
}

// Summary tells, in a few lines, what Load found: sizes, resized and skipped images.
func (s *Splits) Summary(w io.Writer) {
	fmt.Fprintf(w, "data: %d training and %d test images of %dx%dx%d, %d classes, from %s\n",
		s.Train.Len(), s.Test.Len(), s.Train.H, s.Train.W, s.Train.C, len(s.Train.Classes), s.Train.Source)
	if s.FromCache {
		fmt.Fprintf(w, "data: decoded copy read from %s\n", s.Cached)
	}
	if s.Resized > 0 {
		fmt.Fprintf(w, "data: %d images resized to %dx%d\n", s.Resized, s.Train.W, s.Train.H)
	}
	PrintBad(w, s.Bad, "left out")
}

// PrintBad says how many images could not be decoded and names the first
// five; what says what became of them.
func PrintBad(w io.Writer, bad []BadImage, what string) {
	if len(bad) == 0 {
		return
	}
	fmt.Fprintf(w, "data: %d images could not be decoded and were %s (--skip-bad):\n", len(bad), what)
	for _, b := range bad[:min(5, len(bad))] {
		fmt.Fprintf(w, "  %s\n", b.Error())
	}
	if len(bad) > 5 {
		fmt.Fprintf(w, "  ... and %d more\n", len(bad)-5)
	}
}

var digits = []string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}

// FashionMNISTClasses are Fashion-MNIST's labels 0..9.
var FashionMNISTClasses = []string{"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"}

// LoadFashionMNIST reads the four official Fashion-MNIST IDX files from dir.
func LoadFashionMNIST(dir string) (*Splits, error) {
	return LoadIDXFolder(dir, FashionMNISTClasses, Limits{})
}

// LoadIDXFolder reads the four IDX files of the MNIST family (gzipped or not)
// from dir, within lim.
func LoadIDXFolder(dir string, classes []string, lim Limits) (*Splits, error) {
	load := func(images, labels string) (*Set, error) {
		s, err := ReadIDXPair(findIDX(dir, images), findIDX(dir, labels), len(classes), lim)
		if err != nil {
			return nil, err
		}
		s.Classes = classes
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
