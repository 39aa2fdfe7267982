package data

import (
	"fmt"
	"math"
	"math/rand/v2"
	"path"
	"slices"
	"strings"
)

// Image folders: labelled by class folder, flat, or split into train/ and test/.

func loadFolder(o Options) (*Splits, error) {
	t, err := openTree(o.Path, o.Limits)
	if err != nil {
		return nil, err
	}
	l, err := listFolder(t, o)
	if err != nil {
		return nil, err
	}
	return l.decode(o)
}

// listFolder lists an image folder's splits in t (o.Path's tree).
func listFolder(t *tree, o Options) (*listing, error) {
	root := ""
	if !isDirPath(o.Path) {
		root = unwrap(t)
	}
	return listFolderTree(t, root, o)
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

// listFolderTree lists root/{train,test|val}/<class>/… as splits, or else
// root itself (labelled by sub-folder, or flat and unlabelled) with
// o.TestFraction held out as the test split.
func listFolderTree(t *tree, root string, o Options) (*listing, error) {
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
		return &listing{t: t, train: train, test: test, classes: classes}, nil
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
	return &listing{t: t, train: train, test: test, classes: classes}, nil
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
