// Loaders of the data sets by format: cifar10.go, tinyimagenet.go, folder.go,
// idx.go; the image layouts are listed (a listing of items) and then decoded
// into memory (listing.decode) or streamed (stream.go).
package data

import (
	"fmt"
)

// item is one image to decode: its member name in a tree and its label.
type item struct {
	name  string
	label int
}

// listing is an image layout's splits, listed but not decoded.
type listing struct {
	t           *tree
	train, test []item
	classes     []string
}

// decode decodes both splits into memory.
func (l *listing) decode(o Options) (*Splits, error) {
	tr, bad1, r1, err := decodeItems(l.t, l.train, l.classes, o, o.Path)
	if err != nil {
		return nil, err
	}
	var te *Set
	var bad2 []BadImage
	var r2 int
	if len(l.test) > 0 {
		te, bad2, r2, err = decodeItems(l.t, l.test, l.classes, o, o.Path)
		if err != nil {
			return nil, err
		}
	} else {
		te = &Set{H: tr.H, W: tr.W, C: tr.C, Classes: l.classes, Source: o.Path}
	}
	return &Splits{Train: tr, Test: te, Resized: r1 + r2, Bad: append(bad1, bad2...)}, nil
}

// decodeItems decodes items from t into a Set.
func decodeItems(t *tree, items []item, classes []string, o Options, src string) (*Set, []BadImage, int, error) {
	job := decodeJob{
		n:     len(items),
		read:  func(i int) ([]byte, error) { return t.read(items[i].name) },
		where: func(i int) string { return t.where(items[i].name) },
		shape: o.Shape,
		lim:   o.Limits,
	}
	pixels, bad, badIdx, resized, err := job.run(o.SkipBad)
	if err != nil {
		return nil, nil, 0, err
	}
	labels := make([]int, len(items))
	for i, it := range items {
		labels[i] = it.label
	}
	pixels, labels = dropIndices(pixels, labels, o.Shape.bytes(), badIdx)
	if len(labels) == 0 {
		return nil, nil, 0, fmt.Errorf("%s: none of its %d images could be decoded (first: %v)", src, len(items), bad[0])
	}
	return &Set{Images: pixels, Labels: labels, H: o.Shape.H, W: o.Shape.W, C: o.Shape.C, Classes: classes, Source: src}, bad, resized, nil
}
