// Package fullsize builds Tiny ImageNet at its full training size for
// benchmarks: the official layout as a zip (as released), its 200 × 100
// training images from the subset in ../shared/data repeated to 500 per
// class (or more), the validation split as it is.
package fullsize

import (
	"archive/tar"
	"archive/zip"
	"bufio"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Subset is the archive the images come from, relative to the project root.
const Subset = "../shared/data/tiny-imagenet-200-subset.tar.gz"

// TinyImageNet writes root's subset into out (a .zip) with every training
// image copies times (5: the release's 100,000), and returns the number of
// training images written.
func TinyImageNet(root, out string, copies int) (int, error) {
	in, err := os.Open(filepath.Join(root, Subset))
	if err != nil {
		return 0, fmt.Errorf("%w (the Tiny ImageNet subset is needed: ../shared/data beside the project)", err)
	}
	defer in.Close()
	gz, err := gzip.NewReader(bufio.NewReader(in))
	if err != nil {
		return 0, err
	}
	f, err := os.Create(out)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	bw := bufio.NewWriterSize(f, 1<<20)
	zw := zip.NewWriter(bw)
	put := func(name string, b []byte) error {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Store})
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	}
	tr := tar.NewReader(gz)
	n := 0
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return 0, err
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return 0, err
		}
		name := strings.TrimPrefix(h.Name, "./")
		if !strings.Contains(name, "/train/") || !strings.HasSuffix(name, ".JPEG") {
			if err := put(name, b); err != nil {
				return 0, err
			}
			continue
		}
		for k := 0; k < copies; k++ {
			if err := put(strings.TrimSuffix(name, ".JPEG")+fmt.Sprintf("_r%d.JPEG", k), b); err != nil {
				return 0, err
			}
			n++
		}
	}
	if err := zw.Close(); err != nil {
		return 0, err
	}
	if err := bw.Flush(); err != nil {
		return 0, err
	}
	return n, f.Close()
}
