package data

import (
	"fmt"
)

// Images are the pixels of every image file under a folder or archive, with
// the file names, for indexing (no labels, no splits).
type Images struct {
	Set     *Set     // Labels are all Unlabelled
	Paths   []string // where each image came from: a file path, or archive:member
	Resized int
	Bad     []BadImage
}

// ReadImages decodes every image (by extension, at any depth) under path,
// a folder or a .tar, .tar.gz or .zip archive, into the given shape.
func ReadImages(path string, shape Shape, skipBad bool) (*Images, error) {
	t, err := openTree(path)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, f := range t.files {
		if isImage(f) {
			names = append(names, f)
		}
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("%s: no images (%v)", path, imageExts)
	}
	job := decodeJob{
		n:     len(names),
		read:  func(i int) ([]byte, error) { return t.read(names[i]) },
		where: func(i int) string { return t.where(names[i]) },
		shape: shape,
	}
	pixels, bad, badIdx, resized, err := job.run(skipBad)
	if err != nil {
		return nil, err
	}
	labels := make([]int, len(names))
	for i := range labels {
		labels[i] = Unlabelled
	}
	pixels, labels = dropIndices(pixels, labels, shape.bytes(), badIdx)
	out := &Images{Set: &Set{Images: pixels, Labels: labels, H: shape.H, W: shape.W, C: shape.C, Source: path}, Resized: resized, Bad: bad}
	d := 0
	for i, n := range names {
		if d < len(badIdx) && badIdx[d] == i {
			d++
			continue
		}
		out.Paths = append(out.Paths, t.where(n))
	}
	if len(out.Paths) == 0 {
		return nil, fmt.Errorf("%s: none of its %d images could be decoded", path, len(names))
	}
	return out, nil
}

// ReadImage decodes one image file, or an archive member named as
// ReadImages names it (archive:member), into the given shape.
func ReadImage(path string, shape Shape) ([]byte, error) {
	raw, err := readFileOrMember(path)
	if err != nil {
		return nil, err
	}
	dst := make([]byte, shape.bytes())
	if _, err := DecodeInto(dst, raw, shape); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return dst, nil
}
