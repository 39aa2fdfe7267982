package data

import (
	"context"
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
// a folder or a .tar, .tar.gz or .zip archive, into the given shape, within
// lim (a zero Limits: the defaults).
func ReadImages(path string, shape Shape, skipBad bool, lim Limits) (*Images, error) {
	t, err := openTree(path, lim)
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
	items := make([]item, len(names))
	for i, n := range names {
		items[i] = item{n, Unlabelled}
	}
	set, bad, resized, err := decodeItems(t, items, nil, Options{Shape: shape, SkipBad: skipBad, Limits: lim}, path)
	if err != nil {
		return nil, err
	}
	left := map[string]bool{}
	for _, b := range bad {
		left[b.Path] = true
	}
	out := &Images{Set: set, Resized: resized, Bad: bad}
	for _, n := range names {
		if p := t.where(n); !left[p] {
			out.Paths = append(out.Paths, p)
		}
	}
	return out, nil
}

// ReadImage decodes one image file, or an archive member named as
// ReadImages names it (archive:member), into the given shape, within lim.
func ReadImage(ctx context.Context, path string, shape Shape, lim Limits) ([]byte, error) {
	raw, err := ReadFile(ctx, path, lim)
	if err != nil {
		return nil, err
	}
	dst := make([]byte, shape.bytes())
	if _, err := DecodeInto(dst, raw, shape, lim); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return dst, nil
}
