package data

import (
	"bufio"
	"bytes"
	"fmt"
	"path"
	"slices"
	"strings"
)

// Tiny ImageNet: the official layout, extracted or in an archive.

// loadTinyImageNet reads the official layout: wnids.txt (class order),
// words.txt (names), train/<wnid>/images/*, val/images/* labelled by
// val/val_annotations.txt, and optionally the unlabelled test/images/*.
func loadTinyImageNet(o Options) (*Splits, error) {
	t, err := openTree(o.Path, o.Limits)
	if err != nil {
		return nil, err
	}
	l, err := listTinyImageNet(t, o)
	if err != nil {
		return nil, err
	}
	return l.decode(o)
}

// listTinyImageNet lists the official layout's images in t.
func listTinyImageNet(t *tree, o Options) (*listing, error) {
	root, ok := t.find("wnids.txt")
	if !ok {
		return nil, fmt.Errorf("%s: no wnids.txt: not Tiny ImageNet's layout (tiny-imagenet-200/{wnids.txt,words.txt,train,val})", o.Path)
	}
	wnids, classes, err := tinyClasses(t, root)
	if err != nil {
		return nil, err
	}
	index := map[string]int{}
	for i, w := range wnids {
		index[w] = i
	}
	train, err := tinyTrain(t, root, wnids, o.TinyTestForTraining)
	if err != nil {
		return nil, err
	}
	val, err := tinyVal(t, root, index)
	if err != nil {
		return nil, err
	}
	return &listing{t: t, train: train, test: val, classes: classes}, nil
}

// textLines reads a text member's non-empty lines, trimmed.
func textLines(t *tree, name string) ([]string, error) {
	raw, err := t.read(name)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", t.where(name), err)
	}
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			out = append(out, l)
		}
	}
	return out, nil
}

// tinyClasses reads the class order (wnids.txt) and, where words.txt has
// them, the classes' first names.
func tinyClasses(t *tree, root string) (wnids, classes []string, err error) {
	if wnids, err = textLines(t, join(root, "wnids.txt")); err != nil {
		return nil, nil, err
	}
	classes = slices.Clone(wnids)
	if !t.has(join(root, "words.txt")) {
		return wnids, classes, nil
	}
	words, err := textLines(t, join(root, "words.txt"))
	if err != nil {
		return nil, nil, err
	}
	index := map[string]int{}
	for i, w := range wnids {
		index[w] = i
	}
	for _, l := range words {
		wnid, names, _ := strings.Cut(l, "\t")
		if i, ok := index[wnid]; ok {
			first, _, _ := strings.Cut(names, ",")
			classes[i] = strings.TrimSpace(first)
		}
	}
	return wnids, classes, nil
}

// tinyTrain lists train/<wnid>/images/* (and, if asked, the unlabelled
// test/images/*).
func tinyTrain(t *tree, root string, wnids []string, withTest bool) ([]item, error) {
	var train []item
	for i, w := range wnids {
		dir := join(root, "train/"+w+"/images")
		n := 0
		for _, f := range t.under(dir) {
			if isImage(f) {
				train = append(train, item{f, i})
				n++
			}
		}
		if n == 0 {
			return nil, fmt.Errorf("%s: class %s has no images", t.where(dir), w)
		}
	}
	if withTest {
		for _, f := range t.under(join(root, "test/images")) {
			if isImage(f) {
				train = append(train, item{f, Unlabelled})
			}
		}
	}
	return train, nil
}

// tinyVal lists val/images/*, labelled by val/val_annotations.txt.
func tinyVal(t *tree, root string, index map[string]int) ([]item, error) {
	annPath := join(root, "val/val_annotations.txt")
	ann, err := textLines(t, annPath)
	if err != nil {
		return nil, err
	}
	valLabel := map[string]int{}
	for n, l := range ann {
		fields := strings.Split(l, "\t")
		if len(fields) < 2 {
			return nil, fmt.Errorf("%s: line %d: want file<TAB>wnid…", t.where(annPath), n+1)
		}
		i, ok := index[fields[1]]
		if !ok {
			return nil, fmt.Errorf("%s: line %d: class %s is not in wnids.txt", t.where(annPath), n+1, fields[1])
		}
		valLabel[fields[0]] = i
	}
	var val []item
	for _, f := range t.under(join(root, "val/images")) {
		if !isImage(f) {
			continue
		}
		i, ok := valLabel[path.Base(f)]
		if !ok {
			return nil, fmt.Errorf("%s: no annotation in %s", t.where(f), t.where(annPath))
		}
		val = append(val, item{f, i})
	}
	if len(val) == 0 {
		return nil, fmt.Errorf("%s: no validation images", t.where(join(root, "val/images")))
	}
	return val, nil
}
