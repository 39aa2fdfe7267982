package data

import (
	"bufio"
	"bytes"
	"fmt"
	"image"
	"math"
	"math/rand/v2"
	"path"
	"runtime"
	"slices"
	"strings"
	"sync"
)

// item is one image to decode: its member name in a tree and its label.
type item struct {
	name  string
	label int
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

// ---- CIFAR-10 ----

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
		if root := unwrap(t); hasSplits(t, root) {
			return loadFolderTree(t, root, o)
		}
		return nil, fmt.Errorf("%s: neither CIFAR-10's binary release (data_batch_1.bin … test_batch.bin) nor an image folder with train/ and test/", o.Path)
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

// ---- Tiny ImageNet ----

// loadTinyImageNet reads the official layout: wnids.txt (class order),
// words.txt (names), train/<wnid>/images/*, val/images/* labelled by
// val/val_annotations.txt, and optionally the unlabelled test/images/*.
func loadTinyImageNet(o Options) (*Splits, error) {
	t, err := openTree(o.Path, o.Limits)
	if err != nil {
		return nil, err
	}
	root, ok := t.find("wnids.txt")
	if !ok {
		return nil, fmt.Errorf("%s: no wnids.txt: not Tiny ImageNet's layout (tiny-imagenet-200/{wnids.txt,words.txt,train,val})", o.Path)
	}
	lines := func(name string) ([]string, error) {
		raw, err := t.read(join(root, name))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", t.where(join(root, name)), err)
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
	wnids, err := lines("wnids.txt")
	if err != nil {
		return nil, err
	}
	index := map[string]int{}
	for i, w := range wnids {
		index[w] = i
	}
	classes := slices.Clone(wnids)
	if t.has(join(root, "words.txt")) {
		words, err := lines("words.txt")
		if err != nil {
			return nil, err
		}
		for _, l := range words {
			wnid, names, _ := strings.Cut(l, "\t")
			if i, ok := index[wnid]; ok {
				first, _, _ := strings.Cut(names, ",")
				classes[i] = strings.TrimSpace(first)
			}
		}
	}

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
	if o.TinyTestForTraining {
		for _, f := range t.under(join(root, "test/images")) {
			if isImage(f) {
				train = append(train, item{f, Unlabelled})
			}
		}
	}

	annPath := join(root, "val/val_annotations.txt")
	ann, err := lines("val/val_annotations.txt")
	if err != nil {
		return nil, fmt.Errorf("%s: %w", t.where(annPath), err)
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
	return splitsOf(t, train, val, classes, o)
}

func splitsOf(t *tree, train, test []item, classes []string, o Options) (*Splits, error) {
	tr, bad1, r1, err := decodeItems(t, train, classes, o, o.Path)
	if err != nil {
		return nil, err
	}
	var te *Set
	var bad2 []BadImage
	var r2 int
	if len(test) > 0 {
		te, bad2, r2, err = decodeItems(t, test, classes, o, o.Path)
		if err != nil {
			return nil, err
		}
	} else {
		te = &Set{H: tr.H, W: tr.W, C: tr.C, Classes: classes, Source: o.Path}
	}
	return &Splits{Train: tr, Test: te, Resized: r1 + r2, Bad: append(bad1, bad2...)}, nil
}

// ---- image folders ----

func loadFolder(o Options) (*Splits, error) {
	t, err := openTree(o.Path, o.Limits)
	if err != nil {
		return nil, err
	}
	root := ""
	if !isDirPath(o.Path) {
		root = unwrap(t)
	}
	return loadFolderTree(t, root, o)
}

// unwrap finds the folder inside an archive that holds its contents: archives
// usually wrap everything in one top folder.
func unwrap(t *tree) string {
	root := ""
	for {
		kids := t.children(root)
		direct := 0
		for _, f := range t.under(root) {
			if !strings.Contains(strings.TrimPrefix(f, root+"/"), "/") {
				direct++
			}
		}
		if len(kids) != 1 || direct > 0 || hasSplits(t, root) {
			return root
		}
		root = join(root, kids[0])
	}
}

func hasSplits(t *tree, root string) bool {
	kids := t.children(root)
	return slices.Contains(kids, "train") && (slices.Contains(kids, "test") || slices.Contains(kids, "val"))
}

// loadFolderTree reads root/{train,test|val}/<class>/… as splits, or else
// root itself (labelled by sub-folder, or flat and unlabelled) with
// o.TestFraction held out as the test split.
func loadFolderTree(t *tree, root string, o Options) (*Splits, error) {
	if hasSplits(t, root) {
		train, classes, err := folderItems(t, join(root, "train"), nil)
		if err != nil {
			return nil, err
		}
		testDir := join(root, "test")
		if !slices.Contains(t.children(root), "test") {
			testDir = join(root, "val")
		}
		test, _, err := folderItems(t, testDir, classes)
		if err != nil {
			return nil, err
		}
		return splitsOf(t, train, test, classes, o)
	}
	all, classes, err := folderItems(t, root, nil)
	if err != nil {
		return nil, err
	}
	// Hold out a seeded fraction as the test split.
	perm := rand.New(rand.NewPCG(uint64(o.Seed), 0x7e57)).Perm(len(all))
	nTest := int(math.Round(o.TestFraction * float64(len(all))))
	isTest := make([]bool, len(all))
	for _, p := range perm[:nTest] {
		isTest[p] = true
	}
	var train, test []item
	for i, it := range all {
		if isTest[i] {
			test = append(test, it)
		} else {
			train = append(train, it)
		}
	}
	if len(train) == 0 {
		return nil, fmt.Errorf("%s: data.test_fraction = %g leaves no training images", o.Path, o.TestFraction)
	}
	return splitsOf(t, train, test, classes, o)
}

// folderItems lists dir's images: labelled by sub-folder (dir/<class>/…), or
// unlabelled when dir holds images and no sub-folders. With known classes (a
// test split), each sub-folder must be one of them.
func folderItems(t *tree, dir string, known []string) ([]item, []string, error) {
	prefix := ""
	if dir != "" {
		prefix = dir + "/"
	}
	var direct []string
	for _, f := range t.under(dir) {
		if !strings.Contains(strings.TrimPrefix(f, prefix), "/") && isImage(f) {
			direct = append(direct, f)
		}
	}
	kids := t.children(dir)
	where := t.where(dir)
	switch {
	case len(kids) == 0 && len(direct) == 0:
		return nil, nil, fmt.Errorf("%s: no images (%s)", where, strings.Join(imageExts, ", "))
	case len(kids) == 0:
		items := make([]item, len(direct))
		for i, f := range direct {
			items[i] = item{f, Unlabelled}
		}
		return items, nil, nil
	case len(direct) > 0:
		return nil, nil, fmt.Errorf("%s: holds both images (%s, …) and class folders (%s, …): put every image in a class folder, or use a flat folder",
			where, path.Base(direct[0]), kids[0])
	}
	classes := kids
	if known != nil {
		for _, k := range kids {
			if !slices.Contains(known, k) {
				return nil, nil, fmt.Errorf("%s: class folder %q is not among the training classes", where, k)
			}
		}
		classes = known
	}
	var items []item
	for _, k := range kids {
		label := slices.Index(classes, k)
		n := 0
		for _, f := range t.under(join(dir, k)) {
			if isImage(f) {
				items = append(items, item{f, label})
				n++
			}
		}
		if n == 0 {
			return nil, nil, fmt.Errorf("%s: empty class folder (no %s files)", t.where(join(dir, k)), strings.Join(imageExts, ", "))
		}
	}
	return items, classes, nil
}
