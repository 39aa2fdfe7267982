package data

import (
	"fmt"
	"image"
	"runtime"
	"strings"
	"sync"
)

// CIFAR-10: the official binary release, or image folders.

// CIFAR10Classes is CIFAR-10's label order (batches.meta.txt).
var CIFAR10Classes = []string{"airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"}

const cifarRecord = 1 + 32*32*3

// loadCIFAR10 reads the official binary release (cifar-10-batches-bin, as a
// folder or inside cifar-10-binary.tar.gz) or, failing that, a folder of
// images with train/ and test/ splits (such as a JPEG copy of CIFAR-10).
func loadCIFAR10(o Options) (*Splits, error) {
	t, err := openTree(o.Path, o.Limits)
	if err != nil {
		return nil, err
	}
	dir, ok := t.find("data_batch_1.bin")
	if !ok {
		l, err := listCIFAR10Folder(t, o)
		if err != nil {
			return nil, err
		}
		return l.decode(o)
	}
	classes := CIFAR10Classes
	if meta := join(dir, "batches.meta.txt"); t.has(meta) {
		raw, err := t.read(meta)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", t.where(meta), err)
		}
		var names []string
		for _, l := range strings.Split(string(raw), "\n") {
			if l = strings.TrimSpace(l); l != "" {
				names = append(names, l)
			}
		}
		if len(names) != 10 {
			return nil, fmt.Errorf("%s: %d class names, want 10", t.where(meta), len(names))
		}
		classes = names
	}
	read := func(names ...string) (*Set, error) {
		var all []*Set
		for _, n := range names {
			name := join(dir, n)
			if !t.has(name) {
				return nil, fmt.Errorf("%s: missing (the binary release has data_batch_1..5.bin and test_batch.bin)", t.where(name))
			}
			raw, err := t.read(name)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", t.where(name), err)
			}
			s, err := ParseCIFAR10Batch(raw, t.where(name))
			if err != nil {
				return nil, err
			}
			all = append(all, s)
		}
		out := &Set{H: 32, W: 32, C: 3, Classes: classes, Source: o.Path}
		for _, s := range all {
			out.Images = append(out.Images, s.Images...)
			out.Labels = append(out.Labels, s.Labels...)
		}
		return out, nil
	}
	train, err := read("data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin")
	if err != nil {
		return nil, err
	}
	test, err := read("test_batch.bin")
	if err != nil {
		return nil, err
	}
	return (&Splits{Train: train, Test: test}).conform(o.Shape)
}

// listCIFAR10Folder lists CIFAR-10 as an image folder with train/ and test/.
func listCIFAR10Folder(t *tree, o Options) (*listing, error) {
	if root := unwrap(t); hasSplits(t, root) {
		return listFolderTree(t, root, o)
	}
	return nil, fmt.Errorf("%s: neither CIFAR-10's binary release (data_batch_1.bin … test_batch.bin) nor an image folder with train/ and test/", o.Path)
}

// ParseCIFAR10Batch reads one CIFAR-10 binary batch: records of a label byte
// and 3,072 pixel bytes, the R, G and B planes of a 32×32 image in turn.
// name is used in errors.
func ParseCIFAR10Batch(raw []byte, name string) (*Set, error) {
	if len(raw) == 0 || len(raw)%cifarRecord != 0 {
		return nil, fmt.Errorf("%s: %d bytes is not a whole number of %d-byte records (truncated or not a CIFAR-10 batch)", name, len(raw), cifarRecord)
	}
	n := len(raw) / cifarRecord
	s := &Set{Images: make([]byte, n*3072), Labels: make([]int, n), H: 32, W: 32, C: 3, Source: name}
	for i := 0; i < n; i++ {
		rec := raw[i*cifarRecord : (i+1)*cifarRecord]
		if rec[0] >= 10 {
			return nil, fmt.Errorf("%s: record %d has label %d, out of range (10 classes)", name, i, rec[0])
		}
		s.Labels[i] = int(rec[0])
		px := s.Images[i*3072 : (i+1)*3072]
		for p := 0; p < 1024; p++ {
			px[3*p], px[3*p+1], px[3*p+2] = rec[1+p], rec[1+1024+p], rec[1+2048+p]
		}
	}
	return s, nil
}

// conform converts sets read at their native shape (IDX, CIFAR binary) to
// the model's, counting the resized images.
func (s *Splits) conform(to Shape) (*Splits, error) {
	for _, set := range []*Set{s.Train, s.Test} {
		if set.H == to.H && set.W == to.W && set.C == to.C {
			continue
		}
		from := Shape{set.H, set.W, set.C}
		out := make([]byte, set.Len()*to.bytes())
		var wg sync.WaitGroup
		workers := runtime.GOMAXPROCS(0)
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				for i := w; i < set.Len(); i += workers {
					ImageInto(out[i*to.bytes():(i+1)*to.bytes()], rawImage(set.Image(i), from), to)
				}
			}(w)
		}
		wg.Wait()
		if from.H != to.H || from.W != to.W {
			s.Resized += set.Len()
		}
		set.Images, set.H, set.W, set.C = out, to.H, to.W, to.C
	}
	return s, nil
}

// rawImage wraps packed pixels as an image without copying grey ones.
func rawImage(px []byte, s Shape) image.Image {
	r := image.Rect(0, 0, s.W, s.H)
	if s.C == 1 {
		return &image.Gray{Pix: px, Stride: s.W, Rect: r}
	}
	img := image.NewRGBA(r)
	for i, j := 0, 0; j < len(px); i, j = i+4, j+3 {
		img.Pix[i], img.Pix[i+1], img.Pix[i+2], img.Pix[i+3] = px[j], px[j+1], px[j+2], 255
	}
	return img
}
